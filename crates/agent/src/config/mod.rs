//! The YAML configuration: reading and parsing a file into [`Config`]; reading the file within
//! its bounds (`file`), the public types (`types`), the file's raw serde shape (`raw`),
//! environment interpolation of its string values (`interpolate`), validation with
//! file/line/column errors (`validate`), the bounds on sizes, intervals, names, labels and the
//! number of pools (`limits`) and the error type (`error`) each have their own module.

mod error;
pub(crate) mod file;
mod interpolate;
mod jemalloc;
pub(crate) mod limits;
mod profiling;
mod raw;
mod types;
mod validate;

use std::path::Path;

pub use error::ConfigError;
use file::ReadError;
pub use profiling::{DEFAULT_PROFILING_SAMPLE_RATE, ProfilingConfig};
use raw::RawConfig;
pub use types::{
    Config, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_PROMETHEUS_LISTEN, DEFAULT_STATSD_BUFFER_SIZE,
    DEFAULT_STATSD_QUEUE_SIZE, ExporterConfig, HeartbeatConfig, JemallocConfig, PrometheusConfig,
    StatsdConfig,
};

impl Config {
    /// Reads and validates a YAML config file.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the file and, for a problem in its text, the line, column and
    /// key, with what to change: unreadable file, not a regular file (a device, FIFO, socket or
    /// directory, refused without reading or waiting), a file over 1 MiB, YAML syntax, unknown
    /// key, wrong type, bad size or duration, an unset environment variable without a default
    /// (`${NAME}`, see the config reference in the crate's README), or a value that fails
    /// validation (pool caps, a size, interval, name or label out of bounds, too many pools,
    /// not exactly one exporter, bad address or network).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let unreadable = |message: String| ConfigError::new(&file, None, None, message);
        let bytes = match file::read(path) {
            Ok((_, bytes)) => bytes,
            Err(ReadError::Io(error)) => {
                let fix = match error.kind() {
                    std::io::ErrorKind::NotFound => "check the path",
                    std::io::ErrorKind::PermissionDenied => {
                        "make the file readable by the service's user"
                    }
                    _ => "check the path and the file's permissions",
                };
                return Err(unreadable(format!(
                    "cannot read the config file ({error}): {fix}"
                )));
            }
            Err(ReadError::NotRegular(kind)) => {
                return Err(unreadable(format!(
                    "cannot read the config file: the path leads to {kind}, not a regular \
                     file; point it (or the symlink it goes through) at the YAML file"
                )));
            }
            Err(ReadError::TooLarge(len)) => {
                return Err(unreadable(format!(
                    "cannot read the config file: it is {len} bytes or more, over the limit \
                     of {} bytes (1 MiB); check that the path names the config, which is \
                     far smaller even with 1024 pools",
                    file::MAX_FILE_SIZE
                )));
            }
        };
        let text = String::from_utf8(bytes).map_err(|error| {
            unreadable(format!(
                "cannot read the config file ({error}): save the file as UTF-8 text"
            ))
        })?;
        Self::from_yaml_str(&text, &file)
    }

    /// Parses and validates YAML text; `source_name` (usually the file name) is used in errors.
    ///
    /// # Errors
    ///
    /// As [`Config::from_file`], except for reading the file.
    pub fn from_yaml_str(text: &str, source_name: &str) -> Result<Self, ConfigError> {
        let mut options = serde_saphyr::Options::default();
        options.with_snippet = false;
        let mut raw: RawConfig = serde_saphyr::from_str_with_options(text, options)
            .map_err(|error| ConfigError::from_yaml(source_name, &error))?;
        interpolate::interpolate_config(&mut raw, text, source_name)?;
        raw.validate(source_name)
    }
}
