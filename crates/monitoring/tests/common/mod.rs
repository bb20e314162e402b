//! Shared helpers of the monitoring kit's tests: files of the repository, YAML, commands, the
//! demo binary, and the queries the dashboards contain.

#![allow(dead_code)] // Each test binary uses a part of this module.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};

pub mod exposition;

use heapscape_testkit::workspace_root;
use serde_json::Value;

/// Reads a file of the repository, naming it on failure.
pub fn read(relative: &str) -> String {
    let path = workspace_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Parses YAML into JSON values (the YAML files here use no tags or merge keys).
pub fn yaml(text: &str, what: &str) -> Value {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{what} is not valid YAML: {e}"))
}

/// Reads and parses a YAML file of the repository.
pub fn yaml_file(relative: &str) -> Value {
    yaml(&read(relative), relative)
}

/// Runs a command to completion; panics with what to do when the program is missing.
pub fn run(program: &str, args: &[&str], install_hint: &str) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(workspace_root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}; {install_hint}"))
}

/// Asserts that a command succeeded, showing its output otherwise.
pub fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The `heapscape-demo` binary, built once per test process (see
/// [`heapscape_testkit::workspace_binary`]).
pub fn demo_binary() -> PathBuf {
    heapscape_testkit::workspace_binary("heapscape-demo", "HEAPSCAPE_DEMO_BIN")
}

/// The command that installs Prometheus and promtool.
pub const PROMETHEUS_HINT: &str =
    "install Debian's `prometheus` package (scripts/setup does: apt-get install prometheus)";

/// One query found in a dashboard: where it is and its PromQL (variables not substituted).
#[derive(Debug, Clone)]
pub struct DashboardQuery {
    /// `<dashboard uid> / <panel title> / <refId>` or `... / annotation <name>`.
    pub place: String,
    /// The dashboard's uid and the panel's title (the annotation's name).
    pub panel: (String, String),
    pub expr: String,
    /// Annotations legitimately return nothing while nothing happened.
    pub annotation: bool,
}

/// The committed dashboards: file name and JSON.
pub fn committed_dashboards() -> Vec<(String, Value)> {
    let folder = workspace_root().join("grafana/dashboards");
    let mut files: Vec<_> = std::fs::read_dir(&folder)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", folder.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).expect("readable dashboard");
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{name} is not valid JSON: {e}"));
            (name, json)
        })
        .collect()
}

/// Every panel (rows' nested panels included) of a dashboard.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        all.push(panel);
        all.extend(panel["panels"].as_array().into_iter().flatten());
    }
    all
}

/// Every PromQL query of a dashboard's panels and Prometheus annotations.
pub fn dashboard_queries(dashboard: &Value) -> Vec<DashboardQuery> {
    let uid = dashboard["uid"].as_str().unwrap_or("?");
    let mut queries = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("?");
            queries.push(DashboardQuery {
                place: format!(
                    "{uid} / {title} / {}",
                    target["refId"].as_str().unwrap_or("?")
                ),
                panel: (uid.to_owned(), title.to_owned()),
                expr: target["expr"].as_str().unwrap_or_default().to_owned(),
                annotation: false,
            });
        }
    }
    for annotation in dashboard["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(expr) = annotation["target"]["expr"].as_str() {
            let name = annotation["name"].as_str().unwrap_or("?");
            queries.push(DashboardQuery {
                place: format!("{uid} / annotation {name}"),
                panel: (uid.to_owned(), name.to_owned()),
                expr: expr.to_owned(),
                annotation: true,
            });
        }
    }
    queries
}

/// A dashboard's query variables in order: name and `label_values(...)` query (the
/// datasource variable, which picks where they run, is not one of them).
pub fn variables(dashboard: &Value) -> Vec<(String, String)> {
    dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|variable| variable["type"] == "query")
        .map(|variable| {
            (
                variable["name"].as_str().unwrap_or_default().to_owned(),
                variable["query"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Splits `label_values(<selector>, <label>)` (or `label_values(<label>)`) into its parts.
pub fn parse_label_values(query: &str) -> Option<(Option<String>, String)> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    match inner.rsplit_once(',') {
        Some((selector, label)) => {
            Some((Some(selector.trim().to_owned()), label.trim().to_owned()))
        }
        None => Some((None, inner.trim().to_owned())),
    }
}

/// What Grafana puts in place of its built-in variables when the tests evaluate a query.
pub const BUILTIN_VARIABLES: &[(&str, &str)] = &[
    ("$__rate_interval", "15s"),
    ("$__interval", "5s"),
    ("$__range", "10m"),
];

/// Substitutes Grafana variables: the built-ins, then each dashboard variable's values as a
/// regex alternation with regex metacharacters escaped, as Grafana does for multi-value
/// variables in `=~` matchers.
pub fn substitute(expr: &str, values: &BTreeMap<String, Vec<String>>) -> String {
    let mut out = expr.to_owned();
    for (name, value) in BUILTIN_VARIABLES {
        out = out.replace(name, value);
    }
    // Longest names first, so `$instance` is not replaced inside a longer name.
    let mut names: Vec<_> = values.keys().collect();
    names.sort_by_key(|name| std::cmp::Reverse(name.len()));
    for name in names {
        let escaped: Vec<String> = values[name].iter().map(|v| regex_escape(v)).collect();
        out = out.replace(&format!("${name}"), &format!("({})", escaped.join("|")));
    }
    out
}

/// Escapes regex metacharacters for a PromQL string literal (`.` becomes `\\.`).
fn regex_escape(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push_str(r"\\");
        }
        out.push(c);
    }
    out
}

/// Names of metrics a PromQL expression reads (`heapscape_*` identifiers not part of a
/// recording rule name `level:metric:operation`).
pub fn metric_names(expr: &str) -> Vec<String> {
    let bytes = expr.as_bytes();
    let mut names = Vec::new();
    let mut i = 0;
    while let Some(offset) = expr[i..].find("heapscape_") {
        let start = i + offset;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let in_rule_name = start > 0 && bytes[start - 1] == b':';
        let in_identifier =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if !in_rule_name && !in_identifier {
            names.push(expr[start..end].to_owned());
        }
        i = end;
    }
    names
}
