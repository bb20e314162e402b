//! Where each mode's heap is (feature `profiling`): the `serve` child's flame graph of in-use
//! memory, from its `/debug/pprof/heap?format=svg` after its load, saved beside the report.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::scrape;

/// A dump symbolizes the child's binary first; on a busy machine that takes a while.
const DUMP_TIMEOUT: Duration = Duration::from_secs(90);

/// Saves the flame graph of `mode`'s service at `metrics` as `<report>-heap-<mode>.svg`.
///
/// # Errors
///
/// The reason, when the dump fails, answers other than 2xx, times out or cannot be written.
pub(super) async fn save(
    metrics: SocketAddr,
    mode: &str,
    report: &Path,
) -> Result<PathBuf, String> {
    let (status, svg) = scrape::get(
        metrics,
        "/debug/pprof/heap?format=svg",
        "heap profile",
        DUMP_TIMEOUT,
    )
    .await?;
    if !status.is_success() {
        return Err(format!(
            "heap profile answered {status}: {}",
            String::from_utf8_lossy(&svg).trim()
        ));
    }
    let stem = report
        .file_stem()
        .map_or_else(|| "heapscape-compare".into(), |s| s.to_string_lossy());
    let path = report.with_file_name(format!("{stem}-heap-{mode}.svg"));
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(&path, &svg).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}
