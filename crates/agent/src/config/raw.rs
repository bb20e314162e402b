//! The file's shape, as written: what serde reads before validation turns it into a
//! [`Config`](super::Config).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::jemalloc::RawJemalloc;
use super::profiling::RawProfiling;
use crate::units::{ByteSize, HumanDuration};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) service: Option<Spanned<String>>,
    pub(super) labels: Option<Spanned<BTreeMap<String, String>>>,
    pub(super) exporter: Option<Spanned<RawExporter>>,
    pub(super) heartbeat: Option<RawHeartbeat>,
    pub(super) pools: Option<BTreeMap<String, Spanned<RawPool>>>,
    pub(super) jemalloc: Option<RawJemalloc>,
    pub(super) limits: Option<RawLimits>,
    pub(super) profiling: Option<RawProfiling>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) max_pools: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExporter {
    // `statsd:` with nothing after it selects StatsD with its defaults, hence `present`.
    #[serde(default, deserialize_with = "present")]
    pub(super) prometheus: Option<Spanned<Option<RawPrometheus>>>,
    #[serde(default, deserialize_with = "present")]
    pub(super) statsd: Option<Spanned<Option<RawStatsd>>>,
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
pub(super) struct RawPrometheus {
    pub(super) listen: Option<Spanned<String>>,
    pub(super) allow: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStatsd {
    pub(super) host: Option<Spanned<String>>,
    pub(super) port: Option<Spanned<u16>>,
    pub(super) queue_size: Option<Spanned<usize>>,
    pub(super) buffer_size: Option<Spanned<ByteSize>>,
    pub(super) tags: Option<Spanned<BTreeMap<String, String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHeartbeat {
    pub(super) interval: Option<Spanned<HumanDuration>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub(super) enum RawOverMax {
    Shrink,
    Drop,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPool {
    pub(super) initial_capacity: Option<Spanned<ByteSize>>,
    pub(super) max_buffer_size: Option<Spanned<ByteSize>>,
    pub(super) max_idle_buffers: Option<Spanned<usize>>,
    pub(super) max_idle_bytes: Option<Spanned<ByteSize>>,
    pub(super) idle_timeout: Option<Spanned<HumanDuration>>,
    pub(super) recommendation_window: Option<Spanned<HumanDuration>>,
    pub(super) over_max: Option<RawOverMax>,
    pub(super) recommend_percentile: Option<Spanned<f64>>,
    pub(super) recommendation_min_returns: Option<Spanned<u64>>,
    pub(super) auto_tune: Option<Spanned<RawAutoTune>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAutoTune {
    pub(super) enabled: Option<bool>,
    pub(super) lowest_max_buffer_size: Option<Spanned<ByteSize>>,
    pub(super) highest_max_buffer_size: Option<Spanned<ByteSize>>,
    pub(super) cooldown: Option<Spanned<HumanDuration>>,
    pub(super) hysteresis: Option<Spanned<f64>>,
}
