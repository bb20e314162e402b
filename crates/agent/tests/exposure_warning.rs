//! Listening on every interface with an empty allowlist exposes the metrics to anyone who can
//! connect: the agent says so at start.

use std::io::Write;
use std::sync::{Arc, Mutex};

use heapscape::{Agent, Config};

/// Log output, captured.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The only test in this binary that installs the global recorder.
#[test]
fn every_interface_without_an_allowlist_is_warned_about() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _entered = runtime.enter();
    // Port 0 and an immediate shutdown: the port is open for a moment only.
    let config = Config::from_yaml_str(
        "exporter: { prometheus: { listen: \"0.0.0.0:0\" } }\n",
        "exposure.yaml",
    )
    .expect("config");
    let agent = Agent::start(config).expect("start");
    agent.shutdown();
    let log = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(
        log.contains("WARN") && log.contains("every network interface"),
        "{log}"
    );
    assert!(log.contains("exporter.prometheus.allow"), "{log}");
}
