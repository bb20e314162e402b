//! The auto mode: a pooled service started from the pooled defaults with `auto_tune` on, which
//! tunes itself on its heartbeat ticks during the warm-up; its settings in force are read back
//! and set beside the tuned mode's.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use heapscape_pool::PoolConfig;
use heapscape_pool::config::TunedSetting;

use super::summary::{Auto, Tuned};
use super::{config_file, tuned};
use crate::Error;
use crate::child::ServeChild;
use crate::scrape::{
    self, AUTO_TUNE_MOVES, AUTO_TUNE_TARGET_IDLE_BUFFERS, AUTO_TUNE_TARGET_IDLE_BYTES,
    AUTO_TUNE_TARGET_INITIAL, AUTO_TUNE_TARGET_MAX, INITIAL_CAPACITY, MAX_BUFFER_SIZE,
    MAX_IDLE_BUFFERS, MAX_IDLE_BYTES,
};

/// Auto-tuning's cooldown in `compare` (the pool's default is 10 min, longer than a whole run).
/// At compare's 1 s heartbeat a target must be seen outside the band on four ticks in a row
/// before it moves the pool, so the first ticks' reading of a handful of returns does not move
/// it alone; and 3 s is short enough that the move lands within or soon after a default 3 s
/// warm-up (or `--quick`'s 1 s one), in the settle time after it, where the warm-up's returns are
/// still in the window.
const COOLDOWN: Duration = Duration::from_secs(3);

/// The auto service's `recommendation_window` (the pool's default is 1 h). The recommendations
/// read the interval in progress, so a short window is not what makes auto converge; it must
/// hold the warm-up's returns through the cooldown after the load stops, and one slice's
/// returns through the other modes' slices until auto's next (a round of five 4 s slices, 10 s
/// with `--quick`): a window that emptied there would make the tuner forget targets waiting
/// out their cooldown. A minute does both, and within a run of a few minutes auto follows
/// recent traffic rather than everything since it started, as a service would.
const RECOMMENDATION_WINDOW: Duration = Duration::from_secs(60);

/// How long after the warm-up, beyond the cooldown, the auto service has to finish the moves
/// under way: a few late heartbeat ticks on a busy machine.
const SETTLE_MARGIN: Duration = Duration::from_secs(10);

/// The tuned settings: config key, the gauge of the
/// value in force, and the gauge of auto-tuning's target at the last tick.
const SETTINGS: [(&str, &str, &str); 4] = [
    (
        TunedSetting::MaxBufferSize.as_str(),
        MAX_BUFFER_SIZE,
        AUTO_TUNE_TARGET_MAX,
    ),
    (
        TunedSetting::InitialCapacity.as_str(),
        INITIAL_CAPACITY,
        AUTO_TUNE_TARGET_INITIAL,
    ),
    (
        TunedSetting::MaxIdleBuffers.as_str(),
        MAX_IDLE_BUFFERS,
        AUTO_TUNE_TARGET_IDLE_BUFFERS,
    ),
    (
        TunedSetting::MaxIdleBytes.as_str(),
        MAX_IDLE_BYTES,
        AUTO_TUNE_TARGET_IDLE_BYTES,
    ),
];

/// The auto service's pool: the pooled defaults (where auto-tuning starts) with auto-tuning on.
///
/// The bounds stay the pool's defaults, 4 KiB to 64 MiB for the max buffer size, far wider
/// than the load's stream sizes (8 KiB to 4 MiB): they never decide where auto lands. The idle
/// caps are ceilings auto-tuning only lowers, so the defaults' 64 buffers and 128 MiB are the
/// budget it may spend less of, as for the pooled service.
pub(super) fn pool_config(defaults: &PoolConfig) -> PoolConfig {
    let mut pool = defaults.clone();
    pool.recommendation_window = RECOMMENDATION_WINDOW;
    pool.auto_tune.enabled = true;
    pool.auto_tune.cooldown = COOLDOWN;
    pool
}

/// The auto service's config file.
pub(super) fn yaml(pool: &PoolConfig) -> String {
    format!(
        "# heapscape-demo compare: the auto service. The pooled service's defaults, with\n\
         # auto-tuning on: the pool moves its settings toward its own recommendations on\n\
         # heartbeat ticks (a short cooldown and window, so it does so within the run).\n\
         exporter: {{ prometheus: {{}} }}\n{}",
        config_file::pools_yaml(pool)
    )
}

/// Scrapes the auto service until no setting's target lies outside the band around the value
/// in force (the moves under way are done), or the cooldown and a margin have passed; returns
/// the last scrape and whether it settled.
///
/// # Errors
///
/// A scrape that fails.
pub(super) async fn settle(
    child: &ServeChild,
    pool: &PoolConfig,
) -> Result<(BTreeMap<String, f64>, bool), Error> {
    let deadline = tokio::time::Instant::now() + pool.auto_tune.cooldown + SETTLE_MARGIN;
    loop {
        let series = scrape::fetch(child.metrics)
            .await
            .map_err(|reason| child.failed(reason))?;
        let settled = within_band(&series, pool.auto_tune.hysteresis);
        if settled || tokio::time::Instant::now() >= deadline {
            return Ok((series, settled));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Whether every target in `series` lies within `hysteresis` of the value in force: the
/// tuner's own test for a move (none published yet counts as not settled).
fn within_band(series: &BTreeMap<String, f64>, hysteresis: f64) -> bool {
    SETTINGS.iter().all(|(_, in_force, target)| {
        match (series.get(*in_force), series.get(*target)) {
            (Some(value), Some(target)) => (target - value).abs() <= value * hysteresis,
            _ => false,
        }
    })
}

/// The settings in force in `series`, by config key.
fn settings(series: &BTreeMap<String, f64>) -> BTreeMap<&'static str, f64> {
    SETTINGS
        .iter()
        .filter_map(|(key, in_force, _)| Some((*key, *series.get(*in_force)?)))
        .collect()
}

/// The moves per setting in `series` (0 for a setting that never moved).
fn moves(series: &BTreeMap<String, f64>) -> BTreeMap<&'static str, f64> {
    SETTINGS
        .iter()
        .map(|(key, _, _)| {
            let name = format!("{AUTO_TUNE_MOVES}{{setting=\"{key}\"}}");
            (*key, series.get(&name).copied().unwrap_or(0.0))
        })
        .collect()
}

/// Per setting, what auto-tuning may set it to (see [`Auto::bounds`]).
fn bounds(pool: &PoolConfig) -> BTreeMap<&'static str, [f64; 2]> {
    let (lowest, highest) = pool.auto_tune_range();
    let (lowest, highest) = (lowest as f64, highest as f64);
    BTreeMap::from([
        (TunedSetting::MaxBufferSize.as_str(), [lowest, highest]),
        (TunedSetting::InitialCapacity.as_str(), [1.0, highest]),
        (
            TunedSetting::MaxIdleBuffers.as_str(),
            [1.0, pool.max_idle_buffers as f64],
        ),
        (
            TunedSetting::MaxIdleBytes.as_str(),
            [lowest, pool.max_idle_bytes as f64],
        ),
    ])
}

/// The auto mode as reported: `warm` is its scrape after the warm-up (see [`settle`]), `end`
/// after the last slice.
pub(super) fn describe(
    pool: &PoolConfig,
    config_file: &Path,
    (warm, settled): (&BTreeMap<String, f64>, bool),
    end: &BTreeMap<String, f64>,
    tuned: &Tuned,
) -> Auto {
    let start = tuned::settings(pool);
    let after_warmup = settings(warm);
    let moved = after_warmup
        .iter()
        .any(|(key, value)| start.get(key) != Some(value));
    let vs_tuned = after_warmup
        .iter()
        .filter_map(|(key, auto)| {
            let tuned = tuned.pool.get(key).filter(|tuned| **tuned > 0.0)?;
            Some((*key, auto / tuned))
        })
        .collect();
    Auto {
        config_file: config_file.to_owned(),
        tuning: BTreeMap::from([
            ("cooldown_seconds", pool.auto_tune.cooldown.as_secs_f64()),
            ("hysteresis", pool.auto_tune.hysteresis),
            (
                "recommendation_window_seconds",
                pool.recommendation_window.as_secs_f64(),
            ),
        ]),
        bounds: bounds(pool),
        start,
        after_warmup,
        moves_after_warmup: moves(warm),
        moved,
        settled,
        vs_tuned,
        at_end: settings(end),
        moves_at_end: moves(end),
    }
}

#[cfg(test)]
mod tests {
    use heapscape_pool::config::TunedSetting;

    use super::*;
    use crate::server::POOL_NAME;

    #[test]
    fn the_settings_read_are_the_ones_auto_tuning_moves() {
        let keys: Vec<&str> = SETTINGS.iter().map(|(key, _, _)| *key).collect();
        assert_eq!(keys, TunedSetting::ALL.map(TunedSetting::as_str));
    }

    #[test]
    fn the_auto_file_is_the_pooled_defaults_with_auto_tuning_on() {
        let defaults = tuned::pooled_defaults().unwrap();
        let pool = pool_config(&defaults);
        let config = heapscape::Config::from_yaml_str(&yaml(&pool), "auto.yaml")
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(config.pools[POOL_NAME], pool);
        assert!(pool.auto_tune.enabled);
        assert_eq!(tuned::settings(&pool), tuned::settings(&defaults));
        let bounds = bounds(&pool);
        for (key, start) in tuned::settings(&pool) {
            let [lowest, highest] = bounds[key];
            assert!(
                (lowest..=highest).contains(&start),
                "{key} starts at {start}"
            );
        }
    }

    #[test]
    fn settled_means_every_target_within_the_band() {
        let mut series: BTreeMap<String, f64> = SETTINGS
            .iter()
            .flat_map(|(_, in_force, target)| [(in_force, 100.0), (target, 120.0)])
            .map(|(name, value)| ((*name).to_owned(), value))
            .collect();
        assert!(within_band(&series, 0.25));
        series.insert(AUTO_TUNE_TARGET_MAX.to_owned(), 30.0);
        assert!(!within_band(&series, 0.25), "a move waits out its cooldown");
        series.remove(AUTO_TUNE_TARGET_MAX);
        assert!(!within_band(&series, 0.25), "no target published yet");
    }

    #[test]
    fn moves_and_ratios_are_read_per_setting() {
        let defaults = tuned::pooled_defaults().unwrap();
        let pool = pool_config(&defaults);
        let mut tuned_pool = defaults.clone();
        tuned_pool.max_buffer_size = 1 << 20;
        let tuned = Tuned {
            recommendation: BTreeMap::new(),
            defaults: tuned::settings(&defaults),
            pool: tuned::settings(&tuned_pool),
            jemalloc: BTreeMap::new(),
            applied_max_buffer_size: (1 << 20) as f64,
            config_file: "tuned.yaml".into(),
            applied_by: "test",
        };
        let mut warm: BTreeMap<String, f64> = tuned::settings(&defaults)
            .into_iter()
            .map(|(key, value)| {
                let (_, in_force, _) = SETTINGS.iter().find(|(k, _, _)| *k == key).unwrap();
                ((*in_force).to_owned(), value)
            })
            .collect();
        let unmoved = describe(&pool, Path::new("auto.yaml"), (&warm, true), &warm, &tuned);
        assert!(!unmoved.moved);
        assert_eq!(unmoved.moves_after_warmup["max_buffer_size"], 0.0);

        warm.insert(MAX_BUFFER_SIZE.to_owned(), (1_310_720) as f64);
        warm.insert(
            format!("{AUTO_TUNE_MOVES}{{setting=\"max_buffer_size\"}}"),
            1.0,
        );
        let moved = describe(&pool, Path::new("auto.yaml"), (&warm, true), &warm, &tuned);
        assert!(moved.moved);
        assert_eq!(moved.moves_after_warmup["max_buffer_size"], 1.0);
        assert_eq!(moved.vs_tuned["max_buffer_size"], 1.25);
        assert_eq!(moved.vs_tuned["max_idle_buffers"], 1.0);
    }
}
