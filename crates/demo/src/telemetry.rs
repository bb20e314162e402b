//! The service's own metrics, next to the pool's and the heartbeat's.
//!
//! | name | type | unit | meaning |
//! |---|---|---|---|
//! | `heapscape_demo_requests_total{status}` | counter | count | responses by HTTP status, also hyper's own refusals (400, 414, 431) and requests whose head timed out (408) |
//! | `heapscape_demo_audio_bytes_total` | counter | bytes | PCM bytes buffered and sent |
//! | `heapscape_demo_log_lines_dropped_total` | counter | count | log lines standard error refused |

use axum::http::StatusCode;
use metrics::Unit;

/// A metric this crate emits: written once, used to describe and to emit.
struct Metric {
    name: &'static str,
    unit: Unit,
    help: &'static str,
}

const REQUESTS: Metric = Metric {
    name: "heapscape_demo_requests_total",
    unit: Unit::Count,
    help: "Responses of the speech service, by HTTP status.",
};

const AUDIO_BYTES: Metric = Metric {
    name: "heapscape_demo_audio_bytes_total",
    unit: Unit::Bytes,
    help: "PCM bytes the speech service buffered and sent (WAV headers excluded).",
};

const LOG_LINES_DROPPED: Metric = Metric {
    name: "heapscape_demo_log_lines_dropped_total",
    unit: Unit::Count,
    help: "Log lines lost because standard error refused them (closed pipe, write error).",
};

/// Every metric of this crate (all counters).
const COUNTERS: [Metric; 3] = [REQUESTS, AUDIO_BYTES, LOG_LINES_DROPPED];

/// Registers help text and units of the service's metrics with the installed recorder.
pub fn describe_metrics() {
    for metric in COUNTERS {
        metrics::describe_counter!(metric.name, metric.unit, metric.help);
    }
}

pub(crate) fn count_response(status: StatusCode) {
    // The statuses the service answers get static label sets: no allocation per response.
    macro_rules! by_status {
        ($($code:literal => $label:literal),*) => {
            match status.as_u16() {
                $($code => metrics::counter!(REQUESTS.name, "status" => $label),)*
                _ => metrics::counter!(REQUESTS.name, "status" => status.as_str().to_owned()),
            }
        };
    }
    by_status!(
        200 => "200", 400 => "400", 404 => "404", 405 => "405", 408 => "408", 413 => "413",
        414 => "414", 415 => "415", 422 => "422", 431 => "431", 500 => "500", 502 => "502",
        503 => "503"
    )
    .increment(1);
}

pub(crate) fn count_audio_bytes(len: usize) {
    metrics::counter!(AUDIO_BYTES.name).increment(len as u64);
}

/// `total`: every line lost since the start (a counter keeps the largest total it was given,
/// so lines lost before the recorder was installed are counted at the next loss).
pub(crate) fn set_log_lines_dropped(total: u64) {
    metrics::counter!(LOG_LINES_DROPPED.name).absolute(total);
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;

    #[test]
    fn every_metric_is_described_with_its_unit_and_emitted() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            describe_metrics();
            count_response(StatusCode::OK);
            count_response(StatusCode::IM_A_TEAPOT);
            count_audio_bytes(10);
            set_log_lines_dropped(1);
        });
        let snapshot = snapshotter.snapshot().into_vec();
        for metric in COUNTERS {
            let (_, unit, help, value) = snapshot
                .iter()
                .find(|(key, ..)| key.key().name() == metric.name)
                .unwrap_or_else(|| panic!("{} was not emitted", metric.name));
            assert_eq!(*unit, Some(metric.unit), "{}", metric.name);
            assert_eq!(help.as_deref(), Some(metric.help));
            assert!(matches!(value, DebugValue::Counter(n) if *n > 0));
        }
    }
}
