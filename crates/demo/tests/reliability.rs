//! Sustained load against a `serve` child (this crate's binary, `soak` subcommand): zero
//! errors at 64 connections, resident memory under the bound computed from the config and not
//! trending upward, and 20 concurrent Prometheus scrapes every second, each complete and
//! parseable. The CI variant runs 20 s of load on the debug binary; the 5-minute numbers in the
//! README come from `cargo run --release -p heapscape-demo -- soak` (pooling off, then on).

use std::process::{Command, Stdio};
use std::time::Duration;

use heapscape_testkit::ChildGuard;

fn soak(args: &[&str], limit: Duration) -> (bool, String) {
    let soak = ChildGuard::spawn(
        "soak",
        Command::new(env!("CARGO_BIN_EXE_heapscape-demo"))
            .arg("soak")
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    );
    let output = soak.wait_with_output(limit);
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
    )
}

/// `key=value` of the `soak-result` line of `pooling`.
fn field(stdout: &str, pooling: &str, key: &str) -> u64 {
    let line = stdout
        .lines()
        .find(|line| line.starts_with(&format!("soak-result pooling={pooling} ")))
        .unwrap_or_else(|| panic!("no soak-result line for pooling={pooling}:\n{stdout}"));
    let value = line
        .split_whitespace()
        .find_map(|part| part.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key} in {line}"));
    value
        .parse::<f64>()
        .unwrap_or_else(|_| panic!("{key}={value}")) as u64
}

#[test]
fn load_at_64_connections_has_no_errors_bounded_memory_and_complete_scrapes() {
    let (passed, stdout) = soak(
        &[
            "--duration",
            "20s",
            "--concurrency",
            "64",
            "--pooling",
            "on",
            "--scrapers",
            "20",
        ],
        Duration::from_secs(300),
    );
    assert_eq!(field(&stdout, "on", "errors"), 0, "{stdout}");
    assert!(field(&stdout, "on", "ok") > 0, "{stdout}");
    assert_eq!(field(&stdout, "on", "scrapes_failed"), 0, "{stdout}");
    assert!(field(&stdout, "on", "scrapes_ok") >= 20, "{stdout}");
    // The bound: baseline + max_idle_bytes (128 MiB) + 64 × 8 MiB in-flight buffers.
    let (baseline, bound) = (
        field(&stdout, "on", "baseline"),
        field(&stdout, "on", "bound"),
    );
    assert_eq!(bound, baseline + (128 << 20) + 64 * (8 << 20), "{stdout}");
    assert!(field(&stdout, "on", "rss_max") <= bound, "{stdout}");
    assert!(stdout.contains("trend_ok=true"), "{stdout}");
    assert!(passed, "soak exited non-zero:\n{stdout}");
}

/// The README's numbers: `cargo run --release -p heapscape-demo -- soak` (5 minutes per mode).
/// Run with `cargo test --release -p heapscape-demo --test reliability -- --ignored`.
#[test]
#[ignore = "5 minutes per mode; run with --release -- --ignored"]
fn five_minutes_at_64_connections_pooled_and_unpooled() {
    let (passed, stdout) = soak(&["--duration", "5m"], Duration::from_secs(1200));
    print!("{stdout}");
    for pooling in ["off", "on"] {
        assert_eq!(field(&stdout, pooling, "errors"), 0, "{stdout}");
        assert_eq!(field(&stdout, pooling, "scrapes_failed"), 0, "{stdout}");
    }
    assert!(passed, "{stdout}");
}
