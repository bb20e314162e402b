//! The YAML configuration: parsing, defaults and validation with file/line/column errors.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use heapscape_pool::{OverMaxPolicy, PoolConfig, PoolError};
use ipnet::IpNet;
use serde::Deserialize;
use serde_saphyr::{Location, MessageFormatter, Spanned};

use crate::units::{ByteSize, HumanDuration};

/// The Prometheus listen address used when `exporter.prometheus.listen` is omitted: loopback,
/// so that metrics are not exposed to the network unless the file says so.
pub const DEFAULT_PROMETHEUS_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9000);
/// The StatsD queue size used when `exporter.statsd.queue_size` is omitted.
pub const DEFAULT_STATSD_QUEUE_SIZE: usize = 5000;
/// The StatsD datagram buffer used when `exporter.statsd.buffer_size` is omitted: the largest
/// UDP payload that fits an Ethernet frame (1500 - 20 IPv4 - 8 UDP bytes, rounded down).
pub const DEFAULT_STATSD_BUFFER_SIZE: usize = 1432;
/// The heartbeat interval used when `heartbeat.interval` is omitted.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);

/// The agent's configuration, usually read from a YAML file with [`Config::from_file`].
///
/// Every key is optional except the exporter; see the crate README for the reference.
/// [`Config::default`] is a Prometheus exporter on [`DEFAULT_PROMETHEUS_LISTEN`], a 10 s
/// heartbeat and no pools.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// The service name, sent as the label (tag) `service` on every metric when set.
    pub service: Option<String>,
    /// Global labels (Prometheus) or tags (StatsD) on every metric.
    pub labels: BTreeMap<String, String>,
    /// Where metrics go. Cannot change while the agent runs.
    pub exporter: ExporterConfig,
    /// The heap heartbeat.
    pub heartbeat: HeartbeatConfig,
    /// The named buffer pools; each name becomes the `pool` label of its metrics.
    pub pools: BTreeMap<String, PoolConfig>,
}

/// The one exporter the agent installs.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum ExporterConfig {
    /// Serve `/metrics` for Prometheus to scrape.
    Prometheus(PrometheusConfig),
    /// Send UDP datagrams with DogStatsD tags to a StatsD daemon (or statsd_exporter).
    Statsd(StatsdConfig),
}

impl Default for ExporterConfig {
    fn default() -> Self {
        Self::Prometheus(PrometheusConfig::default())
    }
}

/// `exporter.prometheus`.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct PrometheusConfig {
    /// The address of the scrape listener; port 0 picks a free port
    /// (see [`Agent::metrics_addr`](crate::Agent::metrics_addr)).
    pub listen: SocketAddr,
    /// When not empty, only clients in these networks may scrape; others get 403.
    pub allow: Vec<IpNet>,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_PROMETHEUS_LISTEN,
            allow: Vec::new(),
        }
    }
}

/// `exporter.statsd`.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct StatsdConfig {
    /// The StatsD host name or IP address.
    pub host: String,
    /// The StatsD UDP port.
    pub port: u16,
    /// How many metric lines may wait to be sent; more are dropped.
    pub queue_size: usize,
    /// How many bytes are packed into one UDP datagram.
    pub buffer_size: usize,
    /// Tags sent with every metric, in addition to `service` and `labels`.
    pub tags: BTreeMap<String, String>,
}

impl Default for StatsdConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 8125,
            queue_size: DEFAULT_STATSD_QUEUE_SIZE,
            buffer_size: DEFAULT_STATSD_BUFFER_SIZE,
            tags: BTreeMap::new(),
        }
    }
}

/// `heartbeat`.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatConfig {
    /// Time between two heap samples (and pool publications). Changeable at run time.
    pub interval: Duration,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        Self {
            interval: DEFAULT_HEARTBEAT_INTERVAL,
        }
    }
}

impl Config {
    /// Reads and validates a YAML config file.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the file and, for a problem in its text, the line, column and
    /// key, with what to change: unreadable file, YAML syntax, unknown key, wrong type, bad
    /// size or duration, or a value that fails validation (pool caps, zero interval, not
    /// exactly one exporter, bad address or network).
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
        let raw: RawConfig = serde_saphyr::from_str_with_options(text, options)
            .map_err(|error| ConfigError::from_yaml(source_name, &error))?;
        raw.validate(source_name)
    }
}

/// A configuration problem: where it is (file, line, column, key) and what to change.
///
/// Displayed as `file:line:column: key: problem: what to do`, the form editors and terminals
/// turn into links.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    file: String,
    line: Option<usize>,
    column: Option<usize>,
    key: Option<String>,
    message: String,
}

impl ConfigError {
    fn new(file: &str, at: Option<Location>, key: Option<String>, message: String) -> Self {
        // `Location::UNKNOWN` has line 0: the parser could not place the problem.
        let known = at.filter(|at| at.line() > 0);
        Self {
            file: file.to_owned(),
            line: known.map(|at| at.line() as usize),
            column: known.map(|at| at.column() as usize),
            key,
            message,
        }
    }

    fn at_start(file: &str, key: &str, message: &str) -> Self {
        Self {
            file: file.to_owned(),
            line: Some(1),
            column: Some(1),
            key: Some(key.to_owned()),
            message: message.to_owned(),
        }
    }

    fn from_yaml(file: &str, error: &serde_saphyr::Error) -> Self {
        let error = error.without_snippet();
        let problem = serde_saphyr::UserMessageFormatter.format_message(error);
        let message = match error {
            serde_saphyr::Error::Eof { .. } => format!(
                "{problem}: the file is empty or cut short; it needs at least an `exporter:` section"
            ),
            _ => with_fix(&problem),
        };
        Self::new(file, error.location(), None, message)
    }

    /// The file (or source name) the problem is in.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The 1-based line of the problem, when it is in the file's text.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The 1-based column of the problem, when it is in the file's text.
    pub fn column(&self) -> Option<usize> {
        self.column
    }

    /// The dotted key path of the offending value (`pools.pcm.max_buffer_size`), when known.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// What is wrong and what to change, without the location.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Rewords the parser's terse type messages and adds what to do to a message that only says
/// what is wrong.
fn with_fix(problem: &str) -> String {
    let problem = match problem {
        "invalid u16" => "expected a whole number from 0 to 65535",
        "invalid u32" | "invalid u64" | "invalid usize" => "expected a whole number",
        "invalid f64" | "invalid f32" => "expected a number",
        "expected mapping start" => "expected a mapping (`key: value` lines or `{ key: value }`)",
        other => other,
    };
    let fix = if problem.starts_with("unknown field") {
        "remove the key or correct its spelling"
    } else if problem.starts_with("unknown variant") {
        "use one of the listed values"
    } else if problem.starts_with("duplicate") {
        "keep only one of the two keys"
    } else if problem.contains(": write ") || problem.contains("; write ") {
        // Our size and duration parsers already say what to write.
        return problem.to_owned();
    } else if problem.starts_with("invalid") || problem.starts_with("expected") {
        "give this key a value of the type the config reference (crates/agent/README.md) lists"
    } else {
        "fix the YAML at this position"
    };
    format!("{problem}: {fix}")
}

// ---------------------------------------------------------------------------------------------
// The file's shape, as written; validated into `Config`.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    service: Option<Spanned<String>>,
    labels: Option<Spanned<BTreeMap<String, String>>>,
    exporter: Option<Spanned<RawExporter>>,
    heartbeat: Option<RawHeartbeat>,
    pools: Option<BTreeMap<String, Spanned<RawPool>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExporter {
    // `statsd:` with nothing after it selects StatsD with its defaults, hence `present`.
    #[serde(default, deserialize_with = "present")]
    prometheus: Option<Spanned<Option<RawPrometheus>>>,
    #[serde(default, deserialize_with = "present")]
    statsd: Option<Spanned<Option<RawStatsd>>>,
}

/// Deserializes a key that is present, even with a null value, as `Some`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPrometheus {
    listen: Option<Spanned<String>>,
    allow: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStatsd {
    host: Option<Spanned<String>>,
    port: Option<Spanned<u16>>,
    queue_size: Option<Spanned<usize>>,
    buffer_size: Option<Spanned<ByteSize>>,
    tags: Option<Spanned<BTreeMap<String, String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeartbeat {
    interval: Option<Spanned<HumanDuration>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum RawOverMax {
    Shrink,
    Drop,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    initial_capacity: Option<Spanned<ByteSize>>,
    max_buffer_size: Option<Spanned<ByteSize>>,
    max_idle_buffers: Option<Spanned<usize>>,
    max_idle_bytes: Option<Spanned<ByteSize>>,
    idle_timeout: Option<Spanned<HumanDuration>>,
    over_max: Option<RawOverMax>,
    recommend_percentile: Option<Spanned<f64>>,
}

/// Builds errors for one source.
struct Report<'a> {
    file: &'a str,
}

impl Report<'_> {
    fn at(&self, at: Location, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.file, Some(at), Some(key.into()), message.into())
    }
}

fn byte_count(
    report: &Report<'_>,
    value: &Spanned<ByteSize>,
    key: &str,
) -> Result<usize, ConfigError> {
    usize::try_from(value.value.0).map_err(|_| {
        report.at(
            value.referenced,
            key,
            format!(
                "{} bytes does not fit this machine's address space: write a smaller size",
                value.value.0
            ),
        )
    })
}

/// Label and tag names: Prometheus's rule, which StatsD backends accept too.
fn check_label_name(
    report: &Report<'_>,
    at: Location,
    key: &str,
    name: &str,
) -> Result<(), ConfigError> {
    let mut chars = name.chars();
    let valid_start = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !valid_start
        || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        || name.starts_with("__")
    {
        return Err(report.at(
            at,
            key,
            format!(
                "`{name}` is not a valid label name: use letters, digits and `_`, not starting \
                 with a digit or `__` (e.g. `env`, `region_1`)"
            ),
        ));
    }
    if name == "service" || name == "pool" || name == "reason" {
        return Err(report.at(
            at,
            key,
            format!("`{name}` is a label heapscape sets itself: choose another name"),
        ));
    }
    Ok(())
}

/// StatsD tag values end at `,` or `|` and Etsy statsd rewrites `;` and `:`.
fn check_tag_value(
    report: &Report<'_>,
    at: Location,
    key: &str,
    value: &str,
) -> Result<(), ConfigError> {
    if value.is_empty() || value.contains([',', '|', '#', ';', '\n']) {
        return Err(report.at(
            at,
            key,
            format!(
                "`{value}` cannot be sent as a StatsD tag value: use a non-empty value \
                 without `,`, `|`, `#`, `;` or line breaks"
            ),
        ));
    }
    Ok(())
}

fn check_labels(
    report: &Report<'_>,
    labels: &Spanned<BTreeMap<String, String>>,
    key: &str,
    for_statsd: bool,
) -> Result<(), ConfigError> {
    for (name, value) in &labels.value {
        let key = format!("{key}.{name}");
        check_label_name(report, labels.referenced, &key, name)?;
        if for_statsd {
            check_tag_value(report, labels.referenced, &key, value)?;
        }
    }
    Ok(())
}

fn check_pool_name(report: &Report<'_>, at: Location, name: &str) -> Result<(), ConfigError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        return Err(report.at(
            at,
            format!("pools.{name}"),
            format!(
                "`{name}` is not a valid pool name: use letters, digits, `_`, `-` or `.`; \
                 the name becomes the `pool` label of the pool's metrics"
            ),
        ));
    }
    Ok(())
}

impl RawConfig {
    fn validate(self, file: &str) -> Result<Config, ConfigError> {
        let report = Report { file };
        let mut config = Config::default();

        let statsd = self
            .exporter
            .as_ref()
            .is_some_and(|exporter| exporter.value.statsd.is_some());
        if let Some(service) = self.service {
            if service.value.trim().is_empty() {
                return Err(report.at(
                    service.referenced,
                    "service",
                    "the service name is empty: write the service's name or remove the key",
                ));
            }
            if statsd {
                check_tag_value(&report, service.referenced, "service", &service.value)?;
            }
            config.service = Some(service.value);
        }
        if let Some(labels) = self.labels {
            check_labels(&report, &labels, "labels", statsd)?;
            config.labels = labels.value;
        }

        config.exporter = match self.exporter {
            None => {
                return Err(ConfigError::at_start(
                    file,
                    "exporter",
                    "no exporter is configured: add `exporter: { prometheus: {} }` or \
                     `exporter: { statsd: { host: 127.0.0.1, port: 8125 } }`",
                ));
            }
            Some(exporter) => validate_exporter(&report, exporter)?,
        };

        if let Some(interval) = self.heartbeat.and_then(|heartbeat| heartbeat.interval) {
            if interval.value.0.is_zero() {
                return Err(report.at(
                    interval.referenced,
                    "heartbeat.interval",
                    "the interval is zero: write a positive duration such as 10s",
                ));
            }
            config.heartbeat.interval = interval.value.0;
        }

        for (name, pool) in self.pools.unwrap_or_default() {
            check_pool_name(&report, pool.referenced, &name)?;
            let pool_config = validate_pool(&report, &name, pool)?;
            config.pools.insert(name, pool_config);
        }
        Ok(config)
    }
}

fn validate_exporter(
    report: &Report<'_>,
    exporter: Spanned<RawExporter>,
) -> Result<ExporterConfig, ConfigError> {
    match (exporter.value.prometheus, exporter.value.statsd) {
        (Some(_), Some(statsd)) => Err(report.at(
            statsd.referenced,
            "exporter",
            "both `prometheus` and `statsd` are set: keep exactly one exporter",
        )),
        (None, None) => Err(report.at(
            exporter.referenced,
            "exporter",
            "no exporter is set: add `prometheus: {}` or `statsd: { host: 127.0.0.1, port: 8125 }`",
        )),
        (Some(prometheus), None) => {
            let raw = prometheus.value.unwrap_or_default();
            let mut config = PrometheusConfig::default();
            if let Some(listen) = raw.listen {
                config.listen = listen.value.trim().parse().map_err(|_| {
                    report.at(
                        listen.referenced,
                        "exporter.prometheus.listen",
                        format!(
                            "`{}` is not an IP address with a port: write e.g. 127.0.0.1:9000, \
                             or 0.0.0.0:9000 to accept scrapes from the network \
                             (host names are not resolved)",
                            listen.value
                        ),
                    )
                })?;
            }
            for (index, network) in raw.allow.unwrap_or_default().into_iter().enumerate() {
                let text = network.value.trim();
                let parsed = text
                    .parse::<IpNet>()
                    .or_else(|_| text.parse::<IpAddr>().map(IpNet::from));
                config.allow.push(parsed.map_err(|_| {
                    report.at(
                        network.referenced,
                        format!("exporter.prometheus.allow[{index}]"),
                        format!(
                            "`{text}` is not a network: write an address or a CIDR block, \
                             e.g. 127.0.0.1, 10.0.0.0/8 or ::1/128"
                        ),
                    )
                })?);
            }
            Ok(ExporterConfig::Prometheus(config))
        }
        (None, Some(statsd)) => {
            let raw = statsd.value.unwrap_or_default();
            let mut config = StatsdConfig::default();
            if let Some(host) = raw.host {
                if host.value.trim().is_empty() {
                    return Err(report.at(
                        host.referenced,
                        "exporter.statsd.host",
                        "the host is empty: write the StatsD host, e.g. 127.0.0.1",
                    ));
                }
                config.host = host.value.trim().to_owned();
            }
            if let Some(port) = raw.port {
                if port.value == 0 {
                    return Err(report.at(
                        port.referenced,
                        "exporter.statsd.port",
                        "port 0 cannot receive metrics: write the StatsD UDP port, e.g. 8125",
                    ));
                }
                config.port = port.value;
            }
            if let Some(queue_size) = raw.queue_size {
                if queue_size.value == 0 {
                    return Err(report.at(
                        queue_size.referenced,
                        "exporter.statsd.queue_size",
                        "a queue of 0 drops every metric: write a positive size, e.g. 5000",
                    ));
                }
                config.queue_size = queue_size.value;
            }
            if let Some(buffer_size) = raw.buffer_size {
                let bytes = byte_count(report, &buffer_size, "exporter.statsd.buffer_size")?;
                if !(64..=65_000).contains(&bytes) {
                    return Err(report.at(
                        buffer_size.referenced,
                        "exporter.statsd.buffer_size",
                        format!(
                            "{bytes} bytes is not a usable UDP payload: write a size between \
                             64 and 65000, e.g. 1432"
                        ),
                    ));
                }
                config.buffer_size = bytes;
            }
            if let Some(tags) = raw.tags {
                check_labels(report, &tags, "exporter.statsd.tags", true)?;
                config.tags = tags.value;
            }
            Ok(ExporterConfig::Statsd(config))
        }
    }
}

fn validate_pool(
    report: &Report<'_>,
    name: &str,
    pool: Spanned<RawPool>,
) -> Result<PoolConfig, ConfigError> {
    let key = |field: &str| format!("pools.{name}.{field}");
    let raw = pool.value;
    let mut config = PoolConfig::default();
    // Where each field was written, for the validation errors below.
    let mut written: BTreeMap<&'static str, Location> = BTreeMap::new();

    for (field, value, target) in [
        (
            "initial_capacity",
            &raw.initial_capacity,
            &mut config.initial_capacity,
        ),
        (
            "max_buffer_size",
            &raw.max_buffer_size,
            &mut config.max_buffer_size,
        ),
        (
            "max_idle_bytes",
            &raw.max_idle_bytes,
            &mut config.max_idle_bytes,
        ),
    ] {
        if let Some(value) = value {
            *target = byte_count(report, value, &key(field))?;
            written.insert(field, value.referenced);
        }
    }
    if let Some(count) = raw.max_idle_buffers {
        config.max_idle_buffers = count.value;
        written.insert("max_idle_buffers", count.referenced);
    }
    if let Some(timeout) = raw.idle_timeout {
        config.idle_timeout = timeout.value.0;
        written.insert("idle_timeout", timeout.referenced);
    }
    if let Some(policy) = raw.over_max {
        config.over_max = match policy {
            RawOverMax::Shrink => OverMaxPolicy::Shrink,
            RawOverMax::Drop => OverMaxPolicy::Drop,
        };
    }
    if let Some(percentile) = raw.recommend_percentile {
        config.recommend_percentile = percentile.value;
        written.insert("recommend_percentile", percentile.referenced);
    }

    config.validate().map_err(|error| {
        // Point at the field the error is about, or at the pool when it was left at its default.
        let field = match &error {
            PoolError::Zero { field } => Some(*field),
            PoolError::InitialAboveMax { .. } => Some("initial_capacity"),
            PoolError::MaxAboveIdleBytes { .. } => Some("max_buffer_size"),
            PoolError::Percentile(_) => Some("recommend_percentile"),
            _ => None,
        };
        let at = field
            .and_then(|field| written.get(field).copied())
            .unwrap_or(pool.referenced);
        let key = field.map_or_else(|| format!("pools.{name}"), key);
        report.at(at, key, error.to_string())
    })?;
    Ok(config)
}
