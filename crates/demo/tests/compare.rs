//! `heapscape-demo compare --quick` end to end: two real `serve` children, load, scrapes, the
//! table, the HTML report and the JSON summary.

use std::process::{Command, Stdio};
use std::time::Duration;

use heapscape_testkit::ChildGuard;

#[test]
fn quick_compare_writes_the_report_and_pooling_allocates_less() {
    let dir = std::env::temp_dir().join(format!("heapscape-demo-compare-{}", std::process::id()));
    let report = dir.join("report.html");
    let compare = ChildGuard::spawn(
        "compare --quick",
        Command::new(env!("CARGO_BIN_EXE_heapscape-demo"))
            .args(["compare", "--quick", "--concurrency", "2", "--report"])
            .arg(&report)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let output = compare.wait_with_output(Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );

    for row in [
        "pooling off",
        "requests/s",
        "latency p99 (ms)",
        "allocated bytes/request",
        "jemalloc resident std dev",
        "minor page faults/request",
        "pool hit ratio",
        "pool discards: over_max",
        "recommended max buffer size",
    ] {
        assert!(
            stdout.contains(row),
            "the table has no {row:?} row:\n{stdout}"
        );
    }
    assert!(
        stdout.contains(&format!("report: {}", report.display())),
        "{stdout}"
    );
    assert!(stderr.contains("do not compete for the CPU"), "{stderr}");

    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    assert_eq!(
        html.matches("<svg").count(),
        5,
        "four timelines and the latency chart"
    );
    assert!(
        !html.contains("<script") && !html.contains("http-equiv"),
        "self-contained, static"
    );

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.with_extension("json")).unwrap())
            .unwrap();
    let modes = json["modes"].as_array().unwrap();
    assert_eq!(
        (modes[0]["pooling"].as_str(), modes[1]["pooling"].as_str()),
        (Some("off"), Some("on"))
    );
    for mode in modes {
        assert!(mode["requests"].as_u64().unwrap() > 0, "{mode}");
        assert!(mode["errors"].as_object().unwrap().is_empty(), "{mode}");
        assert!(
            mode["timeline"].as_array().unwrap().len() >= 2,
            "scraped every second: {mode}"
        );
    }
    let per_request = |mode: &serde_json::Value| mode["alloc_bytes_per_request"].as_f64().unwrap();
    assert!(
        per_request(&modes[1]) < per_request(&modes[0]),
        "pooled {} B/request, fresh {} B/request",
        per_request(&modes[1]),
        per_request(&modes[0])
    );
    assert!(modes[1]["pool_hit_ratio"].as_f64().unwrap() > 0.0);
    std::fs::remove_dir_all(&dir).unwrap();
}
