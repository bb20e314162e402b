//! Writes the kit's generated files (dashboards and rule files, see
//! `heapscape_monitoring::generate`) under the workspace root, or under the folder given as the
//! only argument. Run after changing `crates/monitoring/src`:
//! `cargo run -p heapscape-monitoring`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let root = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."),
        PathBuf::from,
    );
    for file in heapscape_monitoring::generate(&heapscape_monitoring::Config::default()) {
        let path = root.join(&file.path);
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, &file.contents));
        if let Err(error) = written {
            eprintln!(
                "heapscape-monitoring: cannot write {}: {error}",
                path.display()
            );
            return ExitCode::FAILURE;
        }
        println!("{}", file.path);
    }
    ExitCode::SUCCESS
}
