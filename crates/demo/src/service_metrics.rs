//! The service's own metric catalog, next to the pool's and the heartbeat's, and the
//! functions that emit it.

use axum::http::StatusCode;
use heapscape::metrics::{MetricDef, MetricKind};
use metrics::{Label, Unit};

/// `heapscape_demo_requests_total{status}`: responses by HTTP status.
pub const REQUESTS: MetricDef = MetricDef::new(
    "heapscape_demo_requests_total",
    MetricKind::Counter,
    Unit::Count,
    "Responses of the speech service, by HTTP status, also hyper's own refusals (400, 414, 431) and request heads that timed out (408).",
)
.with_labels(&["status"]);

/// `heapscape_demo_audio_bytes_total`: PCM bytes buffered and sent.
pub const AUDIO_BYTES: MetricDef = MetricDef::new(
    "heapscape_demo_audio_bytes_total",
    MetricKind::Counter,
    Unit::Bytes,
    "PCM bytes the speech service buffered and sent (WAV headers excluded).",
);

/// `heapscape_demo_log_lines_dropped_total`: log lines standard error refused.
pub const LOG_LINES_DROPPED: MetricDef = MetricDef::new(
    "heapscape_demo_log_lines_dropped_total",
    MetricKind::Counter,
    Unit::Count,
    "Log lines lost because standard error refused them (closed pipe, write error).",
);

/// `heapscape_demo_byte_budget_refusals_total`: requests refused because the byte budget was
/// full.
pub const BUDGET_REFUSALS: MetricDef = MetricDef::new(
    "heapscape_demo_byte_budget_refusals_total",
    MetricKind::Counter,
    Unit::Count,
    "Requests refused with 503 because the byte budget (--max-buffered-bytes) had no room for their audio within 2 s.",
);

/// Every metric the service itself publishes (the agent's catalogs,
/// [`heapscape::metrics::CATALOGS`], hold the rest).
pub const CATALOG: &[MetricDef] = &[REQUESTS, AUDIO_BYTES, BUDGET_REFUSALS, LOG_LINES_DROPPED];

/// Registers help text and units of the service's metrics with the installed recorder.
pub fn describe_metrics() {
    heapscape_pool::catalog::describe(CATALOG);
}

/// Counts a response by its status.
pub fn count_response(status: StatusCode) {
    // The statuses the service answers get label sets built at compile time: no allocation per
    // response.
    macro_rules! by_status {
        ($($code:literal),*) => {
            match status.as_u16() {
                $($code => {
                    static LABELS: [Label; 1] =
                        [Label::from_static_parts(REQUESTS.labels[0], stringify!($code))];
                    REQUESTS.counter_with(&LABELS)
                })*
                _ => REQUESTS.counter([status.as_str().to_owned().into()]),
            }
        };
    }
    by_status!(
        200, 400, 404, 405, 408, 413, 414, 415, 422, 431, 500, 502, 503
    )
    .increment(1);
}

/// Counts a request refused because the byte budget was full.
pub fn count_budget_refusal() {
    BUDGET_REFUSALS.increment(1);
}

/// Counts `len` bytes of audio sent.
pub fn count_audio_bytes(len: usize) {
    AUDIO_BYTES.increment(len as u64);
}

/// Sets the count of lost log lines to `total`, every line lost since the start (a counter
/// keeps the largest total it was given,
/// so lines lost before the recorder was installed are counted at the next loss).
pub fn set_log_lines_dropped(total: u64) {
    LOG_LINES_DROPPED.counter([]).absolute(total);
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;

    #[test]
    fn responses_count_by_status_and_audio_by_bytes() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            count_response(StatusCode::OK);
            count_response(StatusCode::OK);
            // Not a status the service answers: the label is built at run time.
            count_response(StatusCode::IM_A_TEAPOT);
            count_audio_bytes(10);
            count_audio_bytes(5);
            count_budget_refusal();
            set_log_lines_dropped(1);
        });
        let mut series: Vec<(String, Vec<String>, DebugValue)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let labels = key
                    .key()
                    .labels()
                    .map(|label| format!("{}={}", label.key(), label.value()))
                    .collect();
                (key.key().name().to_owned(), labels, value)
            })
            .collect();
        series.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let expected = |name: &str, labels: &[&str], count| {
            let labels = labels.iter().map(|l| (*l).to_owned()).collect();
            (name.to_owned(), labels, DebugValue::Counter(count))
        };
        assert_eq!(
            series,
            [
                expected(AUDIO_BYTES.name, &[], 15),
                expected(BUDGET_REFUSALS.name, &[], 1),
                expected(LOG_LINES_DROPPED.name, &[], 1),
                expected(REQUESTS.name, &["status=200"], 2),
                expected(REQUESTS.name, &["status=418"], 1),
            ]
        );
    }
}
