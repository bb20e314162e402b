//! Bounds on config values that the types alone allow but a running service cannot survive:
//! buffer sizes, the idle-bytes cap, the heartbeat interval and the number of pools.
//!
//! Checked for a file (with its location, in `validate`) and again for every config the agent
//! starts with or applies, so overrides and [`Agent::apply_config`](crate::Agent::apply_config)
//! cannot slip past them.

use std::time::Duration;

use heapscape_pool::PoolConfig;

use super::types::Config;

/// The largest `initial_capacity` and `max_buffer_size`: 1 GiB, the top bucket of the pool's
/// size histograms (`heapscape_pool::HISTOGRAM_METRICS`). A larger buffer is outside what the
/// pool measures and recommends, and one allocation that size is not pooling any more: a miss
/// of a `1000000GiB` pool aborted the process.
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
    for (name, pool) in &config.pools {
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
