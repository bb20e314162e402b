//! Structural checks of the monitoring kit, without starting any server: the generated files
//! against the generator, the dashboards, the Prometheus rules (promtool) and their runbook, the
//! statsd_exporter mapping, docker-compose and the Dockerfile.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{
    PROMETHEUS_HINT, assert_success, committed_dashboards, dashboard_queries, metric_names, panels,
    parse_label_values, read, run, variables, yaml, yaml_file,
};
use heapscape::metrics::{CATALOGS, MetricDef, MetricKind};
use heapscape_monitoring::{
    Config, DASHBOARDS_DIR, DATASOURCE_VARIABLE, RULES_DIR, TAG, dashboards, generate,
};
use heapscape_testkit::workspace_root;
use serde_json::Value;

/// Every metric the library crates publish, from their catalogs, by name.
fn metric_table() -> BTreeMap<&'static str, &'static MetricDef> {
    CATALOGS
        .iter()
        .flat_map(|catalog| catalog.iter())
        .map(|def| (def.name, def))
        .collect()
}

/// Panics unless `name` is a published metric, or a histogram's `_bucket`/`_sum`/`_count`.
fn assert_known_metric(name: &str, table: &BTreeMap<&str, &MetricDef>, place: &str) {
    if table.contains_key(name) {
        return;
    }
    let histogram_series = ["_bucket", "_sum", "_count"].iter().any(|suffix| {
        name.strip_suffix(suffix).is_some_and(|base| {
            table
                .get(base)
                .is_some_and(|def| def.kind == MetricKind::Histogram)
        })
    });
    assert!(
        histogram_series,
        "{place} reads {name}, which no heapscape crate publishes"
    );
}

/// The files of a folder of the repository, relative to the workspace root.
fn files_in(folder: &str) -> BTreeSet<String> {
    std::fs::read_dir(workspace_root().join(folder))
        .unwrap_or_else(|e| panic!("cannot list {folder}: {e}"))
        .map(|entry| {
            let name = entry.expect("a directory entry").file_name();
            format!("{folder}/{}", name.to_string_lossy())
        })
        .collect()
}

#[test]
fn committed_files_are_the_generated_ones() {
    let generated = generate(&Config::default());
    let generated_paths: BTreeSet<String> = generated.iter().map(|f| f.path.clone()).collect();
    let committed: BTreeSet<String> = files_in(DASHBOARDS_DIR)
        .into_iter()
        .chain(files_in(RULES_DIR))
        .collect();
    assert_eq!(
        committed, generated_paths,
        "{DASHBOARDS_DIR}/ and {RULES_DIR}/ must hold exactly the generated files: run \
         `cargo run -p heapscape-monitoring`"
    );
    for file in generated {
        assert!(
            read(&file.path) == file.contents,
            "{} differs from the code in crates/monitoring/src: run \
             `cargo run -p heapscape-monitoring`",
            file.path
        );
    }
}

/// Every `"datasource"` object in a JSON tree, with its path.
fn datasources<'a>(value: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "datasource" {
                    out.push((path.clone(), child));
                } else {
                    datasources(child, format!("{path}.{key}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                datasources(child, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn dashboards_are_provisionable_and_importable_into_any_grafana() {
    let provisioned = yaml_file("grafana/provisioning/datasources/prometheus.yml");
    let source = &provisioned["datasources"][0];
    assert_eq!(source["type"], "prometheus");
    assert_eq!(
        source["isDefault"], true,
        "the dashboards' datasource variable defaults to Grafana's default datasource: the \
         provisioned one must be it"
    );
    let provider = yaml_file("grafana/provisioning/dashboards/heapscape.yml");
    assert_eq!(provider["providers"][0]["type"], "file");

    let mut uids = BTreeSet::new();
    for (file, dashboard) in committed_dashboards() {
        let uid = dashboard["uid"].as_str().unwrap_or_default();
        assert!(
            !uid.is_empty() && uid.len() <= 40,
            "{file}: a stable uid of at most 40 characters"
        );
        assert!(
            uids.insert(uid.to_owned()),
            "{file}: uid {uid} is used twice"
        );
        assert!(
            dashboard["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{file}: a title"
        );
        assert!(
            dashboard["tags"]
                .as_array()
                .is_some_and(|tags| tags.contains(&Value::from(TAG))),
            "{file}: tagged {TAG}"
        );
        assert!(
            dashboard["id"].is_null(),
            "{file}: no numeric id (Grafana assigns it)"
        );
        let text = dashboard.to_string();
        assert!(
            dashboard.get("__inputs").is_none() && !text.contains("${DS_"),
            "{file}: exported-dashboard datasource inputs cannot be provisioned"
        );

        // No fixed datasource uid anywhere: every reference is the datasource variable (or
        // Grafana's built-in annotation source), and the variable defaults to whatever
        // Prometheus the Grafana has, not to a uid.
        let variable = format!("${{{DATASOURCE_VARIABLE}}}");
        let mut found = Vec::new();
        datasources(&dashboard, file.clone(), &mut found);
        assert!(found.len() > 3, "{file}: datasource references");
        for (path, datasource) in found {
            let builtin =
                datasource == &serde_json::json!({ "type": "grafana", "uid": "-- Grafana --" });
            let by_variable =
                datasource == &serde_json::json!({ "type": "prometheus", "uid": variable });
            assert!(
                builtin || by_variable,
                "{path}: datasource {datasource} is not the ${DATASOURCE_VARIABLE} variable"
            );
        }
        let list = dashboard["templating"]["list"]
            .as_array()
            .expect("variables");
        let picker = &list[0];
        assert_eq!(
            (&picker["name"], &picker["type"], &picker["query"]),
            (
                &Value::from(DATASOURCE_VARIABLE),
                &Value::from("datasource"),
                &Value::from("prometheus")
            ),
            "{file}: the first variable picks a Prometheus datasource (the others run on it)"
        );
        assert_eq!(
            picker["current"]["value"], "default",
            "{file}: the datasource variable defaults to the Grafana's default datasource, \
             never to a uid that exists only in one Grafana"
        );
        for other in &list[1..] {
            assert_ne!(
                other["type"], "datasource",
                "{file}: one datasource variable"
            );
        }

        let mut ids = BTreeSet::new();
        for panel in panels(&dashboard) {
            let title = panel["title"].as_str().unwrap_or("?");
            assert!(
                ids.insert(panel["id"].as_u64()),
                "{file} / {title}: duplicate panel id"
            );
            let grid = &panel["gridPos"];
            let (x, w) = (
                grid["x"].as_u64().unwrap_or(99),
                grid["w"].as_u64().unwrap_or(99),
            );
            assert!(x + w <= 24, "{file} / {title}: outside the 24-column grid");
            if panel["type"] == "row" {
                continue;
            }
            assert!(
                panel["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{file} / {title}: a description that says how to read the panel"
            );
            let targets = panel["targets"].as_array().map(Vec::len).unwrap_or(0);
            assert!(targets > 0, "{file} / {title}: no query");
        }

        let defined: Vec<String> = variables(&dashboard)
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        for (i, (name, query)) in variables(&dashboard).iter().enumerate() {
            let (selector, _label) = parse_label_values(query).unwrap_or_else(|| {
                panic!("{file}: variable {name}: {query} is not label_values(...)")
            });
            for used in referenced_variables(selector.as_deref().unwrap_or_default()) {
                assert!(
                    defined[..i].contains(&used),
                    "{file}: variable {name} uses ${used}, which is not defined before it"
                );
            }
        }
        for query in dashboard_queries(&dashboard) {
            for used in referenced_variables(&query.expr) {
                assert!(
                    defined.contains(&used) || used.starts_with("__"),
                    "{}: uses ${used}, not a variable of the dashboard",
                    query.place
                );
            }
        }
    }
}

/// Names of the `$variables` an expression uses.
fn referenced_variables(expr: &str) -> Vec<String> {
    expr.split('$')
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

#[test]
fn every_metric_read_by_dashboards_and_rules_is_published() {
    let table = metric_table();
    for (_, dashboard) in committed_dashboards() {
        for query in dashboard_queries(&dashboard) {
            for name in metric_names(&query.expr) {
                assert_known_metric(&name, &table, &query.place);
            }
        }
        for (name, query) in variables(&dashboard) {
            for metric in metric_names(&query) {
                assert_known_metric(&metric, &table, &format!("variable {name}"));
            }
        }
    }
    for (file, rule) in rules() {
        let expr = rule["expr"].as_str().unwrap_or_default();
        for name in metric_names(expr) {
            assert_known_metric(&name, &table, &format!("{file}: {}", rule_name(&rule)));
        }
    }
}

/// The metric names written outside the generated files: the StatsD mapping, the promtool
/// tests' series, and the demo's scraper, which reads the services' `/metrics` by name. A
/// name no catalog defines would be a mapping, a test or a comparison of nothing.
#[test]
fn every_metric_named_by_the_mapping_the_rule_tests_and_the_demo_is_published() {
    let table = metric_table();
    let mut named = 0;
    let mapping = yaml_file("statsd_exporter/mapping.yml");
    for m in mapping["mappings"].as_array().expect("mappings") {
        for field in ["match", "name"] {
            let text = m[field].as_str().unwrap_or_default();
            for name in metric_names(text.trim_start_matches('^')) {
                named += 1;
                assert_known_metric(
                    &name,
                    &table,
                    &format!("statsd_exporter/mapping.yml {field}"),
                );
            }
        }
    }
    let tests = workspace_root().join("prometheus/tests");
    let mut files: Vec<String> = std::fs::read_dir(&tests)
        .expect("prometheus/tests exists")
        .map(|e| {
            format!(
                "prometheus/tests/{}",
                e.expect("an entry").file_name().to_string_lossy()
            )
        })
        .collect();
    files.push("crates/monitoring/tests/data/cluster-label.test.yml".to_owned());
    for file in &files {
        let parsed = yaml_file(file);
        for test in parsed["tests"].as_array().into_iter().flatten() {
            for series in test["input_series"].as_array().into_iter().flatten() {
                let text = series["series"].as_str().unwrap_or_default();
                for name in metric_names(text) {
                    named += 1;
                    assert_known_metric(&name, &table, &format!("{file}: input series"));
                }
            }
        }
    }
    let scraper = "crates/demo/src/scrape.rs";
    let source = read(scraper);
    for literal in source.split('"').skip(1).step_by(2) {
        if literal.starts_with("heapscape_") {
            named += 1;
            assert_known_metric(literal, &table, scraper);
        }
    }
    assert!(named > 50, "names checked ({named})");
}

/// Every rule of the rule files, with its file.
fn rules() -> Vec<(String, Value)> {
    let folder = workspace_root().join("prometheus/rules");
    let mut files: Vec<_> = std::fs::read_dir(&folder)
        .expect("prometheus/rules exists")
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    let mut all = Vec::new();
    for path in files {
        let name = format!(
            "prometheus/rules/{}",
            path.file_name().unwrap().to_string_lossy()
        );
        let file = yaml_file(&name);
        for group in file["groups"].as_array().into_iter().flatten() {
            for rule in group["rules"].as_array().into_iter().flatten() {
                all.push((name.clone(), rule.clone()));
            }
        }
    }
    all
}

fn rule_name(rule: &Value) -> String {
    rule["alert"]
        .as_str()
        .or(rule["record"].as_str())
        .unwrap_or("?")
        .to_owned()
}

#[test]
fn rules_follow_the_mixin_conventions_and_every_alert_is_tested() {
    let mut tested = BTreeSet::new();
    let tests = workspace_root().join("prometheus/tests");
    for entry in std::fs::read_dir(&tests).expect("prometheus/tests exists") {
        let path = entry.expect("a directory entry").path();
        let text = std::fs::read_to_string(&path).expect("readable test file");
        let file = yaml(&text, &path.display().to_string());
        for test in file["tests"].as_array().into_iter().flatten() {
            for case in test["alert_rule_test"].as_array().into_iter().flatten() {
                let fires = case["exp_alerts"].as_array().is_some_and(|a| !a.is_empty());
                if fires {
                    tested.insert(case["alertname"].as_str().unwrap_or_default().to_owned());
                }
            }
        }
    }

    let (mut alerts, mut records) = (0, 0);
    for (file, rule) in rules() {
        if let Some(alert) = rule["alert"].as_str() {
            alerts += 1;
            let camel = alert.starts_with(|c: char| c.is_ascii_uppercase())
                && alert.chars().all(|c| c.is_ascii_alphanumeric());
            assert!(camel, "{file}: alert {alert} is not CamelCase");
            let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
            assert!(
                ["critical", "warning", "info"].contains(&severity),
                "{file}: alert {alert} needs a severity label (critical, warning or info)"
            );
            for annotation in ["summary", "description"] {
                assert!(
                    rule["annotations"][annotation]
                        .as_str()
                        .is_some_and(|s| !s.trim().is_empty()),
                    "{file}: alert {alert} needs a {annotation} annotation"
                );
            }
            assert!(
                tested.contains(alert),
                "{file}: alert {alert} has no promtool test in prometheus/tests/ that fires it"
            );
            assert_eq!(
                rule["annotations"]["runbook_url"].as_str(),
                Some(Config::default().runbook_link(alert).as_str()),
                "{file}: alert {alert} links its section of prometheus/RUNBOOK.md"
            );
        } else {
            records += 1;
            let record = rule["record"].as_str().unwrap_or_default();
            let parts: Vec<_> = record.split(':').collect();
            let valid = parts.len() == 3
                && parts.iter().all(|part| {
                    !part.is_empty()
                        && part
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                });
            assert!(
                valid,
                "{file}: recording rule {record} is not named level:metric:operation"
            );
        }
    }
    assert!(
        alerts > 0 && records > 0,
        "the rule files hold alerts and recording rules"
    );
}

#[test]
fn promtool_checks_the_config_and_the_rules_and_runs_the_rule_tests() {
    let rule_files: Vec<String> = rules()
        .into_iter()
        .map(|(file, _)| file)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let test_files: Vec<String> = std::fs::read_dir(workspace_root().join("prometheus/tests"))
        .expect("prometheus/tests exists")
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            format!(
                "prometheus/tests/{}",
                path.file_name().unwrap().to_string_lossy()
            )
        })
        .collect();

    let output = run(
        "promtool",
        &["check", "config", "prometheus/prometheus.yml"],
        PROMETHEUS_HINT,
    );
    assert_success(&output, "promtool check config prometheus/prometheus.yml");
    let mut args = vec!["check", "rules"];
    args.extend(rule_files.iter().map(String::as_str));
    assert_success(
        &run("promtool", &args, PROMETHEUS_HINT),
        "promtool check rules",
    );
    let mut args = vec!["test", "rules"];
    args.extend(test_files.iter().map(String::as_str));
    assert_success(
        &run("promtool", &args, PROMETHEUS_HINT),
        "promtool test rules",
    );
}

#[test]
fn statsd_mapping_yields_the_prometheus_names_labels_and_buckets() {
    let mapping = yaml_file("statsd_exporter/mapping.yml");
    assert_eq!(
        mapping["defaults"]["observer_type"], "histogram",
        "observers must become histograms (summaries do not aggregate across instances)"
    );
    let mappings = mapping["mappings"].as_array().expect("a mappings list");

    // A stopped service's series must go: statsd_exporter keeps a series forever without a
    // ttl. Long enough that a ticking service's never blink, short enough that the
    // vanished-service alert sees them go within its lookback.
    let ttl = duration(
        mapping["defaults"]["ttl"]
            .as_str()
            .expect("defaults.ttl: a series' time to live"),
    );
    let heartbeat = duration(
        yaml_file("deploy/heapscape-statsd.yaml")["heartbeat"]["interval"]
            .as_str()
            .expect("the StatsD-path demo's heartbeat interval"),
    );
    assert!(
        ttl >= 10 * heartbeat,
        "ttl {ttl:?}: a few missed heartbeats ({heartbeat:?}) must not drop a series"
    );
    let kit = Config::default();
    assert!(
        ttl + duration(kit.vanished_for) < duration(kit.vanished_lookback),
        "ttl {ttl:?}: a stopped service's series must be gone within          HeapscapeMetricsVanished's lookback, minus its `for`"
    );
    for m in mappings {
        assert!(
            m.get("ttl").is_none(),
            "mapping {}: the ttl of defaults applies to every series",
            m["name"]
        );
    }

    // Every histogram in a catalog needs its buckets in the mapping, the same as on the
    // Prometheus path.
    let expected_buckets: BTreeMap<&str, Vec<f64>> = metric_table()
        .into_values()
        .filter(|def| def.kind == MetricKind::Histogram)
        .map(|def| {
            let buckets = if def.name == heapscape_heartbeat::metrics::SAMPLE_DURATION.name {
                heapscape_heartbeat::SAMPLE_DURATION_BUCKETS.to_vec()
            } else {
                heapscape_pool::metrics::HISTOGRAM_METRICS
                    .iter()
                    .find_map(|&(name, bounds)| (name == def.name).then(|| bounds.to_vec()))
                    .expect("the pool's histograms have bounds")
            };
            (def.name, buckets)
        })
        .collect();
    assert!(expected_buckets.contains_key(heapscape_pool::metrics::RETURNED_LENGTH.name));
    assert!(expected_buckets.contains_key(heapscape_heartbeat::metrics::SAMPLE_DURATION.name));

    for (name, buckets) in &expected_buckets {
        let matching: Vec<&Value> = mappings
            .iter()
            .filter(|m| m["match"].as_str() == Some(&format!("^{name}$")))
            .collect();
        assert_eq!(matching.len(), 1, "one mapping for {name}");
        let m = matching[0];
        assert_eq!(
            m["match_type"], "regex",
            "{name}: glob matches need dots, so a regex"
        );
        assert_eq!(
            m["match_metric_type"], "observer",
            "{name}: maps the `|h` observer"
        );
        assert_eq!(m["name"].as_str(), Some(*name), "{name}: keeps its name");
        assert_eq!(m["observer_type"], "histogram", "{name}: a histogram");
        let got: Vec<f64> = m["histogram_options"]["buckets"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: histogram_options.buckets"))
            .iter()
            .map(|b| b.as_f64().expect("numeric bucket"))
            .collect();
        assert_eq!(
            &got, buckets,
            "{name}: the same buckets as on the Prometheus path"
        );
    }
    for m in mappings {
        let name = m["name"].as_str().unwrap_or_default();
        assert!(
            expected_buckets.contains_key(name),
            "mapping {name}: only histograms need a mapping; others keep their names"
        );
        assert!(
            m.get("labels").is_none(),
            "mapping {name}: labels come from the DogStatsD tags"
        );
    }

    // Unmapped metrics keep their names (statsd_exporter escapes only characters outside
    // [a-zA-Z0-9_] and adds no suffix), so counters must already end in `_total`.
    for (name, def) in metric_table() {
        let histogram = def.kind == MetricKind::Histogram;
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{name} would be renamed by statsd_exporter"
        );
        if def.kind == MetricKind::Counter {
            assert!(
                name.ends_with("_total"),
                "counter {name} must end in _total on both paths"
            );
        }
        if histogram {
            assert!(
                expected_buckets.contains_key(name),
                "histogram {name} has no mapping"
            );
        }
    }
}

/// A duration as the kit's files write them: `5s`, `5m`, `1h`, `500ms`.
fn duration(text: &str) -> std::time::Duration {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or_else(|| panic!("{text}: a number and a unit"));
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .unwrap_or_else(|_| panic!("{text}: a number"));
    let seconds = match unit {
        "ms" => return std::time::Duration::from_millis(number),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => panic!("{text}: unit s, m, h or ms"),
    };
    std::time::Duration::from_secs(number * seconds)
}

/// `docker-compose config` output: the compose file with anchors and merges resolved and paths
/// absolute.
fn compose_config() -> Value {
    let output = run(
        "docker-compose",
        &["-f", "docker-compose.yml", "config"],
        "install Debian's `docker-compose` package (apt-get install docker-compose), which \
         validates compose files without a Docker engine",
    );
    assert_success(&output, "docker-compose -f docker-compose.yml config");
    yaml(
        &String::from_utf8_lossy(&output.stdout),
        "docker-compose config output",
    )
}

/// A bind mount's host path and container path, from either volume syntax.
fn bind_mount(volume: &Value) -> (String, String) {
    match volume {
        Value::String(short) => {
            let mut parts = short.split(':');
            (
                parts.next().unwrap_or_default().to_owned(),
                parts.next().unwrap_or_default().to_owned(),
            )
        }
        long => (
            long["source"].as_str().unwrap_or_default().to_owned(),
            long["target"].as_str().unwrap_or_default().to_owned(),
        ),
    }
}

/// The arguments of a service's command as strings.
fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn compose_file_is_valid_and_everything_it_mounts_and_runs_exists() {
    let quiet = run(
        "docker-compose",
        &["-f", "docker-compose.yml", "config", "-q"],
        "install Debian's `docker-compose` package (apt-get install docker-compose)",
    );
    assert_success(&quiet, "docker-compose -f docker-compose.yml config -q");
    let compose = compose_config();
    let services = compose["services"].as_object().expect("services");
    for name in [
        "demo-unpooled",
        "demo-pooled",
        "demo-auto",
        "demo-statsd",
        "load",
        "statsd-exporter",
        "prometheus",
        "grafana",
    ] {
        assert!(
            services.contains_key(name),
            "docker-compose.yml has no service {name}"
        );
    }

    // Mounted files exist; remember where each lands in its container.
    let mut mounts: BTreeMap<(String, String), std::path::PathBuf> = BTreeMap::new();
    for (name, service) in services {
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let (host, container) = bind_mount(volume);
            let path = std::path::PathBuf::from(&host);
            assert!(
                path.exists(),
                "service {name} mounts {host}, which does not exist"
            );
            assert!(
                path.starts_with(workspace_root()),
                "service {name} mounts {host}, outside the repository"
            );
            mounts.insert((name.clone(), container), path);
        }
    }
    let mounted = |service: &str, container: &str| -> std::path::PathBuf {
        mounts
            .iter()
            .find_map(|((s, target), host)| {
                let rest = container.strip_prefix(target.as_str())?;
                let rest = rest.trim_start_matches('/');
                (s == service).then(|| {
                    if rest.is_empty() {
                        host.clone()
                    } else {
                        host.join(rest)
                    }
                })
            })
            .unwrap_or_else(|| panic!("service {service} mounts nothing at {container}"))
    };

    // The demo services run the binary the Dockerfile builds, with configs the agent accepts.
    let dockerfile = read("Dockerfile");
    assert!(
        dockerfile.contains("-p heapscape-demo --bin heapscape-demo")
            && dockerfile.contains("target/release/heapscape-demo")
            && dockerfile.contains(r#"ENTRYPOINT ["/usr/local/bin/heapscape-demo"]"#),
        "the Dockerfile builds heapscape-demo and makes it the entrypoint"
    );
    assert!(
        read("crates/demo/Cargo.toml").contains(r#"name = "heapscape-demo""#),
        "the demo crate's binary is called heapscape-demo"
    );
    let load = strings(&services["load"]["command"]).join(" ");
    let scrape = yaml_file("prometheus/prometheus.yml");
    let demo_targets: Vec<&str> = scrape["scrape_configs"][0]["static_configs"][0]["targets"]
        .as_array()
        .expect("the demo job's targets")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for name in ["demo-unpooled", "demo-pooled", "demo-auto", "demo-statsd"] {
        let service = &services[name];
        assert!(
            load.contains(&format!(" {name} ")) || load.contains(&format!(" {name};")),
            "the load loop sends requests to {name}"
        );
        assert!(
            service["build"]["context"]
                .as_str()
                .is_some_and(|c| std::path::Path::new(c) == workspace_root())
        );
        let command = strings(&service["command"]);
        assert_eq!(
            command.first().map(String::as_str),
            Some("serve"),
            "{name} serves"
        );
        let config = command
            .iter()
            .position(|arg| arg == "--config")
            .and_then(|i| command.get(i + 1))
            .unwrap_or_else(|| panic!("{name} passes --config"));
        let host_config = mounted(name, config);
        let parsed = heapscape::Config::from_file(&host_config).unwrap_or_else(|e| {
            panic!(
                "{name}: {} is not a valid heapscape config: {e}",
                host_config.display()
            )
        });
        if let heapscape::ExporterConfig::Prometheus(exporter) = &parsed.exporter {
            let target = format!("{name}:{}", exporter.listen.port());
            assert!(
                demo_targets.contains(&target.as_str()),
                "prometheus/prometheus.yml does not scrape {target}"
            );
        }
        let auto_tuned = parsed
            .pools
            .get("pcm")
            .is_some_and(|pool| pool.auto_tune.enabled);
        assert_eq!(
            auto_tuned,
            name == "demo-auto",
            "{name}: only demo-auto tunes its pool (the others show the pool as configured)"
        );
    }
    assert!(
        load.contains("heapscape-demo load") && load.contains("--allow-remote"),
        "the load generator runs `heapscape-demo load --allow-remote` (compose networking is not loopback)"
    );

    // Prometheus scrapes the compose services with its mounted config and rules.
    let prometheus_args = strings(&services["prometheus"]["command"]);
    let config_arg = prometheus_args
        .iter()
        .find_map(|arg| arg.strip_prefix("--config.file="))
        .expect("prometheus --config.file");
    let prometheus_config = mounted("prometheus", config_arg);
    assert_eq!(
        prometheus_config,
        workspace_root().join("prometheus/prometheus.yml")
    );
    assert_eq!(
        mounted("prometheus", "/etc/prometheus/rules"),
        workspace_root().join("prometheus/rules")
    );
    for job in scrape["scrape_configs"].as_array().expect("scrape_configs") {
        for target in job["static_configs"][0]["targets"]
            .as_array()
            .expect("targets")
        {
            let host = target
                .as_str()
                .unwrap_or_default()
                .split(':')
                .next()
                .unwrap_or_default();
            assert!(
                services.contains_key(host),
                "Prometheus scrapes {target}, not a compose service"
            );
        }
    }

    // statsd_exporter reads the mapping on the port the StatsD-path config sends to.
    let exporter_args = strings(&services["statsd-exporter"]["command"]);
    let mapping_arg = exporter_args
        .iter()
        .find_map(|arg| arg.strip_prefix("--statsd.mapping-config="))
        .expect("statsd_exporter --statsd.mapping-config");
    assert_eq!(
        mounted("statsd-exporter", mapping_arg),
        workspace_root().join("statsd_exporter/mapping.yml")
    );
    assert!(
        exporter_args
            .iter()
            .any(|a| a == "--statsd.listen-udp=:9125")
    );
    let statsd_config = yaml_file("deploy/heapscape-statsd.yaml");
    assert_eq!(
        statsd_config["exporter"]["statsd"]["host"],
        "statsd-exporter"
    );
    assert_eq!(statsd_config["exporter"]["statsd"]["port"], 9125);

    // Grafana: provisioning mounted, datasource pointing at the prometheus service, home set.
    assert_eq!(
        mounted("grafana", "/etc/grafana/provisioning"),
        workspace_root().join("grafana/provisioning")
    );
    let provider = yaml_file("grafana/provisioning/dashboards/heapscape.yml");
    let dashboards_path = provider["providers"][0]["options"]["path"]
        .as_str()
        .expect("provider path");
    assert_eq!(
        mounted("grafana", dashboards_path),
        workspace_root().join("grafana/dashboards")
    );
    let environment = &services["grafana"]["environment"];
    assert_eq!(environment["GF_AUTH_ANONYMOUS_ENABLED"], "true");
    assert_eq!(environment["GF_AUTH_ANONYMOUS_ORG_ROLE"], "Viewer");
    let home = environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
        .as_str()
        .expect("a home dashboard");
    assert_eq!(
        mounted("grafana", home),
        workspace_root().join("grafana/dashboards/heapscape-heap.json")
    );
    let datasource = yaml_file("grafana/provisioning/datasources/prometheus.yml");
    assert_eq!(
        datasource["datasources"][0]["url"],
        "http://prometheus:9090"
    );
}

/// An image reference's tag (`prom/prometheus:v2.55.1` -> `v2.55.1`); empty without one.
fn image_tag(image: &str) -> &str {
    let name = image.rsplit('/').next().unwrap_or(image);
    name.split_once(':').map_or("", |(_, tag)| tag)
}

#[test]
fn compose_services_are_healthchecked_pinned_and_start_once_their_dependencies_are_healthy() {
    let compose = compose_config();
    let services = compose["services"].as_object().expect("services");
    for (name, service) in services {
        let check = strings(&service["healthcheck"]["test"]);
        assert!(
            matches!(check.first().map(String::as_str), Some("CMD" | "CMD-SHELL")),
            "service {name} has no healthcheck (test: [CMD, ...]): {check:?}"
        );
        let dependencies = service["depends_on"].as_object();
        for (dependency, how) in dependencies.into_iter().flatten() {
            assert_eq!(
                how["condition"], "service_healthy",
                "service {name} starts before {dependency} is healthy"
            );
        }
        let image = service["image"].as_str().unwrap_or_default();
        let tag = image_tag(image);
        // A version in the tag; the locally built demo image is tagged `local`.
        let pinned = tag.chars().any(|c| c.is_ascii_digit()) && !tag.contains("latest");
        assert!(
            pinned || (service.get("build").is_some() && tag == "local"),
            "service {name}: image {image} is not pinned to a version"
        );
    }
    let waits = services
        .values()
        .filter(|service| service.get("depends_on").is_some())
        .count();
    assert!(waits >= 4, "the services wait for each other ({waits})");

    // The demo image: builds without BuildKit, from pinned images.
    let dockerfile = read("Dockerfile");
    for feature in ["--mount", "<<", "# syntax="] {
        assert!(
            !dockerfile.contains(feature),
            "the Dockerfile uses `{feature}`, which the classic builder lacks"
        );
    }
    let bases: Vec<&str> = dockerfile
        .lines()
        .filter_map(|line| line.strip_prefix("FROM "))
        .map(|rest| rest.split_whitespace().next().unwrap_or_default())
        .collect();
    assert_eq!(
        bases.len(),
        2,
        "a build stage and a runtime stage: {bases:?}"
    );
    for image in bases {
        let tag = image_tag(image);
        // A release of the toolchain (1.88.0), a dated snapshot of Debian (bookworm-20250610).
        let version = tag.split('-').next().unwrap_or_default();
        let release = version.split('.').count() == 3
            && version.split('.').all(|part| part.parse::<u32>().is_ok());
        let dated = tag
            .split('-')
            .any(|part| part.len() == 8 && part.chars().all(|c| c.is_ascii_digit()));
        assert!(
            release || dated,
            "the Dockerfile's {image} floats: pin a release or a dated snapshot"
        );
    }
}

/// The `## ` sections of prometheus/RUNBOOK.md: heading and body.
fn runbook_sections() -> BTreeMap<String, String> {
    let text = read("prometheus/RUNBOOK.md");
    let mut sections = BTreeMap::new();
    for part in text.split("\n## ").skip(1) {
        let (heading, body) = part.split_once('\n').unwrap_or((part, ""));
        sections.insert(heading.trim().to_owned(), body.to_owned());
    }
    sections
}

#[test]
fn every_alert_has_a_runbook_section_that_says_what_to_do() {
    let sections = runbook_sections();
    let alerts: BTreeSet<String> = rules()
        .into_iter()
        .filter_map(|(_, rule)| rule["alert"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        sections.keys().cloned().collect::<BTreeSet<_>>(),
        alerts,
        "prometheus/RUNBOOK.md has one `## <alert>` section per alert (GitHub makes the \
         heading the anchor runbook_url points at), and no other"
    );
    for (alert, body) in &sections {
        for part in [
            "### Meaning",
            "### Confirm on the dashboards",
            "### What to change",
        ] {
            assert!(body.contains(part), "RUNBOOK.md, {alert}: no `{part}` part");
        }
    }
}

/// The label lists of every `by (...)` in an expression.
fn by_clauses(expr: &str) -> Vec<Vec<String>> {
    expr.match_indices("by (")
        .map(|(at, found)| {
            let rest = &expr[at + found.len()..];
            let inner = &rest[..rest.find(')').unwrap_or(rest.len())];
            inner
                .split(',')
                .map(|label| label.trim().to_owned())
                .collect()
        })
        .collect()
}

/// The label lists of every vector matching `on (...)` in an expression.
fn on_clauses(expr: &str) -> Vec<Vec<String>> {
    expr.match_indices(" on (")
        .map(|(at, found)| {
            let rest = &expr[at + found.len()..];
            let inner = &rest[..rest.find(')').unwrap_or(rest.len())];
            inner
                .split(',')
                .map(|label| label.trim().to_owned())
                .collect()
        })
        .collect()
}

/// Every PromQL expression of the committed kit: dashboard queries, variables and rules.
fn every_expression() -> Vec<(String, String)> {
    let mut all = Vec::new();
    for (file, dashboard) in committed_dashboards() {
        for query in dashboard_queries(&dashboard) {
            all.push((query.place, query.expr));
        }
        for (name, query) in variables(&dashboard) {
            all.push((format!("{file}: variable {name}"), query));
        }
    }
    for (file, rule) in rules() {
        let expr = rule["expr"].as_str().unwrap_or_default().to_owned();
        all.push((format!("{file}: {}", rule_name(&rule)), expr));
    }
    all
}

#[test]
fn aggregations_by_pool_keep_the_job_so_two_services_pools_never_merge() {
    let mut checked = 0;
    for (place, expr) in every_expression() {
        for labels in by_clauses(&expr) {
            if labels.iter().any(|l| l == "pool") {
                checked += 1;
                assert!(
                    labels.iter().any(|l| l == "job"),
                    "{place}: `by ({})` merges pools of the same name from different jobs\n  {expr}",
                    labels.join(", ")
                );
            }
        }
    }
    assert!(checked > 10, "aggregations by pool exist ({checked})");
}

/// Every fleet aggregation of the dashboards (by job, not instance) and every per-service
/// record (`job:...`, the recommendation's included) keeps the labels that name a service
/// (job and service): on the StatsD path every service is scraped as statsd_exporter's job,
/// so by job alone two services' pools would be summed together. So does every vector
/// matching `on (...)` of those records, or two StatsD services' series would not join one
/// to one.
#[test]
fn fleet_aggregations_keep_the_service_so_statsd_services_never_merge() {
    let service: Vec<String> = Config::default()
        .service_labels
        .split(',')
        .map(|label| label.trim().to_owned())
        .collect();
    assert!(service.contains(&"service".to_owned()), "{service:?}");
    let keeps_the_service = |place: &str, expr: &str| -> usize {
        let mut checked = 0;
        for labels in by_clauses(expr).into_iter().chain(on_clauses(expr)) {
            let per_instance = labels.iter().any(|l| l == "instance");
            if labels.iter().any(|l| l == "job") && !per_instance {
                checked += 1;
                assert!(
                    service.iter().all(|label| labels.contains(label)),
                    "{place}: `by ({})` merges the StatsD path's services\n  {expr}",
                    labels.join(", ")
                );
            }
        }
        checked
    };
    let mut checked = 0;
    for (_, dashboard) in committed_dashboards() {
        for query in dashboard_queries(&dashboard) {
            checked += keeps_the_service(&query.place, &query.expr);
        }
    }
    let recording = yaml_file("prometheus/rules/heapscape-recording.yml");
    let mut records = 0;
    for group in recording["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let record = rule["record"].as_str().unwrap_or_default();
            if record.starts_with("job:") {
                records += 1;
                checked += keeps_the_service(record, rule["expr"].as_str().unwrap_or_default());
            }
        }
    }
    assert!(records >= 20, "per-service records exist ({records})");
    assert!(checked >= 10, "fleet aggregations exist ({checked})");
}

#[test]
fn tables_give_each_column_its_own_unit() {
    let (mut tables, mut candidate_costs) = (0, 0);
    for (file, dashboard) in committed_dashboards() {
        for panel in panels(&dashboard) {
            if panel["type"] != "table" {
                continue;
            }
            tables += 1;
            let title = panel["title"].as_str().unwrap_or("?");
            assert!(
                panel["fieldConfig"]["defaults"].get("unit").is_none(),
                "{file} / {title}: a panel-wide unit also applies to label columns converted to \
                 numbers (a size shown as a percentage)"
            );
            let units: BTreeMap<&str, &str> = panel["fieldConfig"]["overrides"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|o| o["matcher"]["id"] == "byName")
                .filter_map(|o| {
                    let unit = o["properties"]
                        .as_array()?
                        .iter()
                        .find(|p| p["id"] == "unit")?["value"]
                        .as_str()?;
                    Some((o["matcher"]["options"].as_str()?, unit))
                })
                .collect();
            let mut numeric: Vec<&str> = Vec::new();
            for transformation in panel["transformations"].as_array().into_iter().flatten() {
                // A query's values: `Value`, or `Value #<refId>` when a table has several.
                let renames = transformation["options"]["renameByName"].as_object();
                for (field, name) in renames.into_iter().flatten() {
                    if field == "Value" || field.starts_with("Value #") {
                        numeric.push(name.as_str().unwrap_or("?"));
                    }
                }
                for conversion in transformation["options"]["conversions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    if conversion["destinationType"] == "number" {
                        numeric.push(conversion["targetField"].as_str().unwrap_or("?"));
                    }
                }
            }
            assert!(!numeric.is_empty(), "{file} / {title}: a value column");
            for column in numeric {
                assert!(
                    units.contains_key(column),
                    "{file} / {title}: numeric column {column} has no unit of its own"
                );
            }
            if title.starts_with("What each candidate max would discard") {
                assert_eq!(units.get("Candidate max"), Some(&"bytes"), "{title}");
                assert_eq!(
                    units.get("Returns it would discard"),
                    Some(&"percentunit"),
                    "{title}"
                );
            }
            if title.starts_with("What each candidate max would cost") {
                candidate_costs += 1;
                assert_eq!(units.get("Candidate max"), Some(&"bytes"), "{title}");
                assert_eq!(
                    units.get("Returns over it"),
                    Some(&"percentunit"),
                    "{title}"
                );
                assert_eq!(units.get("Regrowth copies"), Some(&"binBps"), "{title}");
                assert_eq!(units.get("Idle memory at most"), Some(&"bytes"), "{title}");
                // One row per candidate, lower to higher within each instance's pool.
                let sort: Vec<&str> = panel["options"]["sortBy"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s["displayName"].as_str())
                    .collect();
                assert_eq!(
                    sort,
                    ["Job", "Instance", "Pool", "Candidate max"],
                    "{title}"
                );
            }
        }
    }
    assert!(tables >= 3, "the dashboards' tables");
    assert_eq!(
        candidate_costs, 1,
        "the pool dashboard's candidate cost table"
    );
}

#[test]
fn the_discard_ratio_counts_only_reasons_a_return_can_have() {
    let reasons: Vec<&str> = heapscape_pool::stats::DiscardReason::ALL
        .iter()
        .map(|reason| reason.as_str())
        .collect();
    let config = Config::default();
    for reason in config.return_discard_reasons {
        assert!(
            reasons.contains(reason),
            "{reason} is not a reason of heapscape_pool_discards_total"
        );
        assert!(
            !["idle_timeout", "reconfigure"].contains(reason),
            "{reason} happens without a return"
        );
    }
    assert!(
        reasons.contains(&"idle_timeout"),
        "trims are a reason of their own"
    );
}

/// The PromQL selector right after each raw heapscape metric name in `expr` (empty when the
/// name has none).
fn raw_selectors(expr: &str) -> Vec<(String, String)> {
    metric_names(expr)
        .into_iter()
        .map(|name| {
            let at = expr.find(&name).expect("the name is in the expression") + name.len();
            let rest = &expr[at..];
            let selector = rest
                .strip_prefix('{')
                .and_then(|inner| inner.split_once('}'))
                .map(|(inside, _)| inside.to_owned())
                .unwrap_or_default();
            (name, selector)
        })
        .collect()
}

#[test]
fn the_knobs_reach_every_generated_query_and_the_result_stays_valid() {
    let config = Config {
        selector: r#"env="prod""#,
        cluster_label: Some("cluster"),
        rate_window: "2m",
        ..Config::default()
    };
    let files = generate(&config);
    let dir = std::env::temp_dir().join(format!("heapscape-kit-{}", std::process::id()));
    for file in &files {
        let path = dir.join(&file.path);
        std::fs::create_dir_all(path.parent().unwrap()).expect("a temporary folder");
        std::fs::write(&path, &file.contents).expect("writing a generated file");
    }
    let mut exprs: Vec<(String, String)> = Vec::new();
    for board in dashboards(&config) {
        let names: Vec<&str> = board.json["templating"]["list"]
            .as_array()
            .expect("variables")
            .iter()
            .filter_map(|v| v["name"].as_str())
            .collect();
        assert_eq!(
            names[..3],
            ["datasource", "cluster", "job"],
            "{}",
            board.uid
        );
        let cluster = &board.json["templating"]["list"][1];
        assert!(
            cluster["multi"] == false && cluster["includeAll"] == false,
            "{}: one cluster at a time, so that totals and top-k never mix clusters",
            board.uid
        );
        exprs.extend(
            dashboard_queries(&board.json)
                .into_iter()
                .map(|query| (query.place, query.expr)),
        );
        exprs.extend(variables(&board.json).into_iter().skip(1));
    }
    for (name, query) in &exprs {
        for (metric, selector) in raw_selectors(query) {
            assert!(
                selector.contains(r#"env="prod""#) && selector.contains(r#"cluster=~"$cluster""#),
                "{name}: {metric} without the config's selector and cluster\n  {query}"
            );
        }
        for labels in on_clauses(query) {
            assert_eq!(labels[0], "cluster", "{name}: {query}");
        }
    }
    // Recorded series keep the aggregation's labels only: the cluster, not the selector's.
    let records: Vec<String> = files
        .iter()
        .filter(|f| f.path.starts_with(RULES_DIR))
        .flat_map(|f| {
            let parsed = yaml(&f.contents, &f.path);
            parsed["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                .filter_map(|r| r["record"].as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut read_records = 0;
    for (name, query) in &exprs {
        for record in &records {
            for (at, _) in query.match_indices(&format!("{record}{{")) {
                read_records += 1;
                let rest = &query[at + record.len() + 1..];
                let selector = &rest[..rest.find('}').unwrap_or(rest.len())];
                assert!(
                    selector.contains(r#"cluster=~"$cluster""#)
                        && !selector.contains(r#"env="prod""#),
                    "{name}: {record} is selected by labels it does not keep: {selector}"
                );
            }
        }
    }
    assert!(
        read_records >= 3,
        "dashboards read recording rules ({read_records})"
    );

    let mut rule_paths = Vec::new();
    for file in files.iter().filter(|f| f.path.starts_with(RULES_DIR)) {
        rule_paths.push(dir.join(&file.path).display().to_string());
        let parsed = yaml(&file.contents, &file.path);
        for group in parsed["groups"].as_array().expect("groups") {
            for rule in group["rules"].as_array().expect("rules") {
                let expr = rule["expr"].as_str().expect("an expression");
                let name = rule_name(rule);
                for (metric, selector) in raw_selectors(expr) {
                    if metric != "up" {
                        assert!(
                            selector.contains(r#"env="prod""#),
                            "{name}: {metric} without the config's selector\n  {expr}"
                        );
                    }
                }
                for labels in by_clauses(expr).into_iter().chain(on_clauses(expr)) {
                    assert_eq!(labels[0], "cluster", "{name}: {expr}");
                }
                if let Some(record) = rule["record"].as_str() {
                    assert!(
                        !record.contains("rate5m"),
                        "{record}: the rate window is a knob"
                    );
                }
            }
        }
    }
    let mut args = vec!["check", "rules"];
    args.extend(rule_paths.iter().map(String::as_str));
    let output = run("promtool", &args, PROMETHEUS_HINT);
    let _ = std::fs::remove_dir_all(&dir);
    assert_success(&output, "promtool check rules (generated with other knobs)");
}

/// The alerts with a cluster label and named targets pass the promtool tests of
/// `tests/data/cluster-label.test.yml`: a service gone from one cluster fires while the same
/// names report in another, every summary names the cluster, named jobs catch a target that
/// never reported.
#[test]
fn rules_with_a_cluster_label_and_named_targets_pass_their_promtool_tests() {
    let config = Config {
        cluster_label: Some("cluster"),
        targets_selector: r#"job=~"tts|asr""#,
        ..Config::default()
    };
    let dir = std::env::temp_dir().join(format!("heapscape-cluster-{}", std::process::id()));
    for file in generate(&config)
        .iter()
        .filter(|f| f.path.starts_with(RULES_DIR))
    {
        let path = dir.join(&file.path);
        std::fs::create_dir_all(path.parent().unwrap()).expect("a temporary folder");
        std::fs::write(&path, &file.contents).expect("writing a generated file");
    }
    let test = dir.join("prometheus/tests/cluster-label.test.yml");
    std::fs::create_dir_all(test.parent().unwrap()).expect("a temporary folder");
    std::fs::write(
        &test,
        read("crates/monitoring/tests/data/cluster-label.test.yml"),
    )
    .expect("writing the test file");
    let output = run(
        "promtool",
        &["test", "rules", &test.display().to_string()],
        PROMETHEUS_HINT,
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_success(
        &output,
        "promtool test rules tests/data/cluster-label.test.yml",
    );
}
