//! `heapscape-demo compare --quick` end to end: five real `serve` children (unpooled, pooled,
//! pooled with tuned decay, tuned from the pooled one's recommendation through a config file,
//! auto tuning itself from the pooled defaults), interleaved slices, scrapes, the verdicts, the
//! table, the pool's candidates, the HTML report (rendered by a headless browser where one is
//! installed) and the JSON summary.

use std::process::{Command, Stdio};
use std::time::Duration;

use heapscape_demo::compare::QUICK_MIN_RETURNS;
use heapscape_testkit::ChildGuard;

mod common;

use common::png;

/// The headless browser the report is rendered with (Debian's `chromium-headless-shell`),
/// unless `HEAPSCAPE_CHROMIUM` names another Chromium.
const CHROMIUM: &str = "chromium-headless-shell";

/// The modes' colours in the charts (`report/svg.rs`): each legend swatch is a solid square
/// of its mode's colour, so every one shows in a rendered page.
const MODE_COLOURS: [(&str, [u8; 3]); 5] = [
    ("unpooled", [0xd1, 0x49, 0x5b]),
    ("pooled", [0x2e, 0x86, 0xab]),
    ("tuned", [0x3c, 0x9d, 0x5d]),
    ("auto", [0xe0, 0x9f, 0x3e]),
    ("pooled+decay", [0x6c, 0x5b, 0x7b]),
];

/// Renders `report` in a headless browser and checks the screenshot shows a page: text and
/// tables over most of it, and every mode's colour from the charts (an error page, a blank
/// page or a page whose SVG failed to render has neither).
fn screenshot_shows_the_page(report: &std::path::Path) {
    let browser = std::env::var_os("HEAPSCAPE_CHROMIUM").unwrap_or_else(|| CHROMIUM.into());
    let shot = report.with_extension("png");
    let url = format!("file://{}", report.canonicalize().unwrap().display());
    let mut chromium = ChildGuard::spawn(
        &format!(
            "{} (Debian: apt-get install chromium-headless-shell)",
            browser.to_string_lossy()
        ),
        Command::new(&browser)
            // No sandbox: tests may run as root, where Chromium's sandbox refuses to start.
            .args(["--no-sandbox", "--disable-gpu", "--hide-scrollbars"])
            .arg("--window-size=1280,6000")
            .arg(format!("--screenshot={}", shot.display()))
            .arg(&url)
            .current_dir(report.parent().unwrap())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let status = chromium.wait_exit(Duration::from_secs(120));
    assert!(
        status.success(),
        "{} failed: {status}",
        browser.to_string_lossy()
    );
    let image = png::decode(&std::fs::read(&shot).unwrap());
    assert_eq!((image.width, image.height), (1280, 6000));
    let off = image.share_off_background();
    assert!(
        off > 0.03,
        "{} looks blank: {off} of it drawn",
        shot.display()
    );
    for (mode, colour) in MODE_COLOURS {
        assert!(
            image.pixels.contains(&colour),
            "{}: no pixel of {mode}'s colour {colour:?}: the charts did not render",
            shot.display()
        );
    }
}

#[test]
fn quick_compare_runs_five_modes_tuned_runs_the_recommendation_and_auto_tunes_itself() {
    // `--quick` lowers the services' `recommendation_min_returns` to QUICK_MIN_RETURNS, which
    // a 3 s warm-up reaches even from a debug build on a busy machine (its 1 s may hold half
    // of them): this test is about the workflow (recommend, apply, auto-tune), not about how
    // many returns a recommendation needs (the pool's tests are).
    let dir = std::env::temp_dir().join(format!("heapscape-demo-compare-{}", std::process::id()));
    let report = dir.join("report.html");
    let compare = ChildGuard::spawn(
        "compare --quick",
        Command::new(env!("CARGO_BIN_EXE_heapscape-demo"))
            .args(["compare", "--quick", "--warmup", "3s", "--concurrency", "2"])
            .arg("--report")
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
    for mode in ["unpooled", "pooled", "pooled+decay", "tuned", "auto"] {
        assert!(header.contains(mode), "no {mode} column: {header}");
    }
    for row in [
        "requests/s",
        "latency p99 (ms)",
        "allocated bytes/request",
        "jemalloc resident std dev",
        "jemalloc resident - active mean",
        "minor page faults/request",
        "pool shrinks/request",
        "pool regrows/request",
        "pool returns over the max",
        "pool idle bytes max",
        "pool hit ratio",
        "pool discards: over_max",
        "recommended max buffer size",
        "spread across 3 slices",
        "tuned settings",
        "auto settings after the warm-up",
        "auto/tuned",
        "returned lengths",
        "candidate max buffer sizes",
        "recommended (applied)",
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
    for mode in ["pooled", "pooled+decay", "tuned", "auto"] {
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

    screenshot_shows_the_page(&report);

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.with_extension("json")).unwrap())
            .unwrap();
    let modes = json["modes"].as_array().unwrap();
    let names: Vec<&str> = modes.iter().filter_map(|m| m["mode"].as_str()).collect();
    assert_eq!(
        names,
        ["unpooled", "pooled", "pooled+decay", "tuned", "auto"]
    );
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
            "allocation rate",
            "jemalloc allocated",
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

    // The candidates are the pooled service's own: the default in force, the recommendation
    // (the one applied) and its fine-bucket neighbours, each with the pool's costs; the
    // default is set beside the modes that ran it.
    let candidates = json["candidates"].as_array().unwrap();
    let roles: Vec<&str> = candidates
        .iter()
        .filter_map(|c| c["role"].as_str())
        .collect();
    assert_eq!(roles, ["current", "lower", "recommended", "higher"]);
    let max_of = |role: &str| {
        candidates.iter().find(|c| c["role"] == role).unwrap()["max_buffer_size"]
            .as_f64()
            .unwrap()
    };
    let default_max = tuned["defaults"]["max_buffer_size"].as_f64().unwrap();
    assert_eq!(max_of("current"), default_max);
    assert_eq!(max_of("recommended"), recommended_max);
    assert!(max_of("lower") < recommended_max && recommended_max < max_of("higher"));
    for candidate in candidates {
        let applied = candidate["applied"].as_bool().unwrap();
        assert_eq!(applied, candidate["role"] == "recommended", "{candidate}");
        let over = candidate["over_max_ratio"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&over), "{candidate}");
        assert!(candidate["regrow_bytes_per_second"].as_f64().unwrap() >= 0.0);
        assert!(candidate["idle_bytes_bound"].as_f64().unwrap() > 0.0);
    }
    let current = &candidates[0];
    let ran: Vec<&str> = current["ran"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|run| run["mode"].as_str())
        .collect();
    assert_eq!(ran, ["pooled", "pooled+decay"], "{current}");
    assert!(html.contains("recommended (applied)"));

    // The auto service tuned itself off the pooled defaults, within its bounds.
    let auto = &json["auto"];
    let setting = |map: &str, key: &str| {
        auto[map][key]
            .as_f64()
            .unwrap_or_else(|| panic!("no auto {map}.{key}: {auto}"))
    };
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
