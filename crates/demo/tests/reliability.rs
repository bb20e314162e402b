//! Sustained load against a `serve` child (this crate's binary, `soak` subcommand): zero
//! errors at 64 connections, resident memory under the bound computed from the config and not
//! trending upward, and 20 concurrent Prometheus scrapes every second, each complete and
//! parseable. The test runs 20 s of load per mode on the debug binary; the README's 5-minute
//! figures come from `target/release/heapscape-demo soak` (pooling off, then on), a command the
//! README documents rather than a test, since it takes 10 minutes.

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

/// The soak shortened: 20 s of load per mode, pooling off then on (about 50 s in all), every
/// check of the 5-minute run on both. The child is waited for at most 5 minutes.
#[test]
fn soak_of_both_modes_has_no_errors_bounded_memory_and_complete_scrapes() {
    let (passed, stdout) = soak(
        &[
            "--duration",
            "20s",
            "--concurrency",
            "64",
            "--pooling",
            "both",
            "--scrapers",
            "20",
        ],
        Duration::from_secs(300),
    );
    for (pooling, idle_bytes) in [("off", 0), ("on", 128 << 20)] {
        assert_eq!(field(&stdout, pooling, "errors"), 0, "{stdout}");
        assert!(field(&stdout, pooling, "ok") > 0, "{stdout}");
        assert_eq!(field(&stdout, pooling, "scrapes_failed"), 0, "{stdout}");
        assert!(field(&stdout, pooling, "scrapes_ok") >= 20, "{stdout}");
        // The bound: baseline + max_idle_bytes (pooled only) + 64 × 8 MiB in-flight buffers.
        let (baseline, bound) = (
            field(&stdout, pooling, "baseline"),
            field(&stdout, pooling, "bound"),
        );
        assert_eq!(
            bound,
            baseline + idle_bytes + 64 * (8 << 20),
            "pooling={pooling}\n{stdout}"
        );
        assert!(field(&stdout, pooling, "rss_max") <= bound, "{stdout}");
    }
    assert_eq!(
        stdout.matches("trend_ok=true").count(),
        2,
        "both modes without an upward trend:\n{stdout}"
    );
    assert!(passed, "soak exited non-zero:\n{stdout}");
}
