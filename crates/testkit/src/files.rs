//! Config files in temporary directories, replaced the way editors and config managers do.

use std::path::{Path, PathBuf};

/// Replaces the file at `path` atomically: writes `text` to `<path>.tmp`, then renames it over
/// `path`. A directory standing in the file's place (how a test makes a file unreadable even
/// for root) is removed first, so the file comes back.
pub fn write_atomically(path: &Path, text: &str) {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", temporary.display()));
    if path.is_dir() {
        std::fs::remove_dir(path)
            .unwrap_or_else(|e| panic!("cannot remove the directory {}: {e}", path.display()));
    }
    std::fs::rename(&temporary, path)
        .unwrap_or_else(|e| panic!("cannot rename onto {}: {e}", path.display()));
}

/// A file in a fresh temporary directory (removed on drop), e.g. a `heapscape.yaml` to start
/// an agent from and then change under it.
#[derive(Debug)]
pub struct ConfigFile {
    path: PathBuf,
    dir: tempfile::TempDir,
}

impl ConfigFile {
    /// Creates `<temporary directory>/<name>` holding `text`.
    pub fn new(name: &str, text: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join(name);
        write_atomically(&path, text);
        Self { path, dir }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary directory holding the file, for other files of the test.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Replaces the file's content atomically (see [`write_atomically`]).
    pub fn write(&self, text: &str) {
        write_atomically(&self.path, text);
    }
}
