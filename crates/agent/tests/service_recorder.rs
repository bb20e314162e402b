//! Mode b as a newcomer writes it: the global labels given once, to
//! `Recorder::from_builder`, go on the service's series and on heapscape's pool series alike;
//! starting on the exporter's bare recorder instead, the mistake, is warned about at start.

// The Prometheus listener (or mode b's recorder) needs the `tokio` feature.
#![cfg(feature = "tokio")]

use heapscape::{Agent, Config};
use heapscape_testkit::{CapturedLogs, WAIT, wait_for};
use metrics_exporter_prometheus::PrometheusBuilder;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A file for mode b: no exporter.
const CONFIG: &str = "heartbeat: { interval: 100ms }\npools: { pcm: { initial_capacity: 4KiB } }\n";

/// Words of the warning about a recorder that is not heapscape's.
const WARNING: &str = "not heapscape::prometheus::Recorder";

/// The only test in this binary: it installs the global recorder and the log subscriber.
#[test]
fn labels_given_once_reach_heapscapes_series_and_a_bare_recorder_is_warned_about() {
    let captured = CapturedLogs::install(tracing::Level::WARN);
    let config = || Config::from_yaml_str(CONFIG, "service_recorder.yaml").expect("config");

    // The mistake: the exporter's own recorder, bare (the thread's, so that the right one can
    // be installed globally below).
    let bare = PrometheusBuilder::new()
        .add_global_label("service", "shop")
        .build_recorder();
    let agent = metrics::with_local_recorder(&bare, || {
        Agent::builder().config(config()).service_recorder().start()
    })
    .expect("the agent starts on a bare recorder too");
    agent.shutdown();
    let warnings = captured.lines_with(WARNING);
    assert_eq!(warnings.len(), 1, "{}", captured.text());
    assert!(
        warnings[0].contains("Recorder::from_builder(builder, labels)"),
        "{}",
        warnings[0]
    );

    // Done right: the labels once, in one call.
    let recorder = heapscape::prometheus::Recorder::from_builder(
        PrometheusBuilder::new(),
        [("service", "shop"), ("region", "eu")],
    );
    let exposition = recorder.exposition();
    metrics::set_global_recorder(recorder).expect("the only global recorder in this test");
    metrics::counter!("shop_orders_total").increment(1);
    let agent = Agent::builder()
        .config(config())
        .service_recorder()
        .start()
        .expect("start");
    agent
        .pool("pcm")
        .expect("pool pcm")
        .get()
        .extend_from_slice(b"RIFF");
    // The returns counter moves with the return; the length histogram with the next
    // heartbeat's publication: wait for both.
    let text = wait_for(WAIT, "the pool's return in the exposition", || {
        let text = exposition.render();
        (text.contains(
            "heapscape_pool_returns_total{service=\"shop\",region=\"eu\",pool=\"pcm\"} 1\n",
        ) && text.contains(
            "heapscape_pool_returned_length_bytes_count{service=\"shop\",region=\"eu\",pool=\"pcm\"} 1\n",
        ))
        .then_some(text)
    });
    assert!(
        text.contains("shop_orders_total{service=\"shop\",region=\"eu\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "heapscape_pool_returned_length_bytes_bucket{service=\"shop\",region=\"eu\",pool=\"pcm\",le="
        ),
        "real buckets, with the labels: {text}"
    );
    assert!(
        !text
            .lines()
            .any(|line| line.starts_with("heapscape_") && line.contains("quantile=")),
        "no summaries: {text}"
    );
    assert_eq!(
        captured.lines_with(WARNING).len(),
        1,
        "no warning for the wrapper: {}",
        captured.text()
    );
    agent.shutdown();
}
