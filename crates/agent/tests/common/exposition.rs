//! Checks of a Prometheus text exposition: `promtool check metrics`, and no series, `# HELP`
//! or `# TYPE` line written twice (what a service's exposition with heapscape's appended
//! must keep).

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `promtool check metrics` on an exposition; returns its combined output on failure.
pub fn promtool_check(exposition: &str) -> Result<(), String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot run promtool (Debian package `prometheus`): {error}"))?;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition.as_bytes())
        .map_err(|error| error.to_string())?;
    let output = child
        .wait_with_output()
        .map_err(|error| error.to_string())?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// The lines that occur more than once: a series (name and labels), a `# HELP name` or a
/// `# TYPE name`, with how often.
pub fn repeated_lines(exposition: &str) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::<String, usize>::new();
    for line in exposition.lines().filter(|line| !line.trim().is_empty()) {
        let key = if let Some(comment) = line.strip_prefix("# ") {
            // `# HELP name text` / `# TYPE name kind`: one per metric name.
            comment.splitn(3, ' ').take(2).collect::<Vec<_>>().join(" ")
        } else {
            // `name{labels} value`: one per series.
            line.rsplit_once(' ')
                .map_or(line, |(series, _)| series)
                .to_owned()
        };
        *seen.entry(key).or_default() += 1;
    }
    seen.retain(|_, count| *count > 1);
    seen
}

#[test]
fn repeated_lines_finds_series_help_and_type_written_twice() {
    let clean =
        "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 1\na_total{x=\"2\"} 2\n\n";
    assert!(repeated_lines(clean).is_empty());
    let doubled =
        format!("{clean}# HELP a_total A.\n# TYPE a_total counter\na_total{{x=\"1\"}} 3\n");
    assert_eq!(
        repeated_lines(&doubled),
        BTreeMap::from([
            ("HELP a_total".to_owned(), 2),
            ("TYPE a_total".to_owned(), 2),
            ("a_total{x=\"1\"}".to_owned(), 2),
        ])
    );
}
