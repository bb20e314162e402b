//! A service whose Cargo.toml names `heapscape` alone: every pool type it tunes with is reached
//! through `heapscape::pool`, and nothing here names `heapscape_pool`.

use heapscape::pool::config::{AutoTuneConfig, OverMaxPolicy, TunedSetting};
use heapscape::pool::stats::DiscardReason;
use heapscape::pool::{Pool, PoolError};

#[test]
fn a_service_depending_only_on_heapscape_builds_tunes_and_reads_a_pool() -> Result<(), PoolError> {
    let mut auto_tune = AutoTuneConfig::default();
    auto_tune.enabled = true;
    let pool = Pool::builder("pcm")
        .initial_capacity(4 << 10)
        .max_buffer_size(64 << 10)
        .over_max(OverMaxPolicy::Drop)
        .recommendation_min_returns(1)
        .auto_tune(auto_tune)
        .build()?;

    pool.get().resize(100_000, 0); // grows past the max: dropped on return
    let stats = pool.stats();
    assert_eq!(stats.discards[DiscardReason::OverMax], 1);
    assert_eq!(stats.over_max_ratio(64 << 10), 1.0);
    let recommended = stats
        .recommended_max_buffer_size()
        .expect("one return is enough here");
    assert!(recommended >= 100_000, "{recommended}");
    assert_eq!(stats.auto_tune.moves_of(TunedSetting::MaxBufferSize), 0);

    // Raising the max live, as ops would after reading the recommendation.
    pool.set_max_buffer_size(usize::try_from(recommended).expect("fits"))?;
    pool.get().resize(100_000, 0);
    let stats = pool.stats();
    assert_eq!(stats.discards.over_max, 1, "kept this time");
    assert_eq!(stats.idle_buffers, 1);

    let error = pool
        .set_max_buffer_size(1 << 10)
        .expect_err("below the initial capacity");
    assert!(
        matches!(error, PoolError::InitialAboveMax { .. }),
        "{error}"
    );
    assert!(
        heapscape::pool::metrics::HISTOGRAM_METRICS
            .iter()
            .any(
                |(name, bounds)| *name == "heapscape_pool_returned_length_bytes"
                    && bounds.len() == heapscape::pool::metrics::LENGTH_BUCKETS.len()
            ),
        "an exporter of the service's own finds the bounds through heapscape"
    );
    Ok(())
}
