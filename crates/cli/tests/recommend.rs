//! `heapscape recommend` as ops run it: against a real Prometheus scraping three demo services
//! under different load mixes (and one without traffic), and against one service's /metrics;
//! and against two services on the StatsD path, behind one exporter, naming their pool alike.
//! What it prints must agree with what the pools themselves recommend on the same data, to
//! within one bucket; its exit codes and errors must say what happened; `--write` must change
//! the pool settings of a config that a running service then reloads, after which the answer
//! sets the rule's prediction for the new max against what followed.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use heapscape::metrics::go_float;
use heapscape_cli::exit;
use heapscape_demo::server::{READY_PREFIX, ReadyLine};
use heapscape_pool::metrics::{
    INITIAL_CAPACITY, LENGTH_BUCKETS, MAX_BUFFER_SIZE, MAX_IDLE_BUFFERS, MAX_IDLE_BYTES, PEAK_HELD,
    PEAK_IDLE_BYTES, RECOMMENDATION_MIN_RETURNS, RETURNED_LENGTH,
};
use heapscape_testkit::{
    ChildGuard, ConfigFile, FixtureServer, Prometheus, WAIT, free_port, http_get, wait_for,
    workspace_binary, workspace_root,
};
use serde_json::Value;

/// The demo's pool, with a one-minute window (the CLI reads the same [`WINDOW`]) and half the
/// default minimum of returns: the test waits on traffic, first for every pool to recommend
/// and then for enough returns after the written max, and at 200 the loads' paced traffic
/// (see [`Demo::start`]) fills each in about half a minute.
const CONFIG: &str = "service: tts-demo
exporter: { prometheus: {} }
heartbeat: { interval: 1s }
pools:
  # The stream buffers.
  pcm:
    initial_capacity: 256KiB
    max_buffer_size: 4MiB    # the default guess
    max_idle_buffers: 64
    max_idle_bytes: 128MiB
    recommendation_window: 1m
    recommendation_min_returns: 200
";

/// The pools' recommendation window and the CLI's `--window`.
const WINDOW: &str = "1m";

/// Time for the pools to see enough returns and Prometheus to scrape them (generous: a shared
/// 2-core machine).
const FILL: Duration = Duration::from_secs(150);

/// Time for enough returns to follow the written max (the load runs long enough for it).
const SINCE_CHANGE: Duration = Duration::from_secs(180);

struct Demo {
    metrics: String,
    _service: ChildGuard,
    _load: Option<ChildGuard>,
}

impl Demo {
    /// A pooled demo service with `config`, and its load at `sample_rate` (a different size
    /// mix for each rate) unless `None`.
    fn start(config: &Path, sample_rate: Option<u32>) -> Self {
        let demo = workspace_binary("heapscape-demo", "HEAPSCAPE_DEMO_BIN");
        let mut service = ChildGuard::spawn(
            "heapscape-demo serve",
            Command::new(&demo)
                .arg("serve")
                .arg("--config")
                .arg(config)
                .args(["--pooling", "on"])
                .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::piped()),
        );
        let ready = ReadyLine::parse(&service.wait_for_line(READY_PREFIX, WAIT))
            .expect("a well-formed ready line");
        let load = sample_rate.map(|rate| {
            ChildGuard::spawn(
                "heapscape-demo load",
                Command::new(&demo)
                    .arg("load")
                    .args(["--url", &format!("http://{}", ready.http)])
                    // Past the test's end (the guard stops it): the returns after the
                    // written max come from it. 6 a second is 360 a minute, nearly twice the
                    // pools' minimum; unpaced, three debug builds would take the machine's
                    // two cores from the tests running beside this one.
                    .args(["--duration", "600s", "--concurrency", "2", "--rate", "6"])
                    .arg("--no-progress")
                    .args(["--sample-rate", &rate.to_string()])
                    .args(["--seed", &rate.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
            )
        });
        Self {
            metrics: ready.metrics.expect("a metrics listener").to_string(),
            _service: service,
            _load: load,
        }
    }
}

/// Runs the CLI; its output and exit code.
fn recommend(args: &[&str]) -> (Output, u8) {
    let output = Command::new(env!("CARGO_BIN_EXE_heapscape"))
        .arg("recommend")
        .args(args)
        .output()
        .expect("the heapscape binary runs");
    let code = output.status.code().expect("an exit code") as u8;
    (output, code)
}

/// Runs the CLI with `-o json`, which must succeed; its report.
fn report(args: &[&str]) -> Value {
    let (output, code) = recommend(&[args, &["-o", "json"]].concat());
    assert_eq!(
        code,
        exit::OK,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    json(&output)
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The index of `bytes` among the exported bucket bounds.
fn bucket(bytes: f64) -> usize {
    LENGTH_BUCKETS
        .iter()
        .position(|&bound| bound >= bytes)
        .expect("within the exported bounds")
}

/// A gauge of one instance's pool `pcm`, scraped from its /metrics.
fn gauge(metrics: &str, name: &str) -> Option<f64> {
    let (_, body) = http_get(metrics.parse().expect("an address"), "/metrics")?;
    let samples = heapscape_cli::exposition::parse(&body).ok()?;
    samples
        .iter()
        .find(|s| s.name == name && s.label("pool") == Some("pcm"))
        .map(|s| s.value)
        .filter(|v| v.is_finite())
}

#[test]
fn recommends_for_a_fleet_what_its_pools_recommend_and_writes_it() {
    // The test waits on traffic and Prometheus at each step: its output (shown when it fails
    // or with --no-capture) says how long each took.
    let started = Instant::now();
    let phase = |done: &str| eprintln!("{:>6.1?} {done}", started.elapsed());
    let config = ConfigFile::new("heapscape.yaml", CONFIG);
    // The service whose config `--write` edits runs from a copy of its own.
    let written = ConfigFile::new("written.yaml", CONFIG);
    let fleet = [
        Demo::start(written.path(), Some(16_000)),
        Demo::start(config.path(), Some(24_000)),
        Demo::start(config.path(), Some(48_000)),
    ];
    let idle = Demo::start(config.path(), None);
    let targets = |demos: &[&Demo]| {
        demos
            .iter()
            .map(|d| format!("\"{}\"", d.metrics))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // With the kit's recording rules: the dashboard's Decide row reads them.
    let rules = workspace_root().join("prometheus/rules/heapscape-recording.yml");
    let prometheus = Prometheus::start(&format!(
        "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}
rule_files: [\"{}\"]
scrape_configs:
  - job_name: tts
    static_configs: [{{ targets: [{}] }}]
  - job_name: idle
    static_configs: [{{ targets: [{}] }}]
",
        rules.display(),
        targets(&fleet.iter().collect::<Vec<_>>()),
        targets(&[&idle]),
    ));
    let url = format!("http://{}", prometheus.addr());
    let fleet_args = [
        "--prometheus",
        &url,
        "--selector",
        "job=\"tts\"",
        "--window",
        WINDOW,
    ];

    // Each pool recommends once its window holds enough returns; by then Prometheus has a
    // minute of their buckets.
    phase("demos and Prometheus started");
    wait_for(FILL, "every pool to recommend", || {
        fleet
            .iter()
            .all(|d| {
                gauge(
                    &d.metrics,
                    "heapscape_pool_recommended_max_buffer_size_bytes",
                )
                .is_some()
            })
            .then_some(())
    });
    // Filling the window took the pools most of a minute; half a minute more and Prometheus
    // holds a whole window of their buckets too.
    phase("every pool recommends");
    std::thread::sleep(Duration::from_secs(30));

    // Per instance: the CLI on that instance's series against the pool's own gauge.
    for demo in &fleet {
        let own = gauge(
            &demo.metrics,
            "heapscape_pool_recommended_max_buffer_size_bytes",
        )
        .expect("the pool recommends");
        let selector = format!("job=\"tts\",instance=\"{}\"", demo.metrics);
        let report_json = report(&[
            "--prometheus",
            &url,
            "--selector",
            &selector,
            "--window",
            WINDOW,
        ]);
        let answer = &report_json["recommendations"][0];
        let cli = answer["recommended"]["max_buffer_size"]
            .as_f64()
            .expect("a max");
        assert!(
            bucket(cli).abs_diff(bucket(own)) <= 1,
            "{}: the CLI says {cli}, the pool {own}",
            demo.metrics
        );
        // One instance's series: the same figures straight from its /metrics page.
        let page = format!("http://{}/metrics", demo.metrics);
        let report_json = report(&["--metrics", &page]);
        let direct = report_json["recommendations"][0]["recommended"]["max_buffer_size"]
            .as_f64()
            .expect("a max");
        assert!(
            bucket(direct).abs_diff(bucket(own)) <= 1,
            "{direct} against {own}"
        );
    }

    phase("each instance's answer");
    // The fleet: the three mixes together, with costs and confidence.
    let fleet_report = report(&fleet_args);
    let answers = fleet_report["recommendations"].as_array().expect("a list");
    assert_eq!(answers.len(), 1, "{fleet_report}");
    let answer = &answers[0];
    // The service by the name its config gives it (the `service` label), scraped as job tts.
    assert_eq!(
        (
            answer["service"].as_str(),
            answer["job"].as_str(),
            answer["pool"].as_str()
        ),
        (Some("tts-demo"), Some("tts"), Some("pcm"))
    );
    let confidence = &answer["confidence"];
    assert_eq!(confidence["instances"], 3, "{confidence}");
    assert!(
        confidence["returns"].as_u64() >= confidence["min_returns"].as_u64(),
        "{confidence}"
    );
    let roles: Vec<&str> = answer["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .filter_map(|c| c["role"].as_str())
        .collect();
    assert_eq!(roles, ["current", "lower", "recommended", "higher"]);
    let recommended = &answer["candidates"][2];
    assert!(
        recommended["share_over_max"].as_f64() <= Some(0.05),
        "{recommended}"
    );
    assert_eq!(
        recommended["idle_bytes_bound_fleet"].as_u64(),
        recommended["idle_bytes_bound_per_instance"]
            .as_u64()
            .map(|b| 3 * b)
    );
    let fleet_max = answer["recommended"]["max_buffer_size"]
        .as_f64()
        .expect("a max");
    // The fleet's p95 lies within the range of its instances' own (one bucket of slack for
    // the windows' edges).
    let own: Vec<usize> = fleet
        .iter()
        .filter_map(|d| {
            gauge(
                &d.metrics,
                "heapscape_pool_recommended_max_buffer_size_bytes",
            )
        })
        .map(bucket)
        .collect();
    let (lowest, highest) = (own.iter().min().unwrap(), own.iter().max().unwrap());
    assert!(
        (lowest.saturating_sub(1)..=highest + 1).contains(&bucket(fleet_max)),
        "fleet {fleet_max} outside the instances' buckets {own:?}"
    );

    // The Decide row: the recording rules over the recommendation window (1 h, all the
    // history here) against the CLI over the same window from every instance's series: the
    // same rule on the same buckets.
    let hour = [
        "--prometheus",
        &url,
        "--selector",
        "job=\"tts\"",
        "--window",
        "1h",
    ];
    let from_series = report(&[&hour[..], &["--no-recording-rules"]].concat());
    let cli = &from_series["recommendations"][0];
    let record = |name: &str| {
        let result = prometheus
            .query(&format!("{name}{{job=\"tts\",pool=\"pcm\"}}"))
            .expect("a valid query");
        result[0]["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name}: {result:?}"))
    };
    for (name, field) in [
        (
            "job:heapscape_pool_recommended_max_buffer_size_bytes:p95_increase1h",
            &cli["recommended"]["max_buffer_size"],
        ),
        (
            "job:heapscape_pool_recommended_initial_capacity_bytes:p50_increase1h",
            &cli["recommended"]["initial_capacity"],
        ),
    ] {
        let (rule, printed) = (record(name), field.as_f64().expect("a value"));
        assert!(
            bucket(rule).abs_diff(bucket(printed)) <= 1,
            "{name}: the Decide row says {rule}, the CLI {printed}"
        );
    }
    // By default a 1 h window reads the fleet's buckets from the recording rule itself, and
    // says so.
    let from_record = report(&hour);
    let answer = &from_record["recommendations"][0];
    let notes = answer["confidence"]["notes"].to_string();
    assert!(notes.contains("recording rule"), "{notes}");
    let (rule, printed) = (
        record("job:heapscape_pool_recommended_max_buffer_size_bytes:p95_increase1h"),
        answer["recommended"]["max_buffer_size"]
            .as_f64()
            .expect("a max"),
    );
    assert!(
        bucket(rule).abs_diff(bucket(printed)) <= 1,
        "{rule} against {printed}"
    );

    // The table says the same for people.
    let (output, code) = recommend(&fleet_args);
    assert_eq!(code, exit::OK);
    let table = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "tts-demo (job tts) / pcm",
        "max_buffer_size",
        "4 MiB ->",
        "candidate",
        "recommended",
    ] {
        assert!(table.contains(expected), "{expected:?} in\n{table}");
    }
    // YAML carries the same fields.
    let (output, _) = recommend(&[&fleet_args[..], &["-o", "yaml"]].concat());
    let yaml = String::from_utf8_lossy(&output.stdout);
    assert!(
        yaml.contains("max_buffer_size:") && yaml.contains("min_returns:"),
        "{yaml}"
    );

    // No traffic in the window: not enough data, with the numbers, and its own exit code.
    let (output, code) = recommend(&[
        "--prometheus",
        &url,
        "--selector",
        "job=\"idle\"",
        "--window",
        WINDOW,
    ]);
    assert_eq!(code, exit::NOT_ENOUGH_DATA);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("not enough data (n=0 returns"), "{text}");

    // --write, dry run first: the diff, and the file untouched.
    let path = written.path().to_str().expect("a UTF-8 path");
    let before = std::fs::read_to_string(path).expect("the config");
    let (output, code) = recommend(&[&fleet_args[..], &["--write", path, "--dry-run"]].concat());
    assert_eq!(
        code,
        exit::OK,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("+") && text.contains("max_buffer_size:"),
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(path).expect("the config"), before);
    // Then for real: the service running from that file reloads the new max.
    let (output, code) = recommend(&[&fleet_args[..], &["--write", path]].concat());
    assert_eq!(
        code,
        exit::OK,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let after = std::fs::read_to_string(path).expect("the config");
    assert!(after.contains("# the default guess") && after.contains("# The stream buffers."));
    let written_max = after
        .lines()
        .find_map(|line| line.trim().strip_prefix("max_buffer_size: "))
        .and_then(|value| value.split_whitespace().next())
        .expect("a max_buffer_size line")
        .to_owned();
    assert_ne!(written_max, "4MiB", "{after}");
    phase("the fleet's answer and --write");
    let reloaded = wait_for(WAIT, "the service to reload the written max", || {
        let max = gauge(&fleet[0].metrics, "heapscape_pool_max_buffer_size_bytes")?;
        (max != f64::from(4u32 << 20)).then_some(max)
    });

    // Since the change: that instance's answer sets the rule's prediction for the new max
    // (from the returns before) against what followed, once enough returns came after it. A
    // window of a few minutes holds both sides.
    let selector = format!("job=\"tts\",instance=\"{}\"", fleet[0].metrics);
    let instance_args = [
        "--prometheus",
        &url,
        "--selector",
        &selector,
        "--window",
        "4m",
    ];
    phase("the written max reloaded");
    let deadline = Instant::now() + SINCE_CHANGE;
    let since = loop {
        let (output, code) = recommend(&[&instance_args[..], &["-o", "json"]].concat());
        let answer = (code == exit::OK).then(|| json(&output));
        let since = answer
            .as_ref()
            .map(|answer| answer["recommendations"][0]["since_change"].clone())
            .unwrap_or_default();
        if since["observed"].is_object() {
            break since;
        }
        assert!(
            Instant::now() < deadline,
            "no observation since the change after {SINCE_CHANGE:?}: exit {code}, {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    phase("an observation since the change");
    assert_eq!(since["max_buffer_size"].as_f64(), Some(reloaded), "{since}");
    assert_eq!(
        since["previous_max_buffer_size"].as_u64(),
        Some(4 << 20),
        "{since}"
    );
    for share in [
        &since["predicted"]["share_over_max"],
        &since["observed"]["share_over_max"],
    ] {
        assert!(
            share.as_f64().is_some_and(|s| (0.0..=1.0).contains(&s)),
            "{since}"
        );
    }
    assert!(
        since["predicted"]["idle_bytes_bound_per_instance"].as_u64() > Some(0),
        "{since}"
    );
    assert!(
        since["returns_since"].as_u64() >= since["min_returns"].as_u64(),
        "{since}"
    );
    // The table and YAML say the same.
    let (output, _) = recommend(&instance_args);
    let table = String::from_utf8_lossy(&output.stdout);
    for expected in ["since the max changed to", "predicted:", "observed:"] {
        assert!(table.contains(expected), "{expected:?} in\n{table}");
    }
    let (output, _) = recommend(&[&instance_args[..], &["-o", "yaml"]].concat());
    let yaml = String::from_utf8_lossy(&output.stdout);
    assert!(yaml.contains("since_change:"), "{yaml}");
}

#[test]
fn bad_sources_get_their_exit_code_and_a_reason() {
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let (output, code) = recommend(&["--prometheus", &nowhere]);
    assert_eq!(code, exit::UNREACHABLE);
    assert!(String::from_utf8_lossy(&output.stderr).contains("is the address right"));

    let (output, code) = recommend(&["--prometheus", "https://prometheus:9090"]);
    assert_eq!(code, exit::USAGE);
    assert!(String::from_utf8_lossy(&output.stderr).contains("not an http:// URL"));

    let (_, code) = recommend(&["--prometheus", &nowhere, "--percentile", "1.5"]);
    assert_eq!(code, exit::USAGE);

    let prometheus = Prometheus::start("global: { scrape_interval: 1s }\n");
    let url = format!("http://{}", prometheus.addr());
    let (output, code) = recommend(&["--prometheus", &url, "--selector", "job=tts"]);
    assert_eq!(
        code,
        exit::USAGE,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("check --selector"));

    let (output, code) = recommend(&["--prometheus", &url, "--selector", "job=\"nope\""]);
    assert_eq!(code, exit::NO_SERIES);
    assert!(String::from_utf8_lossy(&output.stderr).contains("no heapscape pool series"));
}

/// The StatsD path's services behind the stand-in exporter: `service` tag, returns per second
/// (every one of the same length), and the most buffers held at once. Both name their pool
/// `pcm` and run on one host, whose name both set as the `instance` tag.
const STATSD_SERVICES: [(&str, f64, f64, u64); 2] =
    [("tts", 40.0, 100_000.0, 8), ("asr", 120.0, 300_000.0, 16)];

/// The bucket bound the pools' rule rounds a length up to.
fn bound(length: f64) -> f64 {
    LENGTH_BUCKETS[bucket(length)]
}

/// What statsd_exporter serves `seconds` after the services started: their pool's settings,
/// peaks and returned lengths, labelled with their tags.
fn statsd_exposition(seconds: f64) -> String {
    let mut text = format!("# TYPE {} histogram\n", RETURNED_LENGTH.name);
    for (service, per_second, length, peak_held) in STATSD_SERVICES {
        let labels = format!(r#"service="{service}",instance="node-1",pool="pcm""#);
        let returns = (per_second * seconds).floor();
        for le in LENGTH_BUCKETS.iter().copied().chain([f64::INFINITY]) {
            let count = if length <= le { returns } else { 0.0 };
            text.push_str(&format!(
                "{}_bucket{{{labels},le=\"{}\"}} {count}\n",
                RETURNED_LENGTH.name,
                go_float(le)
            ));
        }
        text.push_str(&format!(
            "{name}_sum{{{labels}}} {}\n{name}_count{{{labels}}} {returns}\n",
            returns * length,
            name = RETURNED_LENGTH.name
        ));
        for (metric, value) in [
            (MAX_BUFFER_SIZE.name, 4u64 << 20),
            (INITIAL_CAPACITY.name, 256 << 10),
            (MAX_IDLE_BUFFERS.name, 64),
            (MAX_IDLE_BYTES.name, 128 << 20),
            (PEAK_HELD.name, peak_held),
            (PEAK_IDLE_BYTES.name, peak_held * (1 << 20)),
            (RECOMMENDATION_MIN_RETURNS.name, 400),
        ] {
            text.push_str(&format!("{metric}{{{labels}}} {value}\n"));
        }
    }
    text
}

/// Two services on the StatsD path: Prometheus scrapes both as statsd_exporter's job, and
/// both name their pool `pcm`. Each gets its own recommendation, from the instances' series
/// and from the kit's recording rule alike, and `--write --service` writes only its own.
#[test]
fn statsd_services_that_name_a_pool_alike_are_recommended_and_written_apart() {
    // statsd_exporter cannot be installed here: a loopback server serves what it would, for the
    // time since the services started.
    let started = Instant::now();
    let exporter = FixtureServer::start(Box::new(move |_, _| {
        Some(statsd_exposition(started.elapsed().as_secs_f64()))
    }));
    let rules = workspace_root().join("prometheus/rules/heapscape-recording.yml");
    // As prometheus/prometheus.yml scrapes statsd_exporter: honor_labels keeps the tags'
    // `instance`.
    let prometheus = Prometheus::start(&format!(
        "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}
rule_files: [\"{}\"]
scrape_configs:
  - job_name: statsd-exporter
    honor_labels: true
    static_configs: [{{ targets: [\"{}\"] }}]
",
        rules.display(),
        exporter.addr(),
    ));
    let url = format!("http://{}", prometheus.addr());
    let args = [
        "--prometheus",
        &url,
        "--selector",
        "job=\"statsd-exporter\"",
        "--window",
        "1h",
    ];
    let recommended = |report: &Value| -> Vec<(String, String, String, f64, f64)> {
        report["recommendations"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|r| {
                (
                    r["job"].as_str().unwrap_or_default().to_owned(),
                    r["service"].as_str().unwrap_or_default().to_owned(),
                    r["pool"].as_str().unwrap_or_default().to_owned(),
                    r["recommended"]["max_buffer_size"].as_f64().unwrap_or(0.0),
                    r["recommended"]["initial_capacity"].as_f64().unwrap_or(0.0),
                )
            })
            .collect()
    };
    let expected: Vec<(String, String, String, f64, f64)> = {
        let mut all: Vec<_> = STATSD_SERVICES
            .iter()
            .map(|&(service, _, length, _)| {
                (
                    "statsd-exporter".to_owned(),
                    service.to_owned(),
                    "pcm".to_owned(),
                    bound(length),
                    bound(length),
                )
            })
            .collect();
        all.sort_by(|a, b| a.1.cmp(&b.1));
        all
    };

    // The instances' series, once each service has returned enough (400 at 40 a second).
    let from_series = wait_for(WAIT, "both services to have recommendations", || {
        let (output, code) =
            recommend(&[&args[..], &["--no-recording-rules", "-o", "json"]].concat());
        let report = (code == exit::OK).then(|| json(&output))?;
        let all = report["recommendations"].as_array()?;
        all.iter()
            .all(|r| r["recommended"].is_object())
            .then_some(report.clone())
    });
    assert_eq!(recommended(&from_series), expected, "{from_series}");
    for answer in from_series["recommendations"].as_array().expect("a list") {
        assert_eq!(answer["confidence"]["instances"], 1, "{answer}");
    }

    // The kit's record of the fleet's buckets, once it holds them: the same two answers.
    let from_record = wait_for(WAIT, "the recording rule to hold both services", || {
        let report = report(&args);
        let notes = report["recommendations"].to_string();
        (notes.contains("recording rule")
            && report["recommendations"]
                .as_array()
                .is_some_and(|all| all.iter().all(|r| r["recommended"].is_object())))
        .then_some(report)
    });
    assert_eq!(recommended(&from_record), expected, "{from_record}");

    // The table names each service, and the job they share.
    let (output, code) = recommend(&args);
    assert_eq!(code, exit::OK);
    let table = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "asr (job statsd-exporter) / pcm",
        "tts (job statsd-exporter) / pcm",
    ] {
        assert!(table.contains(expected), "{expected:?} in\n{table}");
    }

    // --write: which service is for the operator to say; the job names both.
    let config = ConfigFile::new("asr.yaml", &CONFIG.replace("tts-demo", "asr"));
    let path = config.path().to_str().expect("a UTF-8 path");
    let (output, code) = recommend(&[&args[..], &["--write", path]].concat());
    assert_eq!(code, exit::USAGE);
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("needs --service") && error.contains("asr (job statsd-exporter)"),
        "{error}"
    );
    let (output, code) = recommend(
        &[
            &args[..],
            &["--write", path, "--service", "statsd-exporter"],
        ]
        .concat(),
    );
    assert_eq!(code, exit::USAGE);
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("matches several services"), "{error}");
    let (output, code) = recommend(&[&args[..], &["--write", path, "--service", "asr"]].concat());
    assert_eq!(
        code,
        exit::OK,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let written = std::fs::read_to_string(path).expect("the config");
    let value = |key: &str| {
        written
            .lines()
            .find_map(|line| line.trim().strip_prefix(&format!("{key}: ")))
            .and_then(|value| value.split_whitespace().next())
            .unwrap_or_default()
            .to_owned()
    };
    // asr's 300 KB returns: 304 KiB (tts's would be 108 KiB); its 16 buffers held plus an
    // eighth.
    assert_eq!(value("max_buffer_size"), "304KiB", "{written}");
    assert_eq!(value("initial_capacity"), "304KiB", "{written}");
    assert_eq!(value("max_idle_buffers"), "18", "{written}");
}
