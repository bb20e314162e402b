//! A real Prometheus server on loopback, with its HTTP API.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::{ChildGuard, WAIT, free_port, http_get, url_encode, wait_until};

/// A Prometheus server (`/usr/bin/prometheus`, or `prometheus` on PATH) on a free port of
/// 127.0.0.1 with its storage in a temporary directory. Killed on drop.
#[derive(Debug)]
pub struct Prometheus {
    addr: SocketAddr,
    _process: ChildGuard,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus with `config` (the text of `prometheus.yml`, YAML or JSON) and waits
    /// until it reports ready.
    pub fn start(config: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("writing the Prometheus config");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let binary = if Path::new("/usr/bin/prometheus").is_file() {
            "/usr/bin/prometheus"
        } else {
            "prometheus"
        };
        let process = ChildGuard::spawn(
            "prometheus (install Debian's `prometheus` package)",
            Command::new(binary)
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--log.level=warn")
                .current_dir(dir.path())
                .stdout(Stdio::null()),
        );
        let prometheus = Self {
            addr,
            _process: process,
            _dir: dir,
        };
        wait_until(WAIT, "Prometheus to be ready", || {
            matches!(prometheus.get("/-/ready", &[]), Some((200, _)))
        });
        prometheus
    }

    /// The address of its HTTP API.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `GET path` with query parameters; the status and body, or `None` if the server cannot
    /// be reached.
    pub fn get(&self, path: &str, params: &[(&str, &str)]) -> Option<(u16, String)> {
        let query: Vec<String> = params
            .iter()
            .map(|(key, value)| format!("{}={}", url_encode(key), url_encode(value)))
            .collect();
        let target = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", query.join("&"))
        };
        http_get(self.addr, &target)
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

    /// Evaluates an instant PromQL query: its result series, or the error.
    pub fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let data = self.api("/api/v1/query", &[("query", promql)])?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }
}
