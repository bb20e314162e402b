//! The YAML configuration: reading and parsing a file into [`Config`]; the public types
//! (`types`), the file's raw serde shape (`raw`), environment interpolation of its string
//! values (`interpolate`), validation with file/line/column errors (`validate`), the bounds on
//! sizes, intervals and the number of pools (`limits`) and the error type (`error`) each have
//! their own module.

mod error;
mod interpolate;
mod jemalloc;
pub(crate) mod limits;
mod profiling;
mod raw;
mod types;
mod validate;

use std::path::Path;

pub use error::ConfigError;
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
    /// key, with what to change: unreadable file, YAML syntax, unknown key, wrong type, bad
    /// size or duration, an unset environment variable without a default (`${NAME}`, see the
    /// config reference in the crate's README), or a value that fails validation (pool caps, a
    /// size or interval out of bounds, too many pools, not exactly one exporter, bad address or
    /// network).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| {
            let fix = match error.kind() {
                std::io::ErrorKind::NotFound => "check the path",
                std::io::ErrorKind::PermissionDenied => {
                    "make the file readable by the service's user"
                }
                std::io::ErrorKind::InvalidData => "save the file as UTF-8 text",
                _ => "check the path and the file's permissions",
            };
            ConfigError::new(
                &file,
                None,
                None,
                format!("cannot read the config file ({error}): {fix}"),
            )
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
