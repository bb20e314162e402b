//! A `serve` child whose standard error goes to a pipe nobody reads any more (a log shipper
//! that died, `serve 2>&1 | head`): log lines are lost and counted, nothing else. Warnings,
//! a SIGHUP, a reload from a changed file and SIGTERM all still work, and the exit code is 0.

mod common;

use std::time::Duration;

use common::{ServeProcess, eventually, metric, scrape, speak};
use heapscape_demo::engine::FAULT_MARKER;
use heapscape_testkit::ConfigFile;
use serde_json::json;

/// Generous: the test machine is a shared 2-core box.
const WAIT: Duration = Duration::from_secs(60);

fn config_with_max(max: &str) -> String {
    format!(
        "service: closed-stderr\nexporter:\n  prometheus: {{ listen: 127.0.0.1:0 }}\n\
         heartbeat: {{ interval: 200ms }}\n\
         pools:\n  pcm: {{ initial_capacity: 64KiB, max_buffer_size: {max}, max_idle_bytes: 64MiB }}\n"
    )
}

async fn series(metrics: std::net::SocketAddr, name: &str) -> f64 {
    metric(&scrape(metrics).await, name).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stderr_loses_log_lines_and_nothing_else() {
    let file = ConfigFile::new("heapscape.yaml", &config_with_max("1MiB"));
    let (mut serve, stderr) = ServeProcess::start_with_stderr_pipe(&[
        "--config",
        file.path().to_str().unwrap(),
        "--fault-injection",
    ]);
    let metrics = serve.metrics.expect("a metrics address");
    drop(stderr);

    // Each failed synthesis logs a warning from a request task.
    for _ in 0..5 {
        let reply = speak(serve.http, json!({ "text": format!("a {FAULT_MARKER} b") })).await;
        assert_eq!(reply.status, 502);
    }
    eventually("lost log lines to be counted", WAIT, || async {
        series(metrics, "heapscape_demo_log_lines_dropped_total").await >= 5.0
    })
    .await;

    // SIGHUP: the config watcher reloads (and logs it) and keeps watching.
    let reloads = series(metrics, "heapscape_config_reloads_total").await;
    serve.signal("HUP");
    eventually("the SIGHUP reload", WAIT, || async {
        series(metrics, "heapscape_config_reloads_total").await > reloads
    })
    .await;
    file.write(&config_with_max("2MiB"));
    eventually("the changed file to apply", WAIT, || async {
        series(metrics, "heapscape_pool_max_buffer_size_bytes").await == f64::from(2 << 20)
    })
    .await;
    assert_eq!(
        speak(serve.http, json!({ "text": "still here" }))
            .await
            .status,
        200
    );

    serve.signal("TERM");
    let status = serve.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "{status:?}");
}
