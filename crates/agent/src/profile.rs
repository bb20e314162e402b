//! Heap profiles: the `profiling` config applied to jemalloc's sampler, and (feature `tokio`)
//! `GET /debug/pprof/heap` on the metrics listener (pprof, or `?format=svg` for a flame graph).
//! Without the `profiling` feature the route explains how to get it.

#[cfg(feature = "tokio")]
mod route;

#[cfg(feature = "tokio")]
pub(crate) use route::route;

use crate::{Error, ProfilingConfig};

/// Switches jemalloc's sampling to match `config`.
///
/// # Errors
///
/// [`Error::Profiling`] when `config.enabled` asks for profiles this build or binary cannot
/// make, or jemalloc refuses the change.
pub(crate) fn apply(config: &ProfilingConfig) -> Result<(), Error> {
    #[cfg(feature = "profiling")]
    {
        use heapscape_heartbeat::profile;
        if !config.enabled && !profile::profiler_enabled() {
            // Nothing samples, and nothing can: leave jemalloc alone.
            return Ok(());
        }
        profile::set_sampling(config.enabled, config.sample_rate).map_err(|error| {
            Error::Profiling {
                reason: error.to_string(),
            }
        })
    }
    #[cfg(not(feature = "profiling"))]
    {
        if config.enabled {
            return Err(Error::Profiling {
                reason: NOT_BUILT.to_owned(),
            });
        }
        Ok(())
    }
}

#[cfg(not(feature = "profiling"))]
const NOT_BUILT: &str = "heapscape was built without its `profiling` feature: build with \
     `heapscape = { features = [\"profiling\"] }` (and export `_rjem_malloc_conf`, see the \
     README), or set `profiling.enabled: false`";

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(feature = "profiling"))]
    #[test]
    fn without_the_feature_profiling_cannot_be_turned_on() {
        assert!(apply(&ProfilingConfig::default()).is_ok());
        let enabled = ProfilingConfig {
            enabled: true,
            ..ProfilingConfig::default()
        };
        let error = apply(&enabled).expect_err("cannot be turned on");
        assert!(error.to_string().contains("`profiling` feature"), "{error}");
    }
}
