//! Writes the generated dashboards to `grafana/dashboards/` (or the folder given as the only
//! argument). Run after changing `crates/monitoring/src/dashboards.rs`:
//! `cargo run -p heapscape-monitoring --bin heapscape-dashboards`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let folder = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../grafana/dashboards"),
        PathBuf::from,
    );
    if let Err(error) = std::fs::create_dir_all(&folder) {
        eprintln!(
            "heapscape-dashboards: cannot create {}: {error}",
            folder.display()
        );
        return ExitCode::FAILURE;
    }
    for dashboard in heapscape_monitoring::dashboards() {
        let path = folder.join(dashboard.file_name);
        if let Err(error) = std::fs::write(&path, dashboard.to_json_string()) {
            eprintln!(
                "heapscape-dashboards: cannot write {}: {error}",
                path.display()
            );
            return ExitCode::FAILURE;
        }
        println!("{}", path.display());
    }
    ExitCode::SUCCESS
}
