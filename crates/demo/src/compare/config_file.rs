//! The config files `compare` writes for its services: where they go, the `pcm` pool's section
//! as the agent reads it, and the write itself, in one step.

use std::path::{Path, PathBuf};

use heapscape_pool::PoolConfig;
use heapscape_pool::config::OverMaxPolicy;

use crate::Error;
use crate::server::POOL_NAME;

/// A service's config file beside the report: `<report stem>-<mode>.yaml`.
pub(super) fn beside(report: &Path, mode: &str) -> PathBuf {
    let stem = report
        .file_stem()
        .map_or_else(|| "heapscape-compare".into(), |s| s.to_string_lossy());
    report.with_file_name(format!("{stem}-{mode}.yaml"))
}

/// `pool` as the `pools:` section of an agent config, every setting written out (the
/// `auto_tune:` block only when it is on, `recommendation_min_returns` only when set rather
/// than the pool's default), so the file shows what the service runs.
pub(super) fn pools_yaml(pool: &PoolConfig) -> String {
    // Every variant named: a policy added to the pool fails this match instead of being
    // written as another one.
    let over_max = match pool.over_max {
        OverMaxPolicy::Shrink => "shrink",
        OverMaxPolicy::Drop => "drop",
    };
    let mut yaml = format!(
        "pools:\n  {POOL_NAME}:\n\
         \x20   initial_capacity: {}\n\
         \x20   max_buffer_size: {}\n\
         \x20   max_idle_buffers: {}\n\
         \x20   max_idle_bytes: {}\n\
         \x20   idle_timeout: {}ms\n\
         \x20   over_max: {over_max}\n\
         \x20   recommend_percentile: {}\n\
         \x20   recommendation_window: {}ms\n",
        pool.initial_capacity,
        pool.max_buffer_size,
        pool.max_idle_buffers,
        pool.max_idle_bytes,
        pool.idle_timeout.as_millis(),
        pool.recommend_percentile,
        pool.recommendation_window.as_millis(),
    );
    if let Some(returns) = pool.recommendation_min_returns {
        yaml.push_str(&format!("    recommendation_min_returns: {returns}\n"));
    }
    let tune = &pool.auto_tune;
    if tune.enabled {
        yaml.push_str(&format!(
            "    auto_tune:\n\
             \x20     enabled: true\n\
             \x20     lowest_max_buffer_size: {}\n\
             \x20     highest_max_buffer_size: {}\n\
             \x20     cooldown: {}ms\n\
             \x20     hysteresis: {}\n",
            tune.lowest_max_buffer_size,
            tune.highest_max_buffer_size,
            tune.cooldown.as_millis(),
            tune.hysteresis,
        ));
    }
    yaml
}

/// Writes `text` to `path` in one step (a temporary file renamed over it), so the watching
/// service never reads half a file.
pub(super) fn write(path: &Path, text: &str) -> Result<(), Error> {
    let temporary = path.with_extension("yaml.tmp");
    std::fs::write(&temporary, text).map_err(|error| Error::Write {
        path: temporary.clone(),
        error,
    })?;
    std::fs::rename(&temporary, path).map_err(|error| Error::Write {
        path: path.to_owned(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The keys and values are spelled here by hand; the agent's reader is their definition.
    #[test]
    fn every_setting_written_reads_back_as_the_agent_reads_it() {
        let mut pool = PoolConfig::default();
        pool.initial_capacity = 8 << 10;
        pool.max_buffer_size = 1 << 20;
        pool.max_idle_buffers = 7;
        pool.max_idle_bytes = 9 << 20;
        pool.idle_timeout = Duration::from_secs(5);
        pool.over_max = OverMaxPolicy::Drop;
        pool.recommend_percentile = 0.9;
        pool.recommendation_window = Duration::from_secs(120);
        pool.recommendation_min_returns = Some(30);
        pool.auto_tune.enabled = true;
        pool.auto_tune.lowest_max_buffer_size = 64 << 10;
        pool.auto_tune.highest_max_buffer_size = 2 << 20;
        pool.auto_tune.cooldown = Duration::from_secs(30);
        pool.auto_tune.hysteresis = 0.2;
        let yaml = format!("exporter: {{ prometheus: {{}} }}\n{}", pools_yaml(&pool));
        let config = heapscape::Config::from_yaml_str(&yaml, "pools.yaml")
            .unwrap_or_else(|error| panic!("{error}\n{yaml}"));
        assert_eq!(config.pools[POOL_NAME], pool, "{yaml}");
    }
}
