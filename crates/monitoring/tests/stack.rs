//! The docker-compose topology on loopback, without Docker or Grafana: the demo service without
//! and with pooling (configured with deploy/heapscape-prometheus.yaml, as in compose) and with
//! auto-tuning on (deploy/heapscape-auto.yaml, with a shorter cooldown) under load, and the
//! real Prometheus with prometheus/prometheus.yml (same jobs, loopback targets, 1 s scrapes)
//! and the rules. Every query of every dashboard panel and annotation, with the variables
//! substituted as Grafana would, and every recording rule are evaluated through Prometheus's
//! HTTP API: a query that errors fails at once, and before the deadline each must return
//! series that are not all NaN, the panels the generator marks as moving under load must show
//! a non-zero value, and the panels and annotations that show auto-tuning's moves must have
//! shown one (a non-zero value, an annotation that fires) in some round.
//!
//! statsd_exporter is not installable here (and Etsy statsd, which the agent's own tests use,
//! is a different server), so the `statsd-exporter` job scrapes a loopback server that serves
//! what statsd_exporter would for two StatsD-path services that name their pool alike: their
//! histograms with the mapping's bounds in the Go client's spelling (`le="1.048576e+06"`), and
//! their heartbeats and pool counters, told apart by their `service` and `instance` tags. The
//! queries thus run over both paths' series at once, and the fleet's records and fleet-wide
//! quantile must keep the two StatsD services apart.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::exposition::statsd_path_histogram;
use common::{
    DashboardQuery, committed_dashboards, dashboard_queries, demo_binary, parse_label_values, read,
    substitute, variables, yaml,
};
use heapscape_demo::server::{READY_PREFIX, ReadyLine};
use heapscape_monitoring::Config;
use heapscape_testkit::{
    ChildGuard, ConfigFile, FixtureServer, Prometheus, wait_until, workspace_root,
};
use serde_json::{Value, json};

/// Time for every query to return series once the stack is up (generous: a shared 2-core
/// machine running other builds).
const DEADLINE: Duration = Duration::from_secs(100);

/// Time for a demo service to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The Prometheus-path job of prometheus/prometheus.yml and the StatsD-path one.
const DEMO_JOB: &str = "heapscape-demo";
const STATSD_JOB: &str = "statsd-exporter";

/// One demo service, and its load generator once started.
struct Demo {
    name: &'static str,
    http: String,
    metrics: String,
    service: ChildGuard,
    /// Bounded by its duration; killed on drop if the test ends first.
    load: Option<ChildGuard>,
}

/// The auto-tuned demo's cooldown here: compose's 1 min would leave most of the deadline
/// without a move; with 5 s the first moves come seconds after its load starts.
const TEST_COOLDOWN: &str = "5s";

/// deploy/heapscape-auto.yaml with [`TEST_COOLDOWN`] in place of its cooldown.
fn auto_tune_config() -> ConfigFile {
    let text = read("deploy/heapscape-auto.yaml");
    let cooldown = "cooldown: 1m";
    assert_eq!(
        text.matches(cooldown).count(),
        1,
        "deploy/heapscape-auto.yaml sets `{cooldown}` once: update this test"
    );
    ConfigFile::new(
        "heapscape-auto.yaml",
        &text.replace(cooldown, &format!("cooldown: {TEST_COOLDOWN}")),
    )
}

impl Demo {
    /// Starts the demo service with `config`, `--pooling <pooling>` and loopback listeners;
    /// `name` tells the processes apart in failures.
    fn start(name: &'static str, pooling: &str, config: &Path) -> Self {
        let mut service = ChildGuard::spawn(
            &format!("heapscape-demo serve ({name})"),
            Command::new(demo_binary())
                .arg("serve")
                .arg("--config")
                .arg(config)
                .args(["--pooling", pooling])
                .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
                .args(["--heartbeat-interval", "1s"])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::piped()),
        );
        let ready = ReadyLine::parse(&service.wait_for_line(READY_PREFIX, READY_TIMEOUT))
            .expect("a well-formed ready line");
        Self {
            name,
            http: ready.http.to_string(),
            metrics: ready
                .metrics
                .expect("the demo serves /metrics with the Prometheus exporter")
                .to_string(),
            service,
            load: None,
        }
    }

    /// Starts the load generator against the service.
    fn start_load(&mut self) {
        self.load = Some(ChildGuard::spawn(
            &format!("heapscape-demo load ({})", self.name),
            Command::new(demo_binary())
                .arg("load")
                .args(["--url", &format!("http://{}", self.http)])
                .args(["--duration", "150s", "--concurrency", "2", "--no-progress"])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        ));
    }
}

/// The StatsD-path services behind the one statsd_exporter: `service` tag, `instance` tag,
/// and how many returns each makes per scrape. Both name their pool `pcm`.
const STATSD_SERVICES: [(&str, &str, u64); 2] = [
    ("tts-demo", "demo-statsd", 20),
    ("asr-demo", "demo-statsd-asr", 60),
];

/// What statsd_exporter would serve after `scrape` scrapes of the StatsD-path services under
/// load: each with its `service` and `instance` tags (kept by `honor_labels`), a heartbeat
/// that is up, pool counters and the three histograms.
fn statsd_path_exposition(scrape: u64) -> String {
    let mut text = String::new();
    for (service, instance, per_scrape) in STATSD_SERVICES {
        let labels = format!(r#"service="{service}",pooling="on",instance="{instance}""#);
        let pool = format!(r#"{labels},pool="pcm""#);
        let n = scrape as f64;
        let returns = per_scrape as f64;
        let lengths: Vec<f64> = (0..scrape * per_scrape)
            .map(|i| [300_000.0, 700_000.0, 1_500_000.0, 3_000_000.0][i as usize % 4])
            .collect();
        let durations: Vec<f64> = (0..scrape).map(|_| 0.00003).collect();
        text.push_str(&format!(
            "heapscape_heartbeat_up{{{labels}}} 1\n\
             heapscape_pool_returns_total{{{pool}}} {returns}\n\
             heapscape_pool_hits_total{{{pool}}} {hits}\n\
             heapscape_pool_misses_total{{{pool}}} {misses}\n",
            returns = returns * n,
            hits = 0.9 * returns * n,
            misses = 0.1 * returns * n,
        ));
        text.push_str(&statsd_path_histogram(
            heapscape_pool::metrics::RETURNED_LENGTH.name,
            &pool,
            &lengths,
        ));
        text.push_str(&statsd_path_histogram(
            heapscape_pool::metrics::RETURNED_CAPACITY.name,
            &pool,
            &lengths,
        ));
        text.push_str(&statsd_path_histogram(
            heapscape_heartbeat::metrics::SAMPLE_DURATION.name,
            &labels,
            &durations,
        ));
    }
    text
}

/// The StatsD-path services stay apart in the fleet's records (the Decide row's too) and in
/// the pool dashboard's fleet-wide quantile, though Prometheus scrapes both as
/// statsd_exporter's job and both name their pool alike: one series per service, with the
/// right returns.
fn check_statsd_services_apart(
    prometheus: &Prometheus,
    dashboards: &[(String, Value)],
    pending: &mut Vec<String>,
) -> Result<(), String> {
    let services = |series: &[Value]| -> BTreeSet<String> {
        series
            .iter()
            .filter(|s| s["metric"]["job"] == STATSD_JOB)
            .map(|s| {
                s["metric"]["service"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    };
    let expected: BTreeSet<String> = STATSD_SERVICES.iter().map(|s| s.0.to_owned()).collect();
    // The pool group's returns, and the Decide row's returns and buckets over its window.
    for record in [
        "job:heapscape_pool_returns:rate5m",
        "job:heapscape_pool_returns:increase1h",
        "job:heapscape_pool_returned_length_bytes_bucket:increase1h",
    ] {
        let series = prometheus.query(&format!("{record}{{job=\"{STATSD_JOB}\"}}"))?;
        if services(&series) != expected {
            pending.push(format!(
                "{record}: StatsD services {:?}, expected {expected:?}",
                services(&series)
            ));
        }
    }
    let (_, pool) = dashboards
        .iter()
        .find(|(_, d)| d["uid"] == "heapscape-pool")
        .expect("the pool dashboard");
    let fleet = dashboard_queries(pool)
        .into_iter()
        .find(|q| {
            q.place
                .ends_with("/ Fleet-wide (all instances of the service) / A")
        })
        .expect("the pool dashboard's fleet-wide quantile");
    let all = BTreeMap::from([
        ("job".to_owned(), vec![STATSD_JOB.to_owned()]),
        ("pool".to_owned(), vec!["pcm".to_owned()]),
    ]);
    let quantiles = prometheus.query(&substitute(&fleet.expr, &all))?;
    if services(&quantiles) != expected {
        pending.push(format!(
            "{}: StatsD services {:?}, expected {expected:?}",
            fleet.place,
            services(&quantiles)
        ));
    }
    Ok(())
}

/// prometheus/prometheus.yml with loopback targets (the demo services, and the server standing
/// in for statsd_exporter), 1 s scrapes and evaluations, and the rule files by absolute path.
fn prometheus_config(targets: &[&str], statsd_exporter: &str) -> String {
    let mut config = yaml(
        &read("prometheus/prometheus.yml"),
        "prometheus/prometheus.yml",
    );
    config["global"]["scrape_interval"] = json!("1s");
    config["global"]["evaluation_interval"] = json!("1s");
    let rules = config["rule_files"]
        .as_array()
        .expect("rule_files")
        .iter()
        .map(|glob| {
            let glob = glob.as_str().expect("a rule file glob");
            json!(
                workspace_root()
                    .join("prometheus")
                    .join(glob)
                    .display()
                    .to_string()
            )
        })
        .collect::<Vec<_>>();
    config["rule_files"] = json!(rules);
    let jobs = config["scrape_configs"]
        .as_array()
        .expect("scrape_configs")
        .clone();
    let names: Vec<_> = jobs
        .iter()
        .filter_map(|job| job["job_name"].as_str())
        .collect();
    assert_eq!(
        names,
        [DEMO_JOB, STATSD_JOB],
        "the jobs of prometheus/prometheus.yml changed: update this test's topology"
    );
    let mut demo = jobs[0].clone();
    demo["static_configs"] = json!([{ "targets": targets }]);
    let mut statsd = jobs[1].clone();
    statsd["static_configs"] = json!([{ "targets": [statsd_exporter] }]);
    config["scrape_configs"] = json!([demo, statsd]);
    // JSON is YAML.
    config.to_string()
}

/// What is still missing, or the first hard error.
enum Outcome {
    Ready,
    Pending(Vec<String>),
}

/// The values of each dashboard variable, resolved in order as Grafana does.
fn resolve_variables(
    prometheus: &Prometheus,
    dashboard: &Value,
) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut values = BTreeMap::new();
    for (name, query) in variables(dashboard) {
        let (selector, label) =
            parse_label_values(&query).ok_or_else(|| format!("variable {name}: {query}"))?;
        let selector = selector.unwrap_or_else(|| "{__name__=~\".+\"}".to_owned());
        let selector = substitute(&selector, &values);
        let data = prometheus
            .api(
                &format!("/api/v1/label/{label}/values"),
                &[("match[]", &selector)],
            )
            .map_err(|e| format!("ERROR variable {name} ({selector}): {e}"))?;
        let found: Vec<String> = data
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        if found.is_empty() {
            return Err(format!("variable {name} has no values yet ({selector})"));
        }
        values.insert(name, found);
    }
    Ok(values)
}

/// The sample values of a query's result series (NaN for a value that is not a number).
fn sample_values(series: &[Value]) -> Vec<f64> {
    series
        .iter()
        .map(|s| {
            s["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN)
        })
        .collect()
}

/// What a query must show.
struct Expect {
    /// A non-zero value now: the panel moves under load.
    moving: bool,
    /// Auto-tuning's moves: a non-zero value (a panel) or a firing annotation, in this round
    /// or an earlier one (moves are events, over once the pool has settled).
    auto_tune_moves: bool,
}

/// Evaluates one dashboard query; `Err` for a query Prometheus rejects. `moved`: the places
/// whose auto-tuning moves have been seen, in any round.
fn check_query(
    prometheus: &Prometheus,
    query: &DashboardQuery,
    values: &BTreeMap<String, Vec<String>>,
    expect: &Expect,
    moved: &mut BTreeSet<String>,
    pending: &mut Vec<String>,
) -> Result<(), String> {
    let expr = substitute(&query.expr, values);
    // Grafana draws an annotation wherever its query returned a sample over the dashboard's
    // time range, stepping by `$__interval`: the same, as one instant query.
    let evaluated = match query.annotation {
        true => substitute(
            &format!("max_over_time(({expr})[$__range:$__interval])"),
            values,
        ),
        false => expr.clone(),
    };
    let series = prometheus
        .query(&evaluated)
        .map_err(|e| format!("{}: {e}\n  query: {evaluated}", query.place))?;
    let samples = sample_values(&series);
    if expect.auto_tune_moves {
        let shows_a_move = match query.annotation {
            true => !series.is_empty(),
            false => samples.iter().any(|v| !v.is_nan() && *v != 0.0),
        };
        if shows_a_move {
            moved.insert(query.place.clone());
        }
        if !moved.contains(&query.place) {
            pending.push(format!(
                "{}: no auto-tuning move shown yet\n  query: {expr}",
                query.place
            ));
        }
    }
    // An annotation marks events; without one it is empty, so its series come from the
    // expression before the final comparison.
    let data_expr = match query.annotation {
        true => expr
            .rsplit_once(" > ")
            .map_or(expr.clone(), |(data, _)| data.to_owned()),
        false => expr.clone(),
    };
    let has_series = if query.annotation {
        !prometheus
            .query(&data_expr)
            .map_err(|e| format!("{}: {e}\n  query: {data_expr}", query.place))?
            .is_empty()
    } else {
        !series.is_empty()
    };
    if !has_series {
        pending.push(format!(
            "{}: no series yet\n  query: {data_expr}",
            query.place
        ));
        return Ok(());
    }
    if query.annotation {
        return Ok(());
    }
    if samples.iter().all(|v| v.is_nan()) {
        pending.push(format!(
            "{}: only NaN ({} series)\n  query: {expr}",
            query.place,
            samples.len()
        ));
    } else if expect.moving && samples.iter().all(|v| v.is_nan() || *v == 0.0) {
        pending.push(format!(
            "{}: only zeros, where the panel must move under load\n  query: {expr}",
            query.place
        ));
    }
    Ok(())
}

/// Every recording rule's series, and the health of every rule.
fn check_rules(prometheus: &Prometheus, pending: &mut Vec<String>) -> Result<usize, String> {
    let data = prometheus.api("/api/v1/rules", &[])?;
    let mut count = 0;
    for group in data["groups"].as_array().into_iter().flatten() {
        for rule in group["rules"].as_array().into_iter().flatten() {
            count += 1;
            let name = rule["name"].as_str().unwrap_or("?");
            match rule["health"].as_str() {
                Some("ok") => {}
                Some("err") => {
                    return Err(format!(
                        "rule {name} fails: {}",
                        rule["lastError"].as_str().unwrap_or("?")
                    ));
                }
                _ => pending.push(format!("rule {name} not evaluated yet")),
            }
            if rule["type"] == "recording" && prometheus.query(name)?.is_empty() {
                pending.push(format!("recording rule {name}: no series yet"));
            }
        }
    }
    Ok(count)
}

/// `HeapscapeTargetDown` names no job (the kit's `targets_selector` is empty): the targets it
/// watches, those of the jobs that report heapscape's metrics, must be every target of the
/// stack. Its expression with `up == 0` turned into `up >= 0` lists them.
fn check_watched_targets(
    prometheus: &Prometheus,
    targets: &Value,
    pending: &mut Vec<String>,
) -> Result<(), String> {
    let alerts = yaml(
        &read("prometheus/rules/heapscape-alerts.yml"),
        "prometheus/rules/heapscape-alerts.yml",
    );
    let expr = alerts["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
        .find(|rule| rule["alert"] == "HeapscapeTargetDown")
        .and_then(|rule| rule["expr"].as_str().map(str::to_owned))
        .expect("the alert HeapscapeTargetDown");
    assert!(
        expr.starts_with("up") && expr.contains(" == 0") && !expr.contains("job="),
        "HeapscapeTargetDown watches `up` of jobs it does not name: update this test\n{expr}"
    );
    let pair = |labels: &Value| {
        (
            labels["job"].as_str().unwrap_or_default().to_owned(),
            labels["instance"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let watched: BTreeSet<_> = prometheus
        .query(&expr.replacen(" == 0", " >= 0", 1))?
        .iter()
        .map(|series| pair(&series["metric"]))
        .collect();
    let all: BTreeSet<_> = targets["activeTargets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|target| pair(&target["labels"]))
        .collect();
    if watched != all {
        pending.push(format!(
            "HeapscapeTargetDown watches {watched:?}, the stack's targets are {all:?}"
        ));
    }
    Ok(())
}

/// The panels (dashboard uid and title, or annotation name) the generator marks, each way.
struct Marked {
    moving: BTreeSet<(String, String)>,
    auto_tune_moves: BTreeSet<(String, String)>,
}

fn check_everything(
    prometheus: &Prometheus,
    dashboards: &[(String, Value)],
    marked: &Marked,
    moved: &mut BTreeSet<String>,
) -> Result<Outcome, String> {
    let mut pending = Vec::new();
    let targets = prometheus.api("/api/v1/targets", &[])?;
    for target in targets["activeTargets"].as_array().into_iter().flatten() {
        if target["health"] != "up" {
            pending.push(format!(
                "target {} is {} ({})",
                target["scrapeUrl"], target["health"], target["lastError"]
            ));
        }
    }
    for (file, dashboard) in dashboards {
        let values = match resolve_variables(prometheus, dashboard) {
            Ok(values) => values,
            Err(error) if error.starts_with("ERROR") => return Err(format!("{file}: {error}")),
            Err(missing) => {
                pending.push(format!("{file}: {missing}"));
                continue;
            }
        };
        for query in dashboard_queries(dashboard) {
            let expect = Expect {
                moving: marked.moving.contains(&query.panel),
                auto_tune_moves: marked.auto_tune_moves.contains(&query.panel),
            };
            check_query(prometheus, &query, &values, &expect, moved, &mut pending)?;
        }
    }
    check_watched_targets(prometheus, &targets, &mut pending)?;
    check_statsd_services_apart(prometheus, dashboards, &mut pending)?;
    let rules = check_rules(prometheus, &mut pending)?;
    assert!(
        rules > 0,
        "Prometheus loaded no rules from prometheus/rules/"
    );
    Ok(if pending.is_empty() {
        Outcome::Ready
    } else {
        Outcome::Pending(pending)
    })
}

#[test]
fn every_dashboard_query_and_recording_rule_returns_series_from_the_demo_stack() {
    let started = Instant::now();
    let config = workspace_root().join("deploy/heapscape-prometheus.yaml");
    let mut unpooled = Demo::start("unpooled", "off", &config);
    let mut pooled = Demo::start("pooled", "on", &config);
    unpooled.start_load();
    pooled.start_load();
    let auto_config = auto_tune_config();
    let mut auto = Demo::start("auto", "on", auto_config.path());
    let statsd_exporter = FixtureServer::start(Box::new(|path, scrape| {
        (path == "/metrics").then(|| statsd_path_exposition(scrape))
    }));
    let prometheus = Prometheus::start(&prometheus_config(
        &[&unpooled.metrics, &pooled.metrics, &auto.metrics],
        &statsd_exporter.addr().to_string(),
    ));
    // `increase` sees a counter's first rise only after a sample before it: the auto-tuned
    // demo's load, and with it its first move, waits until Prometheus holds its moves
    // counters (published at 0 from the first heartbeat).
    let auto_moves = format!(
        r#"heapscape_pool_auto_tune_moves_total{{instance="{}"}}"#,
        auto.metrics
    );
    wait_until(
        DEADLINE,
        "Prometheus scraping the auto-tuned demo's moves counters",
        || {
            prometheus
                .query(&auto_moves)
                .is_ok_and(|series| !series.is_empty())
        },
    );
    auto.start_load();
    let dashboards = committed_dashboards();
    let generated = heapscape_monitoring::dashboards(&Config::default());
    let titled = |titles: fn(&heapscape_monitoring::Dashboard) -> &[&'static str]| {
        generated
            .iter()
            .flat_map(|d| {
                titles(d)
                    .iter()
                    .map(|title| (d.uid.to_owned(), (*title).to_owned()))
            })
            .collect::<BTreeSet<_>>()
    };
    let marked = Marked {
        moving: titled(|d| d.moving_panels.as_slice()),
        auto_tune_moves: titled(|d| d.auto_tune_panels.as_slice()),
    };
    assert!(
        marked.moving.len() > 10,
        "the generator marks the panels that move"
    );
    assert!(
        marked.auto_tune_moves.len() > dashboards.len(),
        "the generator marks an annotation per dashboard and panels that show auto-tuning's moves"
    );
    let queries: usize = dashboards
        .iter()
        .map(|(_, d)| dashboard_queries(d).len())
        .sum();
    assert!(queries > 0, "the dashboards contain queries");

    let deadline = Instant::now() + DEADLINE;
    let mut rounds = 0;
    let mut moved = BTreeSet::new();
    loop {
        rounds += 1;
        for demo in [&mut unpooled, &mut pooled, &mut auto] {
            demo.service.assert_running();
        }
        match check_everything(&prometheus, &dashboards, &marked, &mut moved) {
            Err(error) => panic!("a query or rule is broken:\n{error}"),
            Ok(Outcome::Ready) => break,
            Ok(Outcome::Pending(missing)) => {
                assert!(
                    Instant::now() < deadline,
                    "after {DEADLINE:?}, {} of the dashboards' queries, variables, targets and \
                     rules still have no data:\n{}",
                    missing.len(),
                    missing.join("\n")
                );
                std::thread::sleep(Duration::from_secs(2));
            }
        }
    }
    eprintln!(
        "{queries} dashboard queries and every rule returned series after {rounds} rounds, {:?} \
         after the start",
        started.elapsed()
    );
}

#[test]
fn the_compose_commands_use_flags_the_demo_binary_has() {
    let binary = demo_binary();
    let help = |subcommand: &str| {
        let output = Command::new(&binary)
            .args([subcommand, "--help"])
            .output()
            .expect("running heapscape-demo --help");
        assert!(
            output.status.success(),
            "heapscape-demo {subcommand} --help failed"
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let (serve, load) = (help("serve"), help("load"));
    let compose = read("docker-compose.yml");
    let dockerfile = read("Dockerfile");
    for flag in ["--config", "--pooling", "--listen"] {
        assert!(
            compose.contains(flag) && serve.contains(flag),
            "serve {flag}"
        );
    }
    assert!(dockerfile.contains(r#"CMD ["serve", "--listen""#) && serve.contains("--listen"));
    for flag in [
        "--url",
        "--allow-remote",
        "--no-progress",
        "--duration",
        "--concurrency",
    ] {
        assert!(compose.contains(flag) && load.contains(flag), "load {flag}");
    }
}

/// The demo services' compose healthcheck (bash asking `/healthz` over `/dev/tcp`, since the
/// image has no HTTP client) passes against a serving demo and fails where nothing listens.
#[test]
fn the_demo_healthcheck_of_the_compose_file_tells_a_serving_demo_from_none() {
    let output = Command::new("docker-compose")
        .args(["-f", "docker-compose.yml", "config"])
        .current_dir(workspace_root())
        .output()
        .expect("docker-compose runs (apt-get install docker-compose)");
    assert!(output.status.success(), "docker-compose config");
    let compose = yaml(
        &String::from_utf8_lossy(&output.stdout),
        "docker-compose config output",
    );
    let check: Vec<&str> = compose["services"]["demo-pooled"]["healthcheck"]["test"]
        .as_array()
        .expect("demo-pooled has a healthcheck")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let ["CMD", "bash", "-c", script] = check[..] else {
        panic!("the demo's healthcheck is `bash -c <script>`: update this test ({check:?})");
    };
    let listen = "/dev/tcp/127.0.0.1/8080";
    assert!(script.contains(listen), "{script}");
    let runs = |port: u16| {
        Command::new("bash")
            .args([
                "-c",
                &script.replace(listen, &format!("/dev/tcp/127.0.0.1/{port}")),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("bash runs")
            .success()
    };
    let demo = Demo::start(
        "healthcheck",
        "on",
        &workspace_root().join("deploy/heapscape-prometheus.yaml"),
    );
    let port: u16 = demo
        .http
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .expect("the demo's HTTP port");
    assert!(runs(port), "the healthcheck fails against a serving demo");
    drop(demo);
    assert!(
        !runs(heapscape_testkit::free_port()),
        "the healthcheck passes where nothing listens"
    );
}
