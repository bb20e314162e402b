//! The metric catalogs of every heapscape crate, checked once for all of them: Prometheus
//! naming and units, that what the crates publish is described with its unit, and that the
//! README tables list exactly the catalogs. This crate is the one that sees every catalog.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::StatusCode;
use heapscape::metrics::{CATALOGS, MetricDef, MetricKind};
use heapscape_demo::service_metrics;
use heapscape_heartbeat::Heartbeat;
use heapscape_pool::Pool;
use metrics::Unit;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

// The heartbeat samples jemalloc, and publishes the allocation rate only when the counting
// allocator runs.
#[global_allocator]
static GLOBAL: heapscape::CountingJemalloc = heapscape::CountingJemalloc;

/// Each catalog, with the README whose metric tables must list exactly it.
const READMES: &[(&str, &[MetricDef])] = &[
    ("README.md", heapscape_pool::metrics::CATALOG),
    (
        "crates/heartbeat/README.md",
        heapscape_heartbeat::metrics::CATALOG,
    ),
    ("crates/agent/README.md", heapscape::metrics::CATALOG),
    ("crates/demo/README.md", service_metrics::CATALOG),
];

/// Every metric of every crate: the agent's set and the demo's own.
fn every_metric() -> impl Iterator<Item = &'static MetricDef> {
    CATALOGS
        .iter()
        .chain([&service_metrics::CATALOG])
        .flat_map(|catalog| catalog.iter())
}

fn find(name: &str) -> Option<&'static MetricDef> {
    every_metric().find(|def| def.name == name)
}

#[test]
fn the_agent_lists_every_library_catalog() {
    let libraries: Vec<&[MetricDef]> = READMES[..3].iter().map(|(_, catalog)| *catalog).collect();
    assert_eq!(CATALOGS, libraries);
}

#[test]
fn names_units_and_labels_follow_prometheus_conventions() {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for def in every_metric() {
        let name = def.name;
        let mut problem = |what: String| problems.push(format!("{name}: {what}"));
        if !seen.insert(name) {
            problem("defined twice".into());
        }
        if !name.starts_with("heapscape_") || name.matches("heapscape").count() != 1 {
            problem("must start with the one prefix `heapscape_`".into());
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            || name.contains("__")
            || name.ends_with('_')
        {
            problem("only lowercase letters, digits and single underscores".into());
        }
        if (def.kind == MetricKind::Counter) != name.ends_with("_total") {
            problem("counters, and only counters, end in `_total`".into());
        }
        // A histogram's series add these suffixes; a metric ending in one would be read as a
        // histogram's.
        if ["_bucket", "_sum", "_count"]
            .iter()
            .any(|s| name.ends_with(s))
        {
            problem("ends in a histogram series suffix".into());
        }
        let base = name.strip_suffix("_total").unwrap_or(name);
        // A byte rate keeps the unit bytes and says per what in its name
        // (`heapscape_pool_candidate_regrow_bytes_per_second`): the base units have no rate.
        for (unit, suffixes) in [
            (Unit::Bytes, &["_bytes", "_bytes_per_second"][..]),
            (Unit::Seconds, &["_seconds"][..]),
        ] {
            if (def.unit == unit) != suffixes.iter().any(|suffix| base.ends_with(suffix)) {
                problem(format!(
                    "unit {} and a name ending in `{}` (before `_total`) go together",
                    def.unit.as_str(),
                    suffixes.join("` or `")
                ));
            }
        }
        if ![Unit::Count, Unit::Bytes, Unit::Seconds].contains(&def.unit) {
            problem("Prometheus base units only: count, bytes or seconds".into());
        }
        if def.help.is_empty() || !def.help.ends_with('.') {
            problem("help text is one or more sentences".into());
        }
        let mut labels = BTreeSet::new();
        for label in def.labels {
            let valid = label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && label.starts_with(|c: char| c.is_ascii_lowercase());
            if !valid {
                problem(format!("label `{label}`: lowercase `[a-z][a-z0-9_]*`"));
            }
            // `le` and `quantile` belong to histograms and summaries; `service` is the agent's
            // label on every metric.
            if ["le", "quantile", "service"].contains(label) {
                problem(format!("label `{label}` is reserved"));
            }
            if !labels.insert(label) {
                problem(format!("label `{label}` listed twice"));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn what_the_crates_publish_is_described_with_its_unit() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        heapscape::metrics::describe();
        service_metrics::describe_metrics();

        let pool = Pool::builder("catalog").build().expect("valid pool");
        pool.get().extend_from_slice(b"RIFF");
        let heartbeat = Heartbeat::builder().pool(pool).build();
        heartbeat.tick().expect("jemalloc is the global allocator");

        service_metrics::count_response(StatusCode::OK);
        service_metrics::count_response(StatusCode::IM_A_TEAPOT);
        service_metrics::count_audio_bytes(10);
        service_metrics::count_budget_refusal();
        service_metrics::set_log_lines_dropped(1);

        // The agent publishes its own metrics only while it runs, into the exporter it
        // installs; emit them the way it does, through their definitions.
        for def in heapscape::metrics::CATALOG {
            match def.kind {
                MetricKind::Counter => def.increment(0),
                MetricKind::Gauge => def.set_now(),
                MetricKind::Histogram => def.record(0.0),
            }
        }
    });

    let mut problems = Vec::new();
    let mut published = BTreeSet::new();
    for (key, unit, help, value) in snapshotter.snapshot().into_vec() {
        let name = key.key().name();
        let Some(def) = find(name) else {
            problems.push(format!("{name} is published but in no catalog"));
            continue;
        };
        published.insert(def.name);
        let kind = match def.kind {
            MetricKind::Counter => metrics_util::MetricKind::Counter,
            MetricKind::Gauge => metrics_util::MetricKind::Gauge,
            MetricKind::Histogram => metrics_util::MetricKind::Histogram,
        };
        if key.kind() != kind {
            problems.push(format!("{name}: published as a {:?}", key.kind()));
        }
        if unit != Some(def.unit) || help.as_deref() != Some(def.help) {
            problems.push(format!(
                "{name}: described with unit {unit:?} and help {help:?}"
            ));
        }
        let labels: Vec<&str> = key.key().labels().map(|label| label.key()).collect();
        if labels != def.labels {
            problems.push(format!(
                "{name}: labels {labels:?}, catalog {:?}",
                def.labels
            ));
        }
        if name == heapscape_heartbeat::metrics::UP.name {
            assert_eq!(value, DebugValue::Gauge(1.0.into()), "{name}");
        }
    }
    for def in every_metric() {
        if !published.contains(def.name) {
            problems.push(format!(
                "{} is in a catalog but was not published",
                def.name
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// A row of a README metric table: `| name{labels} | type | unit | ... |`.
struct Row {
    line: usize,
    name: String,
    labels: Vec<String>,
    kind: String,
    unit: String,
}

/// The rows of every table whose header starts with `name | type | unit`.
fn metric_rows(text: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut in_metric_table = false;
    for (index, line) in text.lines().enumerate() {
        let Some(inner) = line.trim().strip_prefix('|') else {
            in_metric_table = false;
            continue;
        };
        let cells: Vec<&str> = inner
            .trim_end_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        let header: Vec<String> = cells.iter().take(3).map(|c| c.to_lowercase()).collect();
        if header == ["name", "type", "unit"] {
            in_metric_table = true;
            continue;
        }
        let separator = cells
            .iter()
            .all(|c| c.chars().all(|ch| matches!(ch, '-' | ':' | ' ')));
        if !in_metric_table || separator || cells.len() < 3 {
            continue;
        }
        let cell = cells[0].trim_matches('`');
        let (name, labels) = match cell.split_once('{') {
            Some((name, labels)) => (
                name,
                labels
                    .trim_end_matches('}')
                    .split(',')
                    .map(|label| label.trim().to_owned())
                    .collect(),
            ),
            None => (cell, Vec::new()),
        };
        rows.push(Row {
            line: index + 1,
            name: name.to_owned(),
            labels,
            kind: cells[1].to_owned(),
            unit: cells[2].to_owned(),
        });
    }
    rows
}

#[test]
fn readme_tables_list_exactly_the_catalogs() {
    let root = heapscape_testkit::workspace_root();
    let mut problems = Vec::new();
    for (file, catalog) in READMES {
        let text = std::fs::read_to_string(root.join(file))
            .unwrap_or_else(|error| panic!("{file}: {error}"));
        let rows = metric_rows(&text);
        let mut listed = BTreeMap::new();
        for row in &rows {
            let at = format!("{file}:{}", row.line);
            let Some(def) = catalog.iter().find(|def| def.name == row.name) else {
                problems.push(format!(
                    "{at}: remove the row for `{}`: its crate does not publish it",
                    row.name
                ));
                continue;
            };
            if listed.insert(def.name, row.line).is_some() {
                problems.push(format!("{at}: remove the second row for `{}`", def.name));
            }
            if row.kind != def.kind.as_str() || row.unit != def.unit.as_str() {
                problems.push(format!(
                    "{at}: fix the row for `{}`: type `{}` and unit `{}`, not `{}` and `{}`",
                    def.name,
                    def.kind.as_str(),
                    def.unit.as_str(),
                    row.kind,
                    row.unit
                ));
            }
            for label in &row.labels {
                if !def.labels.contains(&label.as_str()) {
                    problems.push(format!(
                        "{at}: fix the row for `{}`: it has no label `{label}` (labels: {:?})",
                        def.name, def.labels
                    ));
                }
            }
        }
        for def in *catalog {
            if !listed.contains_key(def.name) {
                problems.push(format!(
                    "{file}: add a row `| `{}` | {} | {} | ... |` to the metric table",
                    def.name,
                    def.kind.as_str(),
                    def.unit.as_str()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn a_readme_row_is_parsed_with_its_labels() {
    let rows = metric_rows(
        "| Name | Type | Unit | Meaning |\n|---|---|---|---|\n\
         | `heapscape_x_total{pool, reason}` | counter | count | x |\n\
         \n| key | default |\n|---|---|\n| `heapscape_y` | z |\n",
    );
    assert_eq!(rows.len(), 1, "only rows of metric tables");
    let row = &rows[0];
    assert_eq!(
        (
            row.line,
            row.name.as_str(),
            row.kind.as_str(),
            row.unit.as_str()
        ),
        (3, "heapscape_x_total", "counter", "count")
    );
    assert_eq!(row.labels, ["pool", "reason"]);
}
