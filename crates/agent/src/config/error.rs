//! [`ConfigError`]: where a configuration problem is and what to change.

use std::fmt;

use serde_saphyr::{Location, MessageFormatter};

/// A configuration problem: where it is (file, line, column, key) and what to change.
///
/// Displayed as `file:line:column: key: problem: what to do`, the form editors and terminals
/// turn into links.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    file: String,
    line: Option<usize>,
    column: Option<usize>,
    key: Option<String>,
    message: String,
}

impl ConfigError {
    pub(super) fn new(
        file: &str,
        at: Option<Location>,
        key: Option<String>,
        message: String,
    ) -> Self {
        // `Location::UNKNOWN` has line 0: the parser could not place the problem.
        let known = at.filter(|at| at.line() > 0);
        Self {
            file: file.to_owned(),
            line: known.map(|at| at.line() as usize),
            column: known.map(|at| at.column() as usize),
            key,
            message,
        }
    }

    /// A problem at a position found in the text rather than given by the parser.
    pub(super) fn at_position(
        file: &str,
        line: usize,
        column: usize,
        key: &str,
        message: String,
    ) -> Self {
        Self {
            file: file.to_owned(),
            line: Some(line),
            column: Some(column),
            key: Some(key.to_owned()),
            message,
        }
    }

    /// A file without an `exporter:` key, read by an agent that is to install the exporter.
    pub(crate) fn missing_exporter(file: &str) -> Self {
        Self::at_start(
            file,
            "exporter",
            "no exporter is configured: add `exporter: { prometheus: {} }` or \
             `exporter: { statsd: { host: 127.0.0.1, port: 8125 } }`, or call \
             `.service_recorder()` on the agent builder to publish through the service's own \
             recorder",
        )
    }

    pub(super) fn at_start(file: &str, key: &str, message: &str) -> Self {
        Self {
            file: file.to_owned(),
            line: Some(1),
            column: Some(1),
            key: Some(key.to_owned()),
            message: message.to_owned(),
        }
    }

    pub(super) fn from_yaml(file: &str, error: &serde_saphyr::Error) -> Self {
        let error = error.without_snippet();
        let problem = serde_saphyr::UserMessageFormatter.format_message(error);
        let message = match error {
            serde_saphyr::Error::Eof { .. } => format!(
                "{problem}: the file is empty or cut short; write at least one section, e.g. \
                 `exporter: {{ prometheus: {{}} }}`"
            ),
            _ => with_fix(&problem),
        };
        Self::new(file, error.location(), None, message)
    }

    /// The file (or source name) the problem is in.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The 1-based line of the problem, when it is in the file's text.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The 1-based column of the problem, when it is in the file's text.
    pub fn column(&self) -> Option<usize> {
        self.column
    }

    /// The dotted key path of the offending value (`pools.pcm.max_buffer_size`), when known.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// What is wrong and what to change, without the location.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Rewords the parser's terse type messages and adds what to do to a message that only says
/// what is wrong.
fn with_fix(problem: &str) -> String {
    let problem = match problem {
        "invalid u16" => "expected a whole number from 0 to 65535",
        "invalid u32" | "invalid u64" | "invalid usize" => "expected a whole number",
        "invalid f64" | "invalid f32" => "expected a number",
        "expected mapping start" => "expected a mapping (`key: value` lines or `{ key: value }`)",
        other => other,
    };
    let fix = if problem.starts_with("unknown field") {
        "remove the key or correct its spelling"
    } else if problem.starts_with("unknown variant") {
        "use one of the listed values"
    } else if problem.starts_with("duplicate") {
        "keep only one of the two keys"
    } else if problem.contains(": write ") || problem.contains("; write ") {
        // Our size and duration parsers already say what to write.
        return problem.to_owned();
    } else if problem.starts_with("invalid") || problem.starts_with("expected") {
        "give this key a value of the type the config reference (crates/agent/README.md) lists"
    } else {
        "fix the YAML at this position"
    };
    format!("{problem}: {fix}")
}
