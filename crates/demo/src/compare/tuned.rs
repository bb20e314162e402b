//! The tuned mode's settings: read from the pooled service's recommendation, written into the
//! tuned service's config file as ops would, and confirmed once the service has reloaded it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use clap::Parser as _;
use heapscape_pool::PoolConfig;
use heapscape_pool::config::TunedSetting;

use super::config_file;
use super::summary::Tuned;
use crate::Error;
use crate::child::ServeChild;
use crate::scrape::{
    self, CONFIG_RELOADS, MAX_BUFFER_SIZE, RECOMMENDATION_MIN_RETURNS, RECOMMENDATION_RETURNS,
    RECOMMENDED_IDLE_BUFFERS, RECOMMENDED_IDLE_BYTES, RECOMMENDED_INITIAL, RECOMMENDED_MAX,
};
use crate::server::{POOL_NAME, ServeOptions, agent_config};

/// Time the tuned service has to reload its file and publish the new max.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Reload failures, a counter: a rejected file is reported at once, not after the timeout.
const CONFIG_RELOAD_FAILURES: &str = "heapscape_config_reload_failures_total";

/// jemalloc decay settings of the tuned and pooled+decay services.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct TunedDecay {
    /// Tuned and pooled+decay modes: jemalloc's dirty decay time (how long freed pages stay
    /// resident).
    ///
    /// 0 s by default: the tuned pool still frees its few returns above the max (each a
    /// buffer of megabytes); at 1 s those frees kept about 12 MiB dirty and the tuned
    /// service's resident mean at 84 % of pooled's against 60 % at 0 s. The cost, about 20
    /// page faults per request, is in the report's page faults row.
    #[arg(long = "tuned-dirty-decay", default_value = "0s", value_parser = humantime::parse_duration)]
    pub dirty_decay: Duration,
    /// Tuned and pooled+decay modes: jemalloc's muzzy decay time.
    #[arg(long = "tuned-muzzy-decay", default_value = "0s", value_parser = humantime::parse_duration)]
    pub muzzy_decay: Duration,
    /// Tuned and pooled+decay modes: purge on jemalloc's background threads.
    #[arg(long = "tuned-background-thread", default_value_t = true, action = clap::ArgAction::Set)]
    pub background_thread: bool,
}

/// `serve` with no options, to read the pool it starts with.
#[derive(clap::Parser)]
struct DefaultServe {
    #[command(flatten)]
    options: ServeOptions,
}

/// The `pcm` pool a `serve` child without `--config` runs: the pooled mode's settings.
pub(super) fn pooled_defaults() -> Result<PoolConfig, Error> {
    let serve = DefaultServe::try_parse_from(["serve"])
        .map_err(|error| Error::InvalidOptions(format!("serve's defaults: {error}")))?;
    let config = agent_config(&serve.options)?;
    config.pools.get(POOL_NAME).cloned().ok_or_else(|| {
        Error::InvalidOptions(format!("serve's default config has no {POOL_NAME:?} pool"))
    })
}

/// The tuned service's config before the warm-up: no pools (`serve` adds its default `pcm`
/// pool, as for the pooled service), so both pooled services start alike.
pub(super) fn baseline_yaml() -> String {
    "# heapscape-demo compare: the tuned service, before the pooled service's recommendation\n\
     exporter: { prometheus: {} }\n"
        .to_owned()
}

/// The pooled service's config with `--quick`: `pool` (`serve`'s default pool, recommending
/// from fewer returns) as the `pcm` pool.
pub(super) fn quick_pooled_yaml(pool: &PoolConfig) -> String {
    format!(
        "# heapscape-demo compare --quick: the pooled service. serve's default pool, its\n\
         # recommendations resting on fewer returns than the pool's default, as a 1 s warm-up\n\
         # holds tens of them.\n\
         exporter: {{ prometheus: {{}} }}\n{}",
        config_file::pools_yaml(pool)
    )
}

/// The defaults with the recommendation in `series` (a scrape of the pooled service) applied:
/// max buffer size and initial capacity, and the idle caps when the pool publishes
/// recommendations for them. Also returns the recommendation as read.
///
/// # Errors
///
/// When the pooled service published no recommended max (fewer returns in its window than a
/// recommendation rests on), or the result is not a valid pool config.
pub(super) fn recommend(
    defaults: &PoolConfig,
    series: &BTreeMap<String, f64>,
) -> Result<(PoolConfig, BTreeMap<&'static str, f64>), String> {
    let read = |name: &str| {
        series
            .get(name)
            .copied()
            .filter(|v| v.is_finite() && *v > 0.0)
    };
    let recommendation: BTreeMap<&'static str, f64> = [
        (TunedSetting::MaxBufferSize.as_str(), RECOMMENDED_MAX),
        (TunedSetting::InitialCapacity.as_str(), RECOMMENDED_INITIAL),
        (
            TunedSetting::MaxIdleBuffers.as_str(),
            RECOMMENDED_IDLE_BUFFERS,
        ),
        (TunedSetting::MaxIdleBytes.as_str(), RECOMMENDED_IDLE_BYTES),
    ]
    .into_iter()
    .filter_map(|(key, series)| Some((key, read(series)?)))
    .collect();
    let Some(&max) = recommendation.get("max_buffer_size") else {
        let returns = series.get(RECOMMENDATION_RETURNS).copied().unwrap_or(0.0);
        let needed = series
            .get(RECOMMENDATION_MIN_RETURNS)
            .map_or_else(String::new, |min| format!(" of the {min} it rests on"));
        return Err(format!(
            "the pooled service published no recommended max buffer size: its window holds \
             {returns} returns{needed} (recommendation_min_returns); run a longer warm-up \
             (--warmup)"
        ));
    };
    // Gauges carry whole byte counts and counts; `as` saturates anything absurd.
    let whole = |value: f64| value.round() as usize;
    let mut config = defaults.clone();
    config.max_buffer_size = whole(max).max(1);
    config.initial_capacity = recommendation
        .get("initial_capacity")
        .map_or(config.initial_capacity, |v| whole(*v))
        .clamp(1, config.max_buffer_size);
    if let Some(buffers) = recommendation.get("max_idle_buffers") {
        config.max_idle_buffers = whole(*buffers).max(1);
    }
    if let Some(bytes) = recommendation.get("max_idle_bytes") {
        config.max_idle_bytes = whole(*bytes);
    }
    config.max_idle_bytes = config.max_idle_bytes.max(config.max_buffer_size);
    config
        .validate()
        .map_err(|error| format!("the recommended settings are not valid: {error}"))?;
    Ok((config, recommendation))
}

/// The tuned service's config file: `pool` as the `pcm` pool and the decay settings, with
/// comments saying where the values came from.
pub(super) fn tuned_yaml(pool: &PoolConfig, decay: &TunedDecay) -> String {
    format!(
        "# heapscape-demo compare: the tuned service. max_buffer_size and initial_capacity are\n\
         # the pooled service's recommendation after the warm-up (the idle caps too when it\n\
         # publishes them); the rest are the pooled service's defaults.\n\
         exporter: {{ prometheus: {{}} }}\n\
         {}{}",
        config_file::pools_yaml(pool),
        jemalloc_yaml(decay),
    )
}

/// The pooled+decay service's config file: the pooled service's pool (`pool`) with the tuned
/// service's decay settings, so that beside pooled it shows what the decay alone does, and
/// beside tuned what the caps alone do.
pub(super) fn decay_yaml(pool: &PoolConfig, decay: &TunedDecay) -> String {
    format!(
        "# heapscape-demo compare: the pooled+decay service. The pooled service's pool with\n\
         # the tuned service's jemalloc settings: one lever at a time.\n\
         exporter: {{ prometheus: {{}} }}\n\
         {}{}",
        config_file::pools_yaml(pool),
        jemalloc_yaml(decay),
    )
}

/// The `jemalloc:` section of `decay`.
fn jemalloc_yaml(decay: &TunedDecay) -> String {
    format!(
        "# Freed pages leave the resident set sooner: the pool's caps lower what is allocated,\n\
         # these settings how long the difference stays resident.\n\
         jemalloc:\n\
         \x20 dirty_decay: {}ms\n\
         \x20 muzzy_decay: {}ms\n\
         \x20 background_thread: {}\n",
        decay.dirty_decay.as_millis(),
        decay.muzzy_decay.as_millis(),
        decay.background_thread,
    )
}

/// Writes the tuned config into the tuned service's file and waits until the service has
/// reloaded it and publishes the new max; returns what it reports.
///
/// # Errors
///
/// The file cannot be written, the service rejects it, or it does not reload in time.
pub(super) async fn apply(
    child: &ServeChild,
    path: &Path,
    pool: &PoolConfig,
    decay: &TunedDecay,
) -> Result<f64, Error> {
    let before = scrape::fetch(child.metrics)
        .await
        .map_err(|reason| child.failed(reason))?;
    let count = |series: &BTreeMap<String, f64>, name: &str| series.get(name).copied();
    config_file::write(path, &tuned_yaml(pool, decay))?;
    let expected = pool.max_buffer_size as f64;
    let deadline = tokio::time::Instant::now() + RELOAD_TIMEOUT;
    loop {
        let now = scrape::fetch(child.metrics)
            .await
            .map_err(|reason| child.failed(reason))?;
        if count(&now, CONFIG_RELOAD_FAILURES) > count(&before, CONFIG_RELOAD_FAILURES) {
            return Err(child.failed(format!(
                "rejected the tuned config {} (its stderr says why)",
                path.display()
            )));
        }
        let reloaded = count(&now, CONFIG_RELOADS) > count(&before, CONFIG_RELOADS);
        match now.get(MAX_BUFFER_SIZE) {
            Some(&applied) if reloaded && applied == expected => return Ok(applied),
            _ if tokio::time::Instant::now() >= deadline => {
                return Err(child.failed(format!(
                    "did not apply the tuned config {} within {RELOAD_TIMEOUT:?}",
                    path.display()
                )));
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The settings auto-tuning moves, by config key, as `pool` sets them.
pub(super) fn settings(pool: &PoolConfig) -> BTreeMap<&'static str, f64> {
    BTreeMap::from([
        ("max_buffer_size", pool.max_buffer_size as f64),
        ("initial_capacity", pool.initial_capacity as f64),
        ("max_idle_buffers", pool.max_idle_buffers as f64),
        ("max_idle_bytes", pool.max_idle_bytes as f64),
    ])
}

/// The tuned mode's settings as reported.
pub(super) fn describe(
    recommendation: BTreeMap<&'static str, f64>,
    defaults: &PoolConfig,
    pool: &PoolConfig,
    decay: &TunedDecay,
    applied_max_buffer_size: f64,
    config_file: &Path,
) -> Tuned {
    Tuned {
        recommendation,
        defaults: settings(defaults),
        pool: settings(pool),
        jemalloc: BTreeMap::from([
            ("dirty_decay_ms", decay.dirty_decay.as_millis() as f64),
            ("muzzy_decay_ms", decay.muzzy_decay.as_millis() as f64),
            (
                "background_thread",
                f64::from(u8::from(decay.background_thread)),
            ),
        ]),
        applied_max_buffer_size,
        config_file: config_file.to_owned(),
        applied_by: "written into the running service's --config file and hot-reloaded",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recommendation_replaces_the_max_and_initial_capacity_only() {
        let defaults = pooled_defaults().unwrap();
        let series = BTreeMap::from([
            (RECOMMENDED_MAX.to_owned(), 1_572_864.0),
            (RECOMMENDED_INITIAL.to_owned(), 262_144.0),
        ]);
        let (config, recommendation) = recommend(&defaults, &series).unwrap();
        assert_eq!(config.max_buffer_size, 1_572_864);
        assert_eq!(config.initial_capacity, 262_144);
        assert_eq!(config.max_idle_buffers, defaults.max_idle_buffers);
        assert_eq!(config.max_idle_bytes, defaults.max_idle_bytes);
        assert_eq!(recommendation.len(), 2);

        let with_caps = BTreeMap::from([
            (RECOMMENDED_MAX.to_owned(), 1_048_576.0),
            (RECOMMENDED_INITIAL.to_owned(), 4_000_000.0),
            (RECOMMENDED_IDLE_BUFFERS.to_owned(), 9.0),
            (RECOMMENDED_IDLE_BYTES.to_owned(), 9.0 * 1_048_576.0),
        ]);
        let (config, _) = recommend(&defaults, &with_caps).unwrap();
        assert_eq!(config.initial_capacity, 1_048_576, "never above the max");
        assert_eq!(config.max_idle_buffers, 9);
        assert_eq!(config.max_idle_bytes, 9 << 20);

        let error = recommend(&defaults, &BTreeMap::new()).unwrap_err();
        assert!(error.contains("no recommended max"), "{error}");
        let too_few = BTreeMap::from([
            (RECOMMENDED_MAX.to_owned(), f64::NAN),
            (RECOMMENDATION_RETURNS.to_owned(), 56.0),
            (RECOMMENDATION_MIN_RETURNS.to_owned(), 400.0),
        ]);
        let error = recommend(&defaults, &too_few).unwrap_err();
        assert!(
            error.contains("holds 56 returns of the 400 it rests on"),
            "{error}"
        );
    }

    #[test]
    fn the_tuned_file_is_a_valid_agent_config_with_the_settings() {
        let defaults = pooled_defaults().unwrap();
        let mut pool = defaults.clone();
        pool.max_buffer_size = 1_572_864;
        let decay = TunedDecay {
            dirty_decay: Duration::from_secs(1),
            muzzy_decay: Duration::ZERO,
            background_thread: true,
        };
        let config = heapscape::Config::from_yaml_str(&tuned_yaml(&pool, &decay), "tuned.yaml")
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(config.pools[POOL_NAME], pool);
        assert_eq!(config.jemalloc.dirty_decay, Some(Duration::from_secs(1)));
        assert_eq!(config.jemalloc.muzzy_decay, Some(Duration::ZERO));
        assert_eq!(config.jemalloc.background_thread, Some(true));
        let baseline = heapscape::Config::from_yaml_str(&baseline_yaml(), "baseline.yaml")
            .unwrap_or_else(|error| panic!("{error}"));
        assert!(baseline.pools.is_empty());

        let config = heapscape::Config::from_yaml_str(&decay_yaml(&defaults, &decay), "d.yaml")
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(config.pools[POOL_NAME], defaults);
        assert_eq!(config.jemalloc.dirty_decay, Some(Duration::from_secs(1)));
        assert_eq!(config.jemalloc.background_thread, Some(true));

        let mut quick = defaults.clone();
        quick.recommendation_min_returns = Some(20);
        let config = heapscape::Config::from_yaml_str(&quick_pooled_yaml(&quick), "pooled.yaml")
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(config.pools[POOL_NAME], quick);
    }
}
