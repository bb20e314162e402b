//! Validation: turns the file's raw shape into a [`Config`], or a [`ConfigError`] that points
//! at the offending value.

use std::collections::BTreeMap;
use std::net::IpAddr;

use heapscape_pool::config::OverMaxPolicy;
use heapscape_pool::{PoolConfig, PoolError};
use ipnet::IpNet;
use serde_saphyr::{Location, Spanned};

use super::error::ConfigError;
use super::limits;
use super::raw::{RawConfig, RawExporter, RawOverMax, RawPool};
use super::types::{Config, ExporterConfig, PrometheusConfig, StatsdConfig};
use crate::units::ByteSize;

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

/// Each name and value of `labels` (`what`: `label` or `tag`, for the messages); their sum is
/// checked with the others on every series once the exporter is known.
fn check_labels(
    report: &Report<'_>,
    labels: &Spanned<BTreeMap<String, String>>,
    key: &str,
    what: &str,
    for_statsd: bool,
) -> Result<(), ConfigError> {
    let at = labels.referenced;
    for (name, value) in &labels.value {
        let key = format!("{key}.{}", limits::shown_name(name));
        // The length first, so that no message repeats a huge name or value.
        limits::check_name(what, name).map_err(|message| report.at(at, &key, message))?;
        check_label_name(report, at, &key, name)?;
        limits::check_value(value).map_err(|message| report.at(at, &key, message))?;
        if for_statsd {
            check_tag_value(report, at, &key, value)?;
        }
    }
    Ok(())
}

fn check_pool_name(report: &Report<'_>, at: Location, name: &str) -> Result<(), ConfigError> {
    limits::check_name("pool", name)
        .map_err(|message| report.at(at, format!("pools.{}", limits::shown_name(name)), message))?;
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
    /// The config this raw shape describes, or the first problem found, located in `file`.
    pub(super) fn validate(self, file: &str) -> Result<Config, ConfigError> {
        let report = Report { file };
        let mut config = Config::default();

        let statsd = self
            .exporter
            .as_ref()
            .and_then(|exporter| exporter.value.statsd.as_ref());
        // Where each source of the labels on every series is, for their sum's error.
        let service_at = self.service.as_ref().map(|service| service.referenced);
        let labels_at = self.labels.as_ref().map(|labels| labels.referenced);
        let tags_at = statsd
            .and_then(|statsd| statsd.value.as_ref()?.tags.as_ref())
            .map(|tags| tags.referenced);
        let statsd = statsd.is_some();
        if let Some(service) = self.service {
            if service.value.trim().is_empty() {
                return Err(report.at(
                    service.referenced,
                    "service",
                    "the service name is empty: write the service's name or remove the key",
                ));
            }
            limits::check_value(&service.value)
                .map_err(|message| report.at(service.referenced, "service", message))?;
            if statsd {
                check_tag_value(&report, service.referenced, "service", &service.value)?;
            }
            config.service = Some(service.value);
        }
        if let Some(labels) = self.labels {
            check_labels(&report, &labels, "labels", "label", statsd)?;
            config.labels = labels.value;
        }

        // Whether an exporter is needed depends on how the agent starts: `Agent` checks.
        config.exporter = match self.exporter {
            None => ExporterConfig::Unset,
            Some(exporter) => validate_exporter(&report, exporter)?,
        };
        limits::check_global_labels(&config).map_err(|violation| {
            let at = if violation.key == "service" {
                service_at
            } else if violation.key.starts_with("labels.") {
                labels_at
            } else {
                tags_at
            };
            report.at(
                at.unwrap_or(Location::UNKNOWN),
                violation.key,
                violation.message,
            )
        })?;

        if let Some(interval) = self.heartbeat.and_then(|heartbeat| heartbeat.interval) {
            limits::check_interval(interval.value.0)
                .map_err(|message| report.at(interval.referenced, "heartbeat.interval", message))?;
            config.heartbeat.interval = interval.value.0;
        }

        if let Some(max_pools) = self.limits.and_then(|limits| limits.max_pools) {
            limits::check_max_pools(max_pools.value)
                .map_err(|message| report.at(max_pools.referenced, "limits.max_pools", message))?;
            config.max_pools = max_pools.value;
        }
        let pools = self.pools.unwrap_or_default();
        if let Err(message) = limits::check_pool_count(pools.len(), config.max_pools) {
            // Pointing at the first pool over the cap, in the file's order (the map's is
            // alphabetical), shows where the list got too long.
            let mut in_file_order: Vec<_> = pools.iter().collect();
            in_file_order
                .sort_by_key(|(_, pool)| (pool.referenced.line(), pool.referenced.column()));
            if let Some((name, pool)) = in_file_order.get(config.max_pools) {
                let key = format!("pools.{}", limits::shown_name(name));
                return Err(report.at(pool.referenced, key, message));
            }
        }
        for (name, pool) in pools {
            check_pool_name(&report, pool.referenced, &name)?;
            let pool_config = validate_pool(&report, &name, pool)?;
            config.pools.insert(name, pool_config);
        }
        if let Some(jemalloc) = self.jemalloc {
            config.jemalloc = jemalloc.validate(file)?;
        }
        if let Some(profiling) = self.profiling {
            config.profiling = profiling.validate(file)?;
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
                check_labels(report, &tags, "exporter.statsd.tags", "tag", true)?;
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
    if let Some(window) = raw.recommendation_window {
        config.recommendation_window = window.value.0;
        written.insert("recommendation_window", window.referenced);
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
    if let Some(returns) = raw.recommendation_min_returns {
        config.recommendation_min_returns = Some(returns.value);
        written.insert("recommendation_min_returns", returns.referenced);
    }
    if let Some(auto_tune) = raw.auto_tune {
        written.insert("auto_tune", auto_tune.referenced);
        let (raw, tune) = (auto_tune.value, &mut config.auto_tune);
        if let Some(enabled) = raw.enabled {
            tune.enabled = enabled;
        }
        for (field, value, target) in [
            (
                "auto_tune.lowest_max_buffer_size",
                &raw.lowest_max_buffer_size,
                &mut tune.lowest_max_buffer_size,
            ),
            (
                "auto_tune.highest_max_buffer_size",
                &raw.highest_max_buffer_size,
                &mut tune.highest_max_buffer_size,
            ),
        ] {
            if let Some(value) = value {
                *target = byte_count(report, value, &key(field))?;
                written.insert(field, value.referenced);
            }
        }
        if let Some(cooldown) = raw.cooldown {
            tune.cooldown = cooldown.value.0;
            written.insert("auto_tune.cooldown", cooldown.referenced);
        }
        if let Some(hysteresis) = raw.hysteresis {
            tune.hysteresis = hysteresis.value;
            written.insert("auto_tune.hysteresis", hysteresis.referenced);
        }
    }

    // The bounds first: an absurd size makes the pool's own checks (and the process) fail.
    limits::check_pool(&config).map_err(|(field, message)| {
        let at = written.get(field).copied().unwrap_or(pool.referenced);
        report.at(at, key(field), message)
    })?;
    config.validate().map_err(|error| {
        // Point at the field the error is about, or at the pool when it was left at its default.
        let field = match &error {
            PoolError::Zero { field } => Some(*field),
            PoolError::InitialAboveMax { .. } => Some("initial_capacity"),
            PoolError::MaxAboveIdleBytes { .. } => Some("max_buffer_size"),
            PoolError::Percentile(_) => Some("recommend_percentile"),
            PoolError::Window(_) => Some("recommendation_window"),
            PoolError::Cooldown(_) => Some("auto_tune.cooldown"),
            PoolError::AutoTuneBounds { .. } | PoolError::AutoTuneMinAboveIdleBytes { .. } => {
                Some("auto_tune.lowest_max_buffer_size")
            }
            PoolError::AutoTuneStartOutside { .. } => Some("max_buffer_size"),
            PoolError::Hysteresis(_) => Some("auto_tune.hysteresis"),
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
