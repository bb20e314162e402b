//! `heapscape-demo compare --quick` end to end: four real `serve` children (unpooled, pooled,
//! tuned from the pooled one's recommendation through a config file, auto tuning itself from
//! the pooled defaults), interleaved slices, scrapes, the verdicts, the table, the HTML report
//! and the JSON summary.

use std::process::{Command, Stdio};
use std::time::Duration;

use heapscape_demo::compare::QUICK_MIN_RETURNS;
use heapscape_testkit::ChildGuard;

#[test]
fn quick_compare_runs_four_modes_tuned_runs_the_recommendation_and_auto_tunes_itself() {
    // `--quick` lowers the services' `recommendation_min_returns` to QUICK_MIN_RETURNS, which
    // its 1 s warm-up reaches: this test is about the workflow (recommend, apply, auto-tune),
    // not about how many returns a recommendation needs (the pool's tests are).
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

    let header = stdout.lines().next().unwrap_or_default();
    for mode in ["unpooled", "pooled", "tuned", "auto"] {
        assert!(header.contains(mode), "no {mode} column: {header}");
    }
    for row in [
        "requests/s",
        "latency p99 (ms)",
        "allocated bytes/request",
        "jemalloc resident std dev",
        "minor page faults/request",
        "pool hit ratio",
        "pool discards: over_max",
        "recommended max buffer size",
        "spread across 3 slices",
        "tuned settings",
        "auto settings after the warm-up",
        "auto/tuned",
        "returned lengths",
        "candidate max",
        "targets of a default run",
        "bootstrap interval;",
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
    assert!(stderr.contains("weighs on every mode alike"), "{stderr}");
    // Every target reads a state and an interval over the rounds.
    let verdict_lines: Vec<&str> = stdout
        .lines()
        .skip_while(|line| !line.starts_with("targets of a default run"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .collect();
    assert_eq!(verdict_lines.len(), 4, "{stdout}");
    for line in &verdict_lines {
        let state = line.trim_start().split(':').next().unwrap_or_default();
        assert!(
            ["met", "NOT met", "inconclusive"].contains(&state),
            "{line}"
        );
        assert!(line.contains(" rounds); target: "), "{line}");
    }
    let min_returns = format!("recommendation_min_returns: {QUICK_MIN_RETURNS}");
    for mode in ["pooled", "tuned", "auto"] {
        let file = dir.join(format!("report-{mode}.yaml"));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains(&min_returns), "{}:\n{text}", file.display());
    }

    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    assert_eq!(
        html.matches("<svg").count(),
        6,
        "four timelines, the latency chart and the returned lengths"
    );
    assert!(html.contains("tuned max") && html.contains("auto max") && html.contains("p95"));
    assert!(html.contains("<th>auto (auto-tuned)</th>") && html.contains("auto / tuned"));
    assert!(html.contains("<h2>Targets of a default run</h2>"));
    assert_eq!(
        html.matches("<li><strong class=").count(),
        4,
        "four verdicts"
    );
    assert!(
        !html.contains("<script") && !html.contains("http-equiv"),
        "self-contained, static"
    );

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.with_extension("json")).unwrap())
            .unwrap();
    let modes = json["modes"].as_array().unwrap();
    let names: Vec<&str> = modes.iter().filter_map(|m| m["mode"].as_str()).collect();
    assert_eq!(names, ["unpooled", "pooled", "tuned", "auto"]);
    assert_eq!(json["slices"].as_u64(), Some(3));
    for mode in modes {
        assert!(mode["requests"].as_u64().unwrap() > 0, "{mode}");
        assert!(mode["errors"].as_object().unwrap().is_empty(), "{mode}");
        let timeline = mode["timeline"].as_array().unwrap();
        assert!(
            timeline.len() >= 2,
            "a point per publication after the first of a slice: {mode}"
        );
        let slices_seen: std::collections::BTreeSet<u64> = timeline
            .iter()
            .filter_map(|point| point["slice"].as_u64())
            .collect();
        assert!(slices_seen.len() >= 2, "points from several slices: {mode}");
        for metric in ["allocated bytes/s", "jemalloc resident p95"] {
            let per_slice = mode["slices"][metric]["per_slice"].as_array();
            assert_eq!(
                per_slice.map(Vec::len),
                Some(3),
                "{metric} by round: {mode}"
            );
        }
        let spread = &mode["slices"]["requests/s"];
        let (min, median, max) = (
            spread["min"].as_f64().unwrap(),
            spread["median"].as_f64().unwrap(),
            spread["max"].as_f64().unwrap(),
        );
        assert!(min > 0.0 && min <= median && median <= max, "{spread}");
    }
    let per_request = |mode: &serde_json::Value| mode["alloc_bytes_per_request"].as_f64().unwrap();
    for pooled in &modes[1..] {
        assert!(
            per_request(pooled) < per_request(&modes[0]),
            "{} B/request pooled, {} B/request fresh",
            per_request(pooled),
            per_request(&modes[0])
        );
        assert!(pooled["pool_hit_ratio"].as_f64().unwrap() > 0.0);
    }

    // The verdicts, with their state and interval, from the rounds.
    let verdicts = json["verdicts"].as_array().unwrap();
    let names: Vec<&str> = verdicts.iter().filter_map(|v| v["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "allocation savings kept",
            "jemalloc allocated cut",
            "resident mean",
            "resident peak"
        ]
    );
    for verdict in verdicts {
        let state = verdict["state"].as_str().unwrap();
        assert!(
            ["met", "not_met", "inconclusive"].contains(&state),
            "{verdict}"
        );
        let [low, high] = [0, 1].map(|i| verdict["interval"][i].as_f64().unwrap());
        let median = verdict["median"].as_f64().unwrap();
        assert!(low <= median && median <= high, "{verdict}");
        // A slice whose rate or samples a busy machine's scrapes missed leaves a round out.
        let rounds = verdict["rounds"].as_u64().unwrap();
        assert!((1..=3).contains(&rounds), "{verdict}");
    }

    // The tuned service ran the pooled service's recommendation, from its config file.
    let tuned = &json["tuned"];
    let recommended_max = tuned["recommendation"]["max_buffer_size"].as_f64().unwrap();
    assert!(recommended_max > 0.0, "{tuned}");
    assert_eq!(
        tuned["pool"]["max_buffer_size"].as_f64(),
        Some(recommended_max)
    );
    assert_eq!(
        tuned["applied_max_buffer_size"].as_f64(),
        Some(recommended_max),
        "the tuned service published the recommended max after reloading"
    );
    assert_eq!(
        tuned["pool"]["initial_capacity"].as_f64(),
        tuned["recommendation"]["initial_capacity"]
            .as_f64()
            .map(|initial| initial.min(recommended_max))
    );
    let file = std::fs::read_to_string(tuned["config_file"].as_str().unwrap()).unwrap();
    assert!(
        file.contains(&format!("max_buffer_size: {recommended_max}")),
        "{file}"
    );
    assert!(
        file.contains("jemalloc:") && file.contains("dirty_decay:"),
        "{file}"
    );

    // The auto service tuned itself off the pooled defaults, within its bounds.
    let auto = &json["auto"];
    let setting = |map: &str, key: &str| {
        auto[map][key]
            .as_f64()
            .unwrap_or_else(|| panic!("no auto {map}.{key}: {auto}"))
    };
    let default_max = tuned["defaults"]["max_buffer_size"].as_f64().unwrap();
    assert_eq!(setting("start", "max_buffer_size"), default_max);
    assert!(
        recommended_max < 0.75 * default_max,
        "the load needs a max outside the 25 % band around the default {default_max}, so auto \
         has a move to make: recommended {recommended_max}"
    );
    let auto_max = setting("after_warmup", "max_buffer_size");
    assert_ne!(auto_max, default_max, "auto did not move its max: {auto}");
    assert!(
        setting("moves_after_warmup", "max_buffer_size") >= 1.0,
        "{auto}"
    );
    assert_eq!(auto["moved"].as_bool(), Some(true), "{auto}");
    for key in [
        "max_buffer_size",
        "initial_capacity",
        "max_idle_buffers",
        "max_idle_bytes",
    ] {
        let [lowest, highest] = [0, 1].map(|i| auto["bounds"][key][i].as_f64().unwrap());
        for map in ["after_warmup", "at_end"] {
            let value = setting(map, key);
            assert!(
                (lowest..=highest).contains(&value),
                "auto {map}.{key} {value} outside [{lowest}, {highest}]"
            );
        }
        let ratio = setting("vs_tuned", key);
        let expected = setting("after_warmup", key) / tuned["pool"][key].as_f64().unwrap();
        assert!(
            (ratio - expected).abs() < 1e-9,
            "{key}: {ratio} vs {expected}"
        );
    }
    for map in ["after_warmup", "at_end"] {
        let max = setting(map, "max_buffer_size");
        assert!(setting(map, "initial_capacity") <= max, "{auto}");
        assert!(setting(map, "max_idle_bytes") >= max, "{auto}");
    }
    let file = std::fs::read_to_string(auto["config_file"].as_str().unwrap()).unwrap();
    assert!(
        file.contains("auto_tune:") && file.contains("enabled: true"),
        "{file}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
