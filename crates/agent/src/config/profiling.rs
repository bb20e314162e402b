//! `profiling:`: heap profiles served at `/debug/pprof/heap`; its type, its raw shape and its
//! validation.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::error::ConfigError;
use crate::units::ByteSize;

/// The sample rate used when `profiling.sample_rate` is omitted: one sample per 512 KiB
/// allocated on average, jemalloc's default.
pub const DEFAULT_PROFILING_SAMPLE_RATE: usize = 512 << 10;

/// The smallest sample rate accepted: below it sampling costs more than the 5 % budget.
const MIN_SAMPLE_RATE: u64 = 4 << 10;
/// The largest sample rate accepted: above it a profile holds too few samples to read.
const MAX_SAMPLE_RATE: u64 = 1 << 30;

/// `profiling`: jemalloc's sampling heap profiler (needs the `profiling` feature and the
/// binary's `_rjem_malloc_conf`; see the crate README). Off by default; both keys can change
/// while the service runs.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct ProfilingConfig {
    /// Whether allocations are sampled (jemalloc's `prof.active`), and so whether
    /// `/debug/pprof/heap` answers. Only allocations made while it is on appear in profiles.
    pub enabled: bool,
    /// Average bytes allocated between two samples, a power of two from 4 KiB to 1 GiB.
    /// Changing it forgets what was sampled so far.
    pub sample_rate: usize,
}

impl Default for ProfilingConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            sample_rate: DEFAULT_PROFILING_SAMPLE_RATE,
        }
    }
}

/// `profiling:` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProfiling {
    enabled: Option<bool>,
    sample_rate: Option<Spanned<ByteSize>>,
}

impl RawProfiling {
    pub(super) fn validate(self, file: &str) -> Result<ProfilingConfig, ConfigError> {
        let mut config = ProfilingConfig::default();
        if let Some(enabled) = self.enabled {
            config.enabled = enabled;
        }
        if let Some(rate) = self.sample_rate {
            let bytes = rate.value.0;
            if !bytes.is_power_of_two() || !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&bytes) {
                return Err(ConfigError::new(
                    file,
                    Some(rate.referenced),
                    Some("profiling.sample_rate".to_owned()),
                    format!(
                        "{bytes} bytes is not a sample rate jemalloc takes: write a power of \
                         two from 4KiB to 1GiB, e.g. 512KiB (the default)"
                    ),
                ));
            }
            config.sample_rate = usize::try_from(bytes).unwrap_or(usize::MAX);
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    fn parse(profiling: &str) -> Result<Config, crate::ConfigError> {
        Config::from_yaml_str(
            &format!("exporter: {{ prometheus: {{}} }}\nprofiling: {profiling}\n"),
            "test.yaml",
        )
    }

    #[test]
    fn profiling_is_off_at_512_kib_by_default() {
        let config =
            Config::from_yaml_str("exporter: { prometheus: {} }\n", "test.yaml").expect("valid");
        assert!(!config.profiling.enabled);
        assert_eq!(config.profiling.sample_rate, 512 << 10);
        let config = parse("{ enabled: true }").expect("valid");
        assert!(config.profiling.enabled);
        assert_eq!(config.profiling.sample_rate, 512 << 10);
    }

    #[test]
    fn a_sample_rate_is_a_power_of_two_in_range() {
        let config = parse("{ enabled: true, sample_rate: 64KiB }").expect("valid");
        assert_eq!(config.profiling.sample_rate, 64 << 10);
        for rate in ["500KB", "1KiB", "2GiB"] {
            let error =
                parse(&format!("{{ enabled: true, sample_rate: {rate} }}")).expect_err("refused");
            assert_eq!(error.key(), Some("profiling.sample_rate"), "{error}");
            assert_eq!((error.line(), error.column()), (Some(2), Some(42)));
            assert!(error.message().contains("power of two"), "{error}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = parse("{ enable: true }").expect_err("refused");
        assert!(error.message().contains("unknown field"), "{error}");
    }
}
