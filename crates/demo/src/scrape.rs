//! Reading a `serve` child's metrics listener: one request on a connection of its own, the
//! scrape, and the series `compare` and `soak` read.
//!
//! The names are written here once, as the exposition spells them, so the rest of the crate
//! reads series by constant.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use heapscape_cli::exposition;

/// Bytes allocated (counting allocator), a counter.
pub(crate) const ALLOC_BYTES: &str = "heapscape_alloc_bytes_total";
/// Allocations (counting allocator), a counter.
pub(crate) const ALLOCATIONS: &str = "heapscape_alloc_allocations_total";
/// jemalloc `stats.allocated`.
pub(crate) const ALLOCATED: &str = "heapscape_jemalloc_allocated_bytes";
/// jemalloc `stats.active`.
pub(crate) const ACTIVE: &str = "heapscape_jemalloc_active_bytes";
/// jemalloc `stats.resident`.
pub(crate) const RESIDENT: &str = "heapscape_jemalloc_resident_bytes";
/// Unix time of the heartbeat's last successful sample.
pub(crate) const HEARTBEAT_TIMESTAMP: &str = "heapscape_heartbeat_last_success_timestamp_seconds";
/// 1 while the heartbeat samples.
pub(crate) const HEARTBEAT_UP: &str = "heapscape_heartbeat_up";
/// Config reloads applied.
pub(crate) const CONFIG_RELOADS: &str = "heapscape_config_reloads_total";
/// Minor page faults of the process, a counter.
pub(crate) const MINOR_FAULTS: &str = "heapscape_process_minor_page_faults_total";
/// Pool gets served from an idle buffer.
pub(crate) const HITS: &str = "heapscape_pool_hits_total";
/// Pool gets that allocated.
pub(crate) const MISSES: &str = "heapscape_pool_misses_total";
/// Buffers the pool dropped instead of keeping, by `reason`.
pub(crate) const DISCARDS: &str = "heapscape_pool_discards_total";
/// The pool's recommended `max_buffer_size`.
pub(crate) const RECOMMENDED_MAX: &str = "heapscape_pool_recommended_max_buffer_size_bytes";
/// The pool's recommended `initial_capacity`.
pub(crate) const RECOMMENDED_INITIAL: &str = "heapscape_pool_recommended_initial_capacity_bytes";
/// The pool's recommended `max_idle_buffers` (from pool versions that publish it).
pub(crate) const RECOMMENDED_IDLE_BUFFERS: &str = "heapscape_pool_recommended_max_idle_buffers";
/// The pool's recommended `max_idle_bytes` (from pool versions that publish it).
pub(crate) const RECOMMENDED_IDLE_BYTES: &str = "heapscape_pool_recommended_max_idle_bytes";
/// Returns within the pool's recommendation window: what its recommendations rest on.
pub(crate) const RECOMMENDATION_RETURNS: &str = "heapscape_pool_recommendation_returns";
/// The fewest returns a recommendation rests on; below it the recommendations read NaN.
pub(crate) const RECOMMENDATION_MIN_RETURNS: &str = "heapscape_pool_recommendation_min_returns";
/// The pool's `max_buffer_size` in force.
pub(crate) const MAX_BUFFER_SIZE: &str = "heapscape_pool_max_buffer_size_bytes";
/// The pool's `initial_capacity` in force.
pub(crate) const INITIAL_CAPACITY: &str = "heapscape_pool_initial_capacity_bytes";
/// The pool's `max_idle_buffers` in force.
pub(crate) const MAX_IDLE_BUFFERS: &str = "heapscape_pool_max_idle_buffers";
/// The pool's `max_idle_bytes` in force.
pub(crate) const MAX_IDLE_BYTES: &str = "heapscape_pool_max_idle_bytes";
/// Auto-tuning's moves, a counter keyed `..._total{setting="<config key>"}`.
pub(crate) const AUTO_TUNE_MOVES: &str = "heapscape_pool_auto_tune_moves_total";
/// Auto-tuning's target for `max_buffer_size` at the last tick.
pub(crate) const AUTO_TUNE_TARGET_MAX: &str =
    "heapscape_pool_auto_tune_target_max_buffer_size_bytes";
/// Auto-tuning's target for `initial_capacity` at the last tick.
pub(crate) const AUTO_TUNE_TARGET_INITIAL: &str =
    "heapscape_pool_auto_tune_target_initial_capacity_bytes";
/// Auto-tuning's target for `max_idle_buffers` at the last tick.
pub(crate) const AUTO_TUNE_TARGET_IDLE_BUFFERS: &str =
    "heapscape_pool_auto_tune_target_max_idle_buffers";
/// Auto-tuning's target for `max_idle_bytes` at the last tick.
pub(crate) const AUTO_TUNE_TARGET_IDLE_BYTES: &str =
    "heapscape_pool_auto_tune_target_max_idle_bytes";
/// Buffers returned to the pool.
pub(crate) const RETURNS: &str = "heapscape_pool_returns_total";
/// Returned buffers shrunk to the max and kept, a counter.
pub(crate) const SHRINKS: &str = heapscape_pool::metrics::SHRINKS.name;
/// Returned buffers that grew while on loan, a counter.
pub(crate) const REGROWS: &str = heapscape_pool::metrics::REGROWS.name;
/// Bytes held by idle buffers.
pub(crate) const IDLE_BYTES: &str = heapscape_pool::metrics::IDLE_BYTES.name;
/// A candidate max buffer size, keyed `...{candidate="<role>"}`.
pub(crate) const CANDIDATE_MAX: &str = heapscape_pool::metrics::CANDIDATE_MAX.name;
/// The share of the window's returns over a candidate max.
pub(crate) const CANDIDATE_OVER_MAX: &str = heapscape_pool::metrics::CANDIDATE_OVER_MAX.name;
/// Bytes per second regrowing past a candidate max would copy.
pub(crate) const CANDIDATE_REGROW_BYTES: &str =
    heapscape_pool::metrics::CANDIDATE_REGROW_BYTES.name;
/// The most idle memory a candidate max allows.
pub(crate) const CANDIDATE_IDLE_BOUND: &str = heapscape_pool::metrics::CANDIDATE_IDLE_BOUND.name;
/// Cumulative buckets of the returned lengths, keyed `..._bucket{le="<bound>"}`.
pub(crate) const RETURNED_LENGTH_BUCKET: &str = "heapscape_pool_returned_length_bytes_bucket";

/// How long a scrape may take, answer and body.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// `GET http://<target><path>`: the status and the whole body, within `limit`.
///
/// One connection per request, closed by the service once it has answered: a round of
/// requests then gives its connections back before the next one opens, however slowly the
/// client side notices the end (the listener caps connections per address).
///
/// # Errors
///
/// `<what> failed: <reason>` when the request or its body fails, `<what> timed out` after
/// `limit`.
pub(crate) async fn get(
    target: SocketAddr,
    path: &str,
    what: &str,
    limit: Duration,
) -> Result<(hyper::StatusCode, Bytes), String> {
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let request = hyper::Request::get(format!("http://{target}{path}"))
        .header(hyper::header::CONNECTION, "close")
        .body(Empty::new())
        .map_err(|e| format!("bad {what} URL: {e}"))?;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| format!("{what} failed: {e}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{what} failed: {e}"))?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| format!("{what} timed out"))?
}

/// Scrapes `http://<target>/metrics` once and reads it with [`exposition`]: each series keyed
/// by its name and labels, the `pooling` and `pool` labels left out (both modes read alike).
///
/// # Errors
///
/// The reason, when the scrape fails, answers other than 2xx, does not parse, or takes over
/// 10 s.
pub(crate) async fn fetch(target: SocketAddr) -> Result<BTreeMap<String, f64>, String> {
    let (status, body) = get(target, "/metrics", "scrape", SCRAPE_TIMEOUT).await?;
    if !status.is_success() {
        return Err(format!("scrape answered {status}"));
    }
    let text = String::from_utf8_lossy(&body);
    let samples = exposition::parse(&text).map_err(|e| format!("unreadable metrics: {e}"))?;
    Ok(exposition::by_series(&samples, &["pooling", "pool"]))
}
