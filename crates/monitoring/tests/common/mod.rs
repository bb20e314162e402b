//! Shared helpers of the monitoring kit's tests: paths, YAML, child processes, the demo binary,
//! Prometheus, and the queries the dashboards contain.

#![allow(dead_code)] // Each test binary uses a part of this module.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The repository root (two levels above this crate).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// Reads a file of the repository, naming it on failure.
pub fn read(relative: &str) -> String {
    let path = repo().join(relative);
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
        .current_dir(repo())
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

/// A free TCP port on 127.0.0.1 (bound, then released for the child to bind).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("binding a free port on 127.0.0.1")
}

/// A child process that is killed and reaped when dropped.
pub struct Process {
    name: String,
    child: Child,
}

impl Process {
    /// Starts `command` (stdin closed; stdout piped only if `command` asked for it).
    pub fn spawn(name: &str, command: &mut Command) -> Self {
        let child = command
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            name: name.to_owned(),
            child,
        }
    }

    /// Panics if the process has exited (it should be serving).
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited early: {status}", self.name);
        }
    }

    /// Reads lines of the child's stdout until one starts with `prefix`, within `timeout`.
    pub fn wait_for_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let stdout = self
            .child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("{}: stdout is not piped", self.name));
        let (sender, receiver) = mpsc::channel();
        let wanted = prefix.to_owned();
        // The reader thread ends when the child's stdout closes (at the latest, when it is killed).
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with(&wanted) {
                    let _ = sender.send(line);
                    return;
                }
            }
        });
        receiver.recv_timeout(timeout).unwrap_or_else(|_| {
            panic!(
                "{} did not print a line starting with {prefix:?} within {timeout:?}",
                self.name
            )
        })
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Already exited is fine; the wait reaps it either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `heapscape-demo` binary, built once per test process.
///
/// `env!("CARGO_BIN_EXE_...")` exists only for a package's own binaries, and Cargo does not
/// build binaries of dependencies, so this runs `cargo build -p heapscape-demo` into the target
/// directory and profile this test was built with (derived from the test executable's path:
/// `<target>/<profile>/deps/<test>`). Cargo releases its build lock before running tests, so
/// the inner build does not wait on the outer one; when the binary is up to date the build is a
/// no-op. `HEAPSCAPE_DEMO_BIN` overrides the binary (no build).
pub fn demo_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("HEAPSCAPE_DEMO_BIN") {
                return PathBuf::from(path);
            }
            let exe = std::env::current_exe().expect("the test executable's path");
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("the test executable lives in <target>/<profile>/deps");
            let target_dir = profile_dir.parent().expect("a target directory");
            let profile = profile_dir
                .file_name()
                .and_then(|name| name.to_str())
                .expect("a profile directory name");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
            let mut command = Command::new(&cargo);
            command
                .args(["build", "-p", "heapscape-demo", "--bin", "heapscape-demo"])
                .arg("--target-dir")
                .arg(target_dir)
                .current_dir(repo());
            match profile {
                "debug" => {}
                "release" => {
                    command.arg("--release");
                }
                other => {
                    command.args(["--profile", other]);
                }
            }
            let output = command
                .output()
                .unwrap_or_else(|e| panic!("cannot run {cargo} to build heapscape-demo: {e}"));
            assert_success(&output, "cargo build -p heapscape-demo");
            let binary = profile_dir.join("heapscape-demo");
            assert!(binary.is_file(), "{} was not built", binary.display());
            binary
        })
        .clone()
}

/// A Prometheus server (`/usr/bin/prometheus`) on a free loopback port, killed on drop.
pub struct Prometheus {
    pub url: String,
    http: ureq::Agent,
    _process: Process,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus with `config` (YAML or JSON text) and waits until it is ready.
    pub fn start(config: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("writing the Prometheus config");
        let port = free_port();
        let process = Process::spawn(
            "prometheus",
            Command::new(prometheus_binary())
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .stdout(Stdio::null()),
        );
        let http: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let prometheus = Self {
            url: format!("http://127.0.0.1:{port}"),
            http,
            _process: process,
            _dir: dir,
        };
        wait_until(Duration::from_secs(60), "Prometheus to be ready", || {
            prometheus
                .get("/-/ready", &[])
                .is_some_and(|(status, _)| status == 200)
        });
        prometheus
    }

    /// GET `path` with query parameters; `None` if the server cannot be reached.
    pub fn get(&self, path: &str, params: &[(&str, &str)]) -> Option<(u16, String)> {
        let mut request = self.http.get(format!("{}{path}", self.url));
        for (key, value) in params {
            request = request.query(*key, *value);
        }
        let response = request.call().ok()?;
        let status = response.status().as_u16();
        let body = response.into_body().read_to_string().ok()?;
        Some((status, body))
    }

    /// An API call's `data`, or the error Prometheus gave.
    pub fn api(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, String> {
        let (status, body) = self
            .get(path, params)
            .ok_or_else(|| format!("Prometheus did not answer {path}"))?;
        let json: Value = serde_json::from_str(&body)
            .map_err(|e| format!("{path}: HTTP {status}, not JSON ({e}): {body}"))?;
        if json["status"] == "success" {
            Ok(json["data"].clone())
        } else {
            Err(format!(
                "{}: {}",
                json["errorType"].as_str().unwrap_or("error"),
                json["error"].as_str().unwrap_or(&body)
            ))
        }
    }

    /// Evaluates an instant query: its result series, or the error.
    pub fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let data = self.api("/api/v1/query", &[("query", expr)])?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }
}

/// `/usr/bin/prometheus`, or `prometheus` on PATH.
pub fn prometheus_binary() -> &'static str {
    if Path::new("/usr/bin/prometheus").is_file() {
        "/usr/bin/prometheus"
    } else {
        "prometheus"
    }
}

/// The command that installs Prometheus and promtool.
pub const PROMETHEUS_HINT: &str =
    "install Debian's `prometheus` package (scripts/setup does: apt-get install prometheus)";

/// Polls `condition` every 200 ms until it holds; panics after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One query found in a dashboard: where it is and its PromQL (variables not substituted).
#[derive(Debug, Clone)]
pub struct DashboardQuery {
    /// `<dashboard uid> / <panel title> / <refId>` or `... / annotation <name>`.
    pub place: String,
    pub expr: String,
    /// Annotations legitimately return nothing while nothing happened.
    pub annotation: bool,
}

/// The committed dashboards: file name and JSON.
pub fn committed_dashboards() -> Vec<(String, Value)> {
    let folder = repo().join("grafana/dashboards");
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
            queries.push(DashboardQuery {
                place: format!(
                    "{uid} / {} / {}",
                    panel["title"].as_str().unwrap_or("?"),
                    target["refId"].as_str().unwrap_or("?")
                ),
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
        if let Some(expr) = annotation["expr"].as_str() {
            queries.push(DashboardQuery {
                place: format!(
                    "{uid} / annotation {}",
                    annotation["name"].as_str().unwrap_or("?")
                ),
                expr: expr.to_owned(),
                annotation: true,
            });
        }
    }
    queries
}

/// A dashboard's query variables in order: name and `label_values(...)` query.
pub fn variables(dashboard: &Value) -> Vec<(String, String)> {
    dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
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
