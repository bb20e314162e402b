//! Listening on every interface with an empty allowlist exposes the metrics to anyone who can
//! connect: the agent says so at start.

// The Prometheus listener (or mode b's recorder) needs the `tokio` feature.
#![cfg(feature = "tokio")]

use heapscape::{Agent, Config};
use heapscape_testkit::CapturedLogs;

/// The only test in this binary that installs the global recorder.
#[test]
fn every_interface_without_an_allowlist_is_warned_about() {
    let captured = CapturedLogs::install(tracing::Level::WARN);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _entered = runtime.enter();
    // Port 0 and an immediate shutdown: the port is open for a moment only.
    let config = Config::from_yaml_str(
        "exporter: { prometheus: { listen: \"0.0.0.0:0\" } }\n",
        "exposure.yaml",
    )
    .expect("config");
    let agent = Agent::builder().config(config).start().expect("start");
    agent.shutdown();
    let log = captured.text();
    assert!(
        log.contains("WARN") && log.contains("every network interface"),
        "{log}"
    );
    assert!(log.contains("exporter.prometheus.allow"), "{log}");
}
