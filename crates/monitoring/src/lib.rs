//! The heapscape monitoring kit written once as code: Grafana dashboards, Prometheus recording
//! rules and alerts, generated from one set of knobs.
//!
//! Like a monitoring mixin, the kit keeps its selectors, thresholds and windows in one place,
//! [`Config`], and generates from it the files committed under `grafana/dashboards/` and
//! `prometheus/rules/` ([`generate`]; write them with `cargo run -p heapscape-monitoring`). A
//! test fails when the committed files differ from what the code generates. Every panel,
//! variable and annotation reads the Prometheus datasource picked in the dashboards'
//! `datasource` variable, never a fixed uid, so the same JSON is provisioned by the compose
//! stack and imports into any Grafana. The rest of the kit (the runbook, the promtool tests, the
//! statsd_exporter mapping, docker-compose) is written by hand and checked by the tests in
//! `tests/` against a real Prometheus scraping the real demo service.
//!
//! ```
//! use heapscape_monitoring::{Config, dashboards, generate};
//!
//! let config = Config::default();
//! let boards = dashboards(&config);
//! assert!(boards.iter().any(|d| d.uid == "heapscape-pool"));
//! assert!(boards[0].to_json_string().contains("${datasource}"));
//!
//! // A Prometheus shared by several clusters: every query keeps the cluster apart.
//! let multi = Config { cluster_label: Some("cluster"), ..Config::default() };
//! let files = generate(&multi);
//! let alerts = files.iter().find(|f| f.path.ends_with("heapscape-alerts.yml")).unwrap();
//! assert!(alerts.contents.contains("by (cluster, job, instance, pool)"));
//! ```

mod config;
mod dashboards;
mod panels;
mod rule_file;
mod rules;

pub use config::Config;
pub use dashboards::{Dashboard, dashboards};
pub use panels::DATASOURCE_VARIABLE;

/// The tag every heapscape dashboard carries (Grafana's dashboard links and search use it).
pub const TAG: &str = "heapscape";

/// The folder of the generated dashboards, relative to the workspace root.
pub const DASHBOARDS_DIR: &str = "grafana/dashboards";

/// The folder of the generated rule files, relative to the workspace root.
pub const RULES_DIR: &str = "prometheus/rules";

/// One generated file of the kit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    /// Path relative to the workspace root, e.g. `grafana/dashboards/heapscape-pool.json`.
    pub path: String,
    /// The file's text.
    pub contents: String,
}

/// Every generated file of the kit for `config`: the dashboards under [`DASHBOARDS_DIR`], the
/// recording rules and alerts under [`RULES_DIR`].
pub fn generate(config: &Config) -> Vec<GeneratedFile> {
    let boards = dashboards(config).into_iter().map(|d| GeneratedFile {
        path: format!("{DASHBOARDS_DIR}/{}", d.file_name),
        contents: d.to_json_string(),
    });
    let rule_files = rules::rule_files(config)
        .into_iter()
        .map(|(name, contents)| GeneratedFile {
            path: format!("{RULES_DIR}/{name}"),
            contents,
        });
    boards.chain(rule_files).collect()
}
