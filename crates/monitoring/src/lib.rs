//! The Grafana dashboards of the heapscape monitoring kit, written once as code.
//!
//! The JSON files under `grafana/dashboards/` are generated from [`dashboards`] by
//! `cargo run -p heapscape-monitoring --bin heapscape-dashboards`, so every panel shares one
//! datasource reference, one set of variables and one layout rule; a test fails when the
//! committed files differ from what the code generates. The rest of the kit (Prometheus rules,
//! the statsd_exporter mapping, docker-compose) is plain configuration, checked by the tests in
//! `tests/` against a real Prometheus scraping the real demo service.
//!
//! ```
//! let dashboards = heapscape_monitoring::dashboards();
//! assert!(dashboards.iter().any(|d| d.uid == "heapscape-pool"));
//! let json = dashboards[0].to_json_string();
//! assert!(json.contains(heapscape_monitoring::DATASOURCE_UID));
//! ```

mod dashboards;
mod panels;

pub use dashboards::{Dashboard, dashboards};

/// The uid of the provisioned Prometheus datasource that every panel queries
/// (`grafana/provisioning/datasources/prometheus.yml`).
pub const DATASOURCE_UID: &str = "heapscape-prometheus";

/// The tag every heapscape dashboard carries (Grafana's dashboard links and search use it).
pub const TAG: &str = "heapscape";
