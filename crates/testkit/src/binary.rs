//! Binaries of other packages of the workspace, for tests that run them as users do.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use crate::workspace_root;

/// The binary `package` builds (its binary has the package's name), built once per test
/// process.
///
/// `env!("CARGO_BIN_EXE_...")` exists only for a package's own binaries, and Cargo does not
/// build binaries of dependencies. The workspace's test build does build them, for the
/// integration tests of their own packages: this runs that build, `cargo test --workspace
/// --no-run`, into the target directory and profile this test was built with (derived from the
/// test executable's path: `<target>/<profile>/deps/<test>`), and takes the binary from it.
/// Within a run of the workspace's tests the build is up to date and only checked; a binary
/// built on its own (`cargo build -p <package>`) would have other features than the test build
/// (its package's alone, without the dev-dependencies that unify them), so it was compiled
/// again, with its dependents, while the tests waited. Cargo releases its build lock before
/// running tests, so the inner build does not wait on the outer one. The environment variable
/// `override_var`, when set, names the binary to use instead (no build).
pub fn workspace_binary(package: &str, override_var: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<Vec<(String, PathBuf)>>> = OnceLock::new();
    let built = BUILT.get_or_init(Mutex::default);
    let mut built = built
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, path)) = built.iter().find(|(name, _)| name == package) {
        return path.clone();
    }
    let path = match std::env::var_os(override_var) {
        Some(path) => PathBuf::from(path),
        None => build(package),
    };
    built.push((package.to_owned(), path.clone()));
    path
}

fn build(package: &str) -> PathBuf {
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
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(&cargo);
    command
        .args(["test", "--workspace", "--no-run"])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(workspace_root());
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
        .unwrap_or_else(|e| panic!("cannot run {cargo} to build {package}: {e}"));
    assert!(
        output.status.success(),
        "cargo test --workspace --no-run (for {package}'s binary) failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let binary = profile_dir.join(package);
    assert!(binary.is_file(), "{} was not built", binary.display());
    binary
}
