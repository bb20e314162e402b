//! Both export paths in one real Prometheus, as in the compose stack: the histograms of the
//! agent's Prometheus path (a real agent's `/metrics`) and of the StatsD path
//! (statsd_exporter), served from loopback and scraped as the two jobs of
//! prometheus/prometheus.yml. With both paths spelling bucket bounds
//! alike, `sum by (le)` keeps one series per bound and the candidate table's shares fall as the
//! candidate grows; spelled differently (the control case), a bound splits into two series.
//!
//! statsd_exporter cannot run here, so its exposition is rendered as it would serve it: the
//! bounds of statsd_exporter/mapping.yml written by the Go client's float formatting.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::exposition::{histogram, mapping_bounds, rust_float, statsd_path_histogram};
use common::{committed_dashboards, panels, substitute, yaml_file};
use heapscape::metrics::go_float;
use heapscape::{Agent, Config};
use heapscape_testkit::{FixtureServer, Prometheus, http_get};
use serde_json::json;

const METRIC: &str = "heapscape_pool_returned_length_bytes";

/// Time for two scrapes of every target (generous: a shared 2-core machine).
const DEADLINE: Duration = Duration::from_secs(60);

/// Returned lengths per scrape: every bucket from 64 B to 1 GiB gets some, most around
/// 256 KiB..4 MiB like the demo's audio buffers.
fn lengths(scrape: u64) -> Vec<f64> {
    let mut all = Vec::new();
    for _ in 0..scrape {
        for (length, times) in [
            (100.0, 1),
            (3_000.0, 2),
            (70_000.0, 3),
            (300_000.0, 20),
            (700_000.0, 30),
            (1_500_000.0, 20),
            (3_000_000.0, 10),
            (50_000_000.0, 2),
            (900_000_000.0, 1),
        ] {
            all.extend(std::iter::repeat_n(length, times));
        }
    }
    all
}

/// An agent as the compose stack's Prometheus-path service runs it, on a free loopback port.
/// It installs the global recorder, so only one test of this binary starts it.
fn start_agent() -> Agent {
    let config = Config::from_yaml_str(
        "service: tts-demo\n\
         labels: { pooling: \"on\" }\n\
         exporter: { prometheus: { listen: 127.0.0.1:0 } }\n",
        "le_spelling.yaml",
    )
    .expect("config");
    Agent::builder()
        .config(config)
        .start()
        .expect("the agent starts")
}

/// The agent's Prometheus-path exposition of the pool's length histogram, as the agent at
/// `agent` renders it after one more scrape's worth of returned lengths (recorded through the
/// agent's recorder, as a pool's publication does).
fn agent_path_exposition(agent: SocketAddr) -> String {
    let histogram = heapscape_pool::metrics::RETURNED_LENGTH.histogram(["pcm".into()]);
    for length in lengths(1) {
        histogram.record(length);
    }
    let (status, body) = http_get(agent, "/metrics").expect("the agent answers");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .filter(|line| line.contains(METRIC))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// What statsd_exporter serves for the StatsD-path service of the compose stack (its
/// `instance` tag kept by `honor_labels`).
fn statsd_path_exposition(scrape: u64) -> String {
    statsd_path_histogram(
        METRIC,
        r#"service="tts-demo",pooling="on",pool="pcm",instance="demo-statsd""#,
        &lengths(scrape),
    )
}

/// The control: the bounds as the agent's Prometheus path wrote them before (Rust's
/// `Display`, `1048576`).
fn rust_spelled_exposition(scrape: u64) -> String {
    histogram(
        METRIC,
        r#"service="tts-demo",pooling="on",pool="pcm""#,
        &heapscape_pool::metrics::LENGTH_BUCKETS,
        &lengths(scrape),
        rust_float,
    )
}

/// The scrape config: prometheus/prometheus.yml's two jobs (the StatsD one with its
/// `honor_labels`), plus the control job, against the fixture server.
fn prometheus_config(server: &FixtureServer) -> String {
    let stack = yaml_file("prometheus/prometheus.yml");
    let jobs = stack["scrape_configs"].as_array().expect("scrape_configs");
    let target = server.addr().to_string();
    let job = |name: &str, path: &str| {
        let mut job = jobs
            .iter()
            .find(|job| job["job_name"] == name)
            .cloned()
            .unwrap_or_else(|| json!({ "job_name": name }));
        job["metrics_path"] = json!(path);
        job["static_configs"] = json!([{ "targets": [target] }]);
        job
    };
    json!({
        "global": { "scrape_interval": "1s", "evaluation_interval": "1s" },
        "scrape_configs": [
            job("heapscape-demo", "/agent"),
            job("statsd-exporter", "/statsd"),
            job("rust-spelling", "/rust"),
        ],
    })
    .to_string()
}

/// The sample values of an instant query, by the values of `labels`.
fn values(prometheus: &Prometheus, query: &str, labels: &[&str]) -> BTreeMap<Vec<String>, f64> {
    prometheus
        .query(query)
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .iter()
        .map(|series| {
            let key = labels
                .iter()
                .map(|l| series["metric"][*l].as_str().unwrap_or_default().to_owned())
                .collect();
            let value = series["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN);
            (key, value)
        })
        .collect()
}

/// Checks that the jobs in `jobs` (a regex) together hold one `_bucket` series per bound and
/// that the share of returns above each bound, summed across them, falls as the bound grows
/// and stays within 0..1.
fn one_series_per_bound(prometheus: &Prometheus, jobs: &str) -> Result<(), String> {
    let bounds = heapscape_pool::metrics::LENGTH_BUCKETS.len() + 1;
    let selector = format!(r#"{METRIC}_bucket{{job=~"{jobs}"}}"#);
    let per_le = values(
        prometheus,
        &format!("sum by (le) (rate({selector}[10s]))"),
        &["le"],
    );
    if per_le.len() != bounds {
        let spellings: BTreeSet<&String> = per_le.keys().flatten().collect();
        return Err(format!(
            "jobs {jobs}: {} `le` series for {bounds} bounds: {spellings:?}",
            per_le.len()
        ));
    }
    let shares = values(
        prometheus,
        &format!(
            r#"1 - sum by (pool, le) (increase({METRIC}_bucket{{job=~"{jobs}",le!="+Inf"}}[20s]))
               / ignoring (le) group_left sum by (pool) (increase({METRIC}_count{{job=~"{jobs}"}}[20s]))"#
        ),
        &["le"],
    );
    let mut by_bound: Vec<(f64, f64)> = shares
        .iter()
        .map(|(le, share)| (le[0].parse::<f64>().expect("a numeric le"), *share))
        .collect();
    by_bound.sort_by(|a, b| a.0.total_cmp(&b.0));
    for pair in by_bound.windows(2) {
        let ((low, low_share), (high, high_share)) = (pair[0], pair[1]);
        if !(0.0..=1.0).contains(&high_share) || high_share > low_share + 1e-9 {
            return Err(format!(
                "jobs {jobs}: the share above {high} ({high_share}) is not within 0..1 and at \
                 most the share above {low} ({low_share})"
            ));
        }
    }
    Ok(())
}

#[test]
fn the_renderings_spell_bounds_as_their_exporters() {
    // The Go spelling itself is `heapscape::metrics::go_float`'s, checked against Go's output
    // in the agent crate; here, the Rust spelling it is contrasted with and the rendering.
    assert_eq!(rust_float(1048576.0), "1048576");
    assert_eq!(rust_float(0.00001), "0.00001");
    assert_eq!(
        histogram("x", r#"a="b""#, &[1.0, 1e6], &[0.5, 2.0, 3e6], go_float),
        "# TYPE x histogram\n\
         x_bucket{a=\"b\",le=\"1\"} 1\n\
         x_bucket{a=\"b\",le=\"1e+06\"} 2\n\
         x_bucket{a=\"b\",le=\"+Inf\"} 3\n\
         x_sum{a=\"b\"} 3000002.5\n\
         x_count{a=\"b\"} 3\n"
    );
}

#[test]
fn the_statsd_mapping_has_the_pools_bounds() {
    assert_eq!(
        mapping_bounds(METRIC),
        heapscape_pool::metrics::LENGTH_BUCKETS
    );
    let spelled: Vec<String> = mapping_bounds(METRIC).into_iter().map(go_float).collect();
    assert!(spelled.contains(&"1.048576e+06".to_owned()), "{spelled:?}");
    assert!(spelled.contains(&"524288".to_owned()), "{spelled:?}");
}

#[test]
fn both_paths_in_one_prometheus_make_one_series_per_bound() {
    let agent = start_agent();
    let agent_addr = agent.metrics_addr().expect("the Prometheus listener");
    let server = FixtureServer::start(Box::new(move |path, scrape| match path {
        "/agent" => Some(agent_path_exposition(agent_addr)),
        "/statsd" => Some(statsd_path_exposition(scrape)),
        "/rust" => Some(rust_spelled_exposition(scrape)),
        _ => None,
    }));
    let prometheus = Prometheus::start(&prometheus_config(&server));

    // Every job's counters have increased between two scrapes within the rate windows.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let increasing = values(
            &prometheus,
            &format!("sum by (job) (increase({METRIC}_count[10s])) > 0"),
            &["job"],
        );
        if increasing.len() == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after {DEADLINE:?} only {increasing:?} of the three jobs have two scrapes"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let instances = values(
        &prometheus,
        &format!(r#"count by (instance) ({METRIC}_count{{job="statsd-exporter"}})"#),
        &["instance"],
    );
    assert_eq!(
        instances.keys().collect::<Vec<_>>(),
        [&vec!["demo-statsd".to_owned()]],
        "honor_labels keeps the StatsD client's instance tag"
    );

    one_series_per_bound(&prometheus, "heapscape-demo|statsd-exporter")
        .unwrap_or_else(|e| panic!("{e}"));

    // The control: the check does catch two spellings of one bound.
    let mixed = one_series_per_bound(&prometheus, "rust-spelling|statsd-exporter");
    assert!(
        mixed.as_ref().is_err_and(|e| e.contains("1.048576e+06")),
        "the Rust spelling of 1048576 must make a second series: {mixed:?}"
    );

    // The dashboard's candidate table over both paths: one row per job and bound, shares
    // within 0..1.
    let dashboard = committed_dashboards()
        .into_iter()
        .map(|(_, d)| d)
        .find(|d| d["uid"] == "heapscape-pool")
        .expect("the pool dashboard");
    let table = panels(&dashboard)
        .into_iter()
        .find(|p| {
            p["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("What each candidate max would discard"))
        })
        .expect("the candidate table");
    let expr = table["targets"][0]["expr"].as_str().expect("its query");
    let variables = BTreeMap::from([
        (
            "job".to_owned(),
            vec!["heapscape-demo".to_owned(), "statsd-exporter".to_owned()],
        ),
        ("pool".to_owned(), vec!["pcm".to_owned()]),
    ]);
    let query = substitute(expr, &variables);
    let rows = values(&prometheus, &query, &["job", "pool", "le"]);
    let bounds = heapscape_pool::metrics::LENGTH_BUCKETS.len();
    assert_eq!(rows.len(), 2 * bounds, "rows of {query}: {rows:?}");
    for (row, share) in &rows {
        assert!((0.0..=1.0).contains(share), "{row:?}: share {share}");
    }
    drop(server);
    agent.shutdown();
}
