//! Bounds on config values that the types alone allow but a running service cannot survive:
//! buffer sizes, the idle-bytes cap, the heartbeat interval, the number of pools and the
//! lengths of names and labels.
//!
//! Checked for a file (with its location, in `validate`) and again for every config the agent
//! starts with or applies, so overrides and [`Agent::apply_config`](crate::Agent::apply_config)
//! cannot slip past them.

use std::time::Duration;

use heapscape_pool::PoolConfig;

use super::types::{Config, ExporterConfig};

/// The largest `initial_capacity` and `max_buffer_size`: 1 GiB, the top bucket of the pool's
/// size histograms (`heapscape_pool::metrics::HISTOGRAM_METRICS`). A larger buffer is outside
/// what the pool measures and recommends, and one allocation that size is not pooling any
/// more: a miss of a `1000000GiB` pool aborted the process.
pub(crate) const MAX_BUFFER_SIZE: usize = 1 << 30;
/// The shortest heartbeat interval: at 1 ms the idle process spent 15 % of a core on ticks;
/// at 100 ms that is about 0.15 %, and tests still see metrics quickly.
pub(crate) const MIN_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);
/// The longest heartbeat interval: gauges older than an hour mislead every dashboard and alert.
pub(crate) const MAX_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3600);
/// The largest `limits.max_pools`: each pool adds about 6 KB to every scrape and its work to
/// every heartbeat tick, so 1024 pools make a 6 MB exposition.
pub(crate) const MAX_MAX_POOLS: usize = 1024;
/// The longest `auto_tune.cooldown`: a day. Longer, and a recommendation read from the last
/// window of traffic would be applied to another day's.
const MAX_COOLDOWN: Duration = Duration::from_secs(24 * 3600);
/// The longest pool, label or tag name, in bytes. A name is an identifier that dashboards and
/// logs show whole (Kubernetes allows 63 characters in a label value); a pool's name is on
/// each of its about 180 series, so 128 bytes add at most 23 KB to every scrape per pool.
/// 64 pools with 64 KiB names made a 356 MB page.
pub(crate) const MAX_NAME_BYTES: usize = 128;
/// The longest string value (`service`, a label or tag value, and any value after `${NAME}`
/// interpolation), in bytes: room for any host or pod name (DNS names are at most 253
/// bytes), a version or a zone. Labels of 131,000 characters made a 131 MB page.
pub(crate) const MAX_VALUE_BYTES: usize = 256;
/// The most bytes of the labels every series carries: `service`, `labels` and, with StatsD,
/// `exporter.statsd.tags`, names and values added up. They are repeated on every line of the
/// exposition (about 180 per pool): 1 KiB is ten times a usual set and adds at most 12 MB
/// to a scrape of 64 pools.
pub(crate) const MAX_GLOBAL_LABEL_BYTES: usize = 1 << 10;
/// The physical memory assumed where `/proc/meminfo` cannot be read (not Linux, no `/proc`).
const FALLBACK_PHYSICAL_MEMORY: u64 = 64 << 30;

/// The largest `max_idle_bytes`: half the machine's physical memory (`MemTotal` of
/// `/proc/meminfo`, or 64 GiB where that cannot be read). Idle buffers beyond that would push
/// the service into swap or the OOM killer before they were ever reused.
pub(crate) fn max_idle_bytes() -> usize {
    let physical = physical_memory().unwrap_or(FALLBACK_PHYSICAL_MEMORY);
    usize::try_from(physical / 2).unwrap_or(usize::MAX)
}

fn physical_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line
        .trim_start_matches("MemTotal:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// A value out of bounds: the dotted key and what to do.
#[derive(Debug)]
pub(crate) struct Violation {
    /// The dotted key path, e.g. `pools.pcm.max_buffer_size`.
    pub(crate) key: String,
    /// What is wrong and what to write instead.
    pub(crate) message: String,
}

/// `heartbeat.interval` within [`MIN_HEARTBEAT_INTERVAL`]`..=`[`MAX_HEARTBEAT_INTERVAL`].
pub(crate) fn check_interval(interval: Duration) -> Result<(), String> {
    if (MIN_HEARTBEAT_INTERVAL..=MAX_HEARTBEAT_INTERVAL).contains(&interval) {
        return Ok(());
    }
    Err(format!(
        "an interval of {interval:?} is outside 100ms..1h: write a duration in that range, \
         e.g. 10s (shorter ticks burn CPU, longer ones leave every gauge stale)"
    ))
}

/// `limits.max_pools` within `1..=`[`MAX_MAX_POOLS`].
pub(crate) fn check_max_pools(max_pools: usize) -> Result<(), String> {
    if (1..=MAX_MAX_POOLS).contains(&max_pools) {
        return Ok(());
    }
    Err(format!(
        "max_pools is {max_pools}: write a number from 1 to {MAX_MAX_POOLS} \
         (each pool adds about 6 KB to every scrape)"
    ))
}

/// At most `max_pools` pools.
pub(crate) fn check_pool_count(count: usize, max_pools: usize) -> Result<(), String> {
    if count <= max_pools {
        return Ok(());
    }
    Err(format!(
        "{count} pools are configured but limits.max_pools is {max_pools}: remove pools, or \
         raise limits.max_pools (up to {MAX_MAX_POOLS}) if the service really needs them"
    ))
}

/// A pool, label or tag name (`what`) within [`MAX_NAME_BYTES`].
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.len() <= MAX_NAME_BYTES {
        return Ok(());
    }
    Err(format!(
        "a {what} name of {} bytes is longer than the limit of {MAX_NAME_BYTES} bytes: \
         write a shorter name (it is repeated on every series it names)",
        name.len()
    ))
}

/// A string value within [`MAX_VALUE_BYTES`].
pub(crate) fn check_value(value: &str) -> Result<(), String> {
    if value.len() <= MAX_VALUE_BYTES {
        return Ok(());
    }
    Err(format!(
        "the value is {} bytes, longer than the limit of {MAX_VALUE_BYTES} bytes: write a \
         shorter value (labels are repeated on every line of the exposition)",
        value.len()
    ))
}

/// `name` as shown in a key or message: whole if within [`MAX_NAME_BYTES`], else its start,
/// so that an error about a 64 KiB name is not itself 64 KiB long.
pub(crate) fn shown_name(name: &str) -> String {
    if name.len() <= MAX_NAME_BYTES {
        return name.to_owned();
    }
    let mut end = 32;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &name[..end])
}

/// The labels on every series: `service`, `labels` and, with StatsD, `exporter.statsd.tags`,
/// as `(key, name, value)` in the order they are added up.
fn global_labels(config: &Config) -> Vec<(String, &str, &str)> {
    let service = config
        .service
        .iter()
        .map(|service| ("service".to_owned(), "service", service.as_str()));
    let labels = config
        .labels
        .iter()
        .map(|(name, value)| ("labels", name, value));
    let tags = match &config.exporter {
        ExporterConfig::Statsd(statsd) => Some(&statsd.tags),
        _ => None,
    }
    .into_iter()
    .flatten()
    .map(|(name, value)| ("exporter.statsd.tags", name, value));
    service
        .chain(labels.chain(tags).map(|(section, name, value)| {
            (
                format!("{section}.{}", shown_name(name)),
                name.as_str(),
                value.as_str(),
            )
        }))
        .collect()
}

/// Names and values of the labels on every series within their limits, and all of them
/// together within [`MAX_GLOBAL_LABEL_BYTES`]; on failure, the key of the first label that
/// is too long or takes the sum over the limit.
pub(crate) fn check_global_labels(config: &Config) -> Result<(), Violation> {
    let labels = global_labels(config);
    for (key, name, value) in &labels {
        check_name("label", name)
            .and_then(|()| check_value(value))
            .map_err(|message| Violation {
                key: key.clone(),
                message,
            })?;
    }
    let mut total = 0;
    let mut crossing = None;
    for (key, name, value) in labels {
        total += name.len() + value.len();
        if total > MAX_GLOBAL_LABEL_BYTES && crossing.is_none() {
            crossing = Some(key);
        }
    }
    let Some(key) = crossing else {
        return Ok(());
    };
    Err(Violation {
        key,
        message: format!(
            "the labels on every series (service, labels and StatsD tags, names and values) \
             add up to {total} bytes, over the limit of {MAX_GLOBAL_LABEL_BYTES} bytes: \
             shorten or remove some (each is repeated on every line of the exposition, about \
             180 per pool)"
        ),
    })
}

/// The pool's sizes within [`MAX_BUFFER_SIZE`] and [`max_idle_bytes`]; on failure, the field
/// and what to do.
pub(crate) fn check_pool(pool: &PoolConfig) -> Result<(), (&'static str, String)> {
    for (field, value) in [
        ("initial_capacity", pool.initial_capacity),
        ("max_buffer_size", pool.max_buffer_size),
        (
            "auto_tune.lowest_max_buffer_size",
            pool.auto_tune.lowest_max_buffer_size,
        ),
        (
            "auto_tune.highest_max_buffer_size",
            pool.auto_tune.highest_max_buffer_size,
        ),
    ] {
        if value > MAX_BUFFER_SIZE {
            return Err((
                field,
                format!(
                    "{field} is {value} bytes, above the 1 GiB limit for one buffer: write at \
                     most 1GiB (buffers that large are not worth pooling)"
                ),
            ));
        }
    }
    if pool.auto_tune.cooldown > MAX_COOLDOWN {
        return Err((
            "auto_tune.cooldown",
            format!(
                "auto_tune.cooldown is {:?}, above the 1-day limit: a recommendation is read \
                 from a window of recent traffic, so write at most 24h",
                pool.auto_tune.cooldown
            ),
        ));
    }
    let idle_limit = max_idle_bytes();
    if pool.max_idle_bytes > idle_limit {
        return Err((
            "max_idle_bytes",
            format!(
                "max_idle_bytes is {} bytes, more than half this machine's memory \
                 ({idle_limit} bytes may be kept idle): write a smaller cap, e.g. 256MiB",
                pool.max_idle_bytes
            ),
        ));
    }
    Ok(())
}

/// Every bound, for a config that did not come from a file (or was changed by overrides).
pub(crate) fn check(config: &Config) -> Result<(), Violation> {
    check_interval(config.heartbeat.interval).map_err(|message| Violation {
        key: "heartbeat.interval".to_owned(),
        message,
    })?;
    check_max_pools(config.max_pools).map_err(|message| Violation {
        key: "limits.max_pools".to_owned(),
        message,
    })?;
    check_pool_count(config.pools.len(), config.max_pools).map_err(|message| Violation {
        key: "pools".to_owned(),
        message,
    })?;
    check_global_labels(config)?;
    for (name, pool) in &config.pools {
        check_name("pool", name).map_err(|message| Violation {
            key: format!("pools.{}", shown_name(name)),
            message,
        })?;
        check_pool(pool).map_err(|(field, message)| Violation {
            key: format!("pools.{name}.{field}"),
            message,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn physical_memory_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            let memory = physical_memory().expect("MemTotal in /proc/meminfo");
            assert!(memory > 16 << 20, "{memory}");
            assert_eq!(max_idle_bytes() as u64, memory / 2);
        }
    }
}
