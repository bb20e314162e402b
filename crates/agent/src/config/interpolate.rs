//! Environment interpolation: `${NAME}` and `${NAME:-default}` in the config's string values,
//! resolved from the process environment each time the file is read, so on every reload too.
//!
//! Only string values are interpolated (`service`, label and tag values, `exporter.prometheus`
//! `listen` and `allow`, `exporter.statsd.host`), never keys: a label's name is part of the
//! metric's identity, and a number, size or duration written as `${...}` would not parse as one.
//! The syntax is the shell's and docker compose's subset that replicas sharing one file need:
//!
//! - `${NAME}`: the variable's value; unset is an error that points at the reference;
//! - `${NAME:-default}`: the default when the variable is unset or empty (the default is
//!   literal text up to the first `}`);
//! - `$${`: a literal `${`. Any other `$` is literal.
//!
//! `NAME` is letters, digits and `_`, not starting with a digit.
//!
//! A value never grows past [`MAX_VALUE_BYTES`] while it is filled in: a short value naming a
//! large variable many times is refused at the reference that takes it over the limit.

use std::collections::BTreeMap;
use std::env::{self, VarError};

use serde_saphyr::{Location, Spanned};

use super::error::ConfigError;
use super::limits::MAX_VALUE_BYTES;
use super::raw::RawConfig;

/// Interpolates every string value of `raw`, read from `text` of `file`.
///
/// # Errors
///
/// A [`ConfigError`] at the first reference that cannot be resolved: an unset variable without
/// a default, a value that is not UTF-8, a `${` that is not a well-formed reference, or one
/// that makes the value longer than [`MAX_VALUE_BYTES`].
pub(super) fn interpolate_config(
    raw: &mut RawConfig,
    text: &str,
    file: &str,
) -> Result<(), ConfigError> {
    let source = Source { text, file };
    if let Some(service) = &mut raw.service {
        source.spanned(service, "service")?;
    }
    if let Some(labels) = &mut raw.labels {
        source.map_values(labels, "labels")?;
    }
    let Some(exporter) = &mut raw.exporter else {
        return Ok(());
    };
    if let Some(Some(prometheus)) = exporter.value.prometheus.as_mut().map(|p| p.value.as_mut()) {
        if let Some(listen) = &mut prometheus.listen {
            source.spanned(listen, "exporter.prometheus.listen")?;
        }
        for network in prometheus.allow.iter_mut().flatten() {
            source.spanned(network, "exporter.prometheus.allow")?;
        }
    }
    if let Some(Some(statsd)) = exporter.value.statsd.as_mut().map(|s| s.value.as_mut()) {
        if let Some(host) = &mut statsd.host {
            source.spanned(host, "exporter.statsd.host")?;
        }
        if let Some(tags) = &mut statsd.tags {
            source.map_values(tags, "exporter.statsd.tags")?;
        }
    }
    Ok(())
}

/// The file being interpolated, for placing errors.
struct Source<'a> {
    text: &'a str,
    file: &'a str,
}

impl Source<'_> {
    fn spanned(&self, value: &mut Spanned<String>, key: &str) -> Result<(), ConfigError> {
        value.value = self.value(&value.value, value.defined, key)?;
        Ok(())
    }

    fn map_values(
        &self,
        map: &mut Spanned<BTreeMap<String, String>>,
        key: &str,
    ) -> Result<(), ConfigError> {
        for (name, value) in &mut map.value {
            *value = self.value(value, map.defined, &format!("{key}.{name}"))?;
        }
        Ok(())
    }

    /// `value` interpolated from the environment; an error is placed at the reference's `$`,
    /// found in the text from `start` (the value's, or for a map its first entry's, position).
    fn value(&self, value: &str, start: Location, key: &str) -> Result<String, ConfigError> {
        let lookup = |name: &str| match env::var(name) {
            Ok(value) => Ok(Some(value)),
            Err(VarError::NotPresent) => Ok(None),
            Err(VarError::NotUnicode(_)) => Err(()),
        };
        expand(value, lookup, MAX_VALUE_BYTES).map_err(|problem| {
            let (line, column) = self.position(start, &problem.written);
            ConfigError::at_position(self.file, line, column, key, problem.message)
        })
    }

    /// The line and column of the first `written` at or after `start` that is not escaped as
    /// `$${`; `start` itself if the value's text does not hold it as written (a double-quoted
    /// string with escapes).
    fn position(&self, start: Location, written: &str) -> (usize, usize) {
        let start_line = usize::try_from(start.line()).unwrap_or(1).max(1);
        let start_column = usize::try_from(start.column()).unwrap_or(1).max(1);
        let Some(from) = byte_offset(self.text, start_line, start_column) else {
            return (start_line, start_column);
        };
        let found = self.text[from..]
            .match_indices(written)
            .map(|(index, _)| from + index)
            .find(|&at| !self.text[..at].ends_with('$'));
        match found {
            Some(at) => line_and_column(self.text, at),
            None => (start_line, start_column),
        }
    }
}

/// The byte offset of 1-based `line` and `column` (in characters) in `text`.
fn byte_offset(text: &str, line: usize, column: usize) -> Option<usize> {
    let line_start = if line == 1 {
        0
    } else {
        text.match_indices('\n').nth(line - 2)?.0 + 1
    };
    let in_line = text[line_start..]
        .char_indices()
        .nth(column - 1)
        .map_or(text.len() - line_start, |(index, _)| index);
    Some(line_start + in_line)
}

/// The 1-based line and column (in characters) of byte offset `at` in `text`.
fn line_and_column(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at];
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let line = before.matches('\n').count() + 1;
    (line, before[line_start..].chars().count() + 1)
}

/// A reference that cannot be resolved.
#[derive(Debug, PartialEq, Eq)]
struct Problem {
    /// The reference as written, as far as needed to find it in the file.
    written: String,
    /// What is wrong and what to do.
    message: String,
}

/// `value` with every reference replaced through `lookup`, which gives a variable's value,
/// `None` when it is unset, or `Err` when it is not UTF-8; refused at the reference that would
/// make it longer than `limit` bytes (a value without references is left to validation).
fn expand(
    value: &str,
    lookup: impl Fn(&str) -> Result<Option<String>, ()>,
    limit: usize,
) -> Result<String, Problem> {
    let mut out = String::with_capacity(value.len().min(limit));
    let mut rest = value;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar..];
        if let Some(escaped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = escaped;
            continue;
        }
        let Some(reference) = after.strip_prefix("${") else {
            out.push('$');
            rest = &after[1..];
            continue;
        };
        let Some(end) = reference.find('}') else {
            return Err(malformed(after));
        };
        let (name, default) = match reference[..end].split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (&reference[..end], None),
        };
        if !is_name(name) {
            return Err(malformed(&after[..end + 3]));
        }
        let found = lookup(name).map_err(|()| Problem {
            written: format!("${{{name}"),
            message: format!(
                "environment variable `{name}` is not valid UTF-8: set it to UTF-8 text"
            ),
        })?;
        let filled = match (found, default) {
            (Some(found), Some(default)) if found.is_empty() => default.to_owned(),
            (Some(found), _) => found,
            (None, Some(default)) => default.to_owned(),
            (None, None) => {
                return Err(Problem {
                    written: format!("${{{name}}}"),
                    message: format!(
                        "environment variable `{name}` is not set and `${{{name}}}` has no \
                         default: set it in the service's environment, or give a default with \
                         `${{{name}:-default}}`"
                    ),
                });
            }
        };
        if out.len() + filled.len() > limit {
            return Err(Problem {
                written: after[..end + 3].to_owned(),
                message: format!(
                    "with `{name}` filled in ({} bytes) the value would be {} bytes, over the \
                     limit of {limit} bytes: set the variable to a shorter value",
                    filled.len(),
                    out.len() + filled.len()
                ),
            });
        }
        out.push_str(&filled);
        rest = &reference[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn malformed(written: &str) -> Problem {
    Problem {
        written: written.to_owned(),
        message: format!(
            "`{written}` is not an environment variable reference: write `${{NAME}}` or \
             `${{NAME:-default}}` (NAME: letters, digits and `_`, not starting with a digit), \
             or `$${{` for a literal `${{`"
        ),
    }
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &[(&str, &str)]) -> impl Fn(&str) -> Result<Option<String>, ()> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        move |name| {
            Ok(vars
                .iter()
                .find(|(known, _)| known == name)
                .map(|(_, value)| value.clone()))
        }
    }

    #[test]
    fn references_defaults_and_escapes() {
        let env = with(&[("POD", "tts-7"), ("EMPTY", "")]);
        for (value, expected) in [
            ("plain", "plain"),
            ("${POD}", "tts-7"),
            ("a-${POD}-b-${POD}", "a-tts-7-b-tts-7"),
            ("${MISSING:-fallback}", "fallback"),
            ("${POD:-fallback}", "tts-7"),
            ("${EMPTY:-fallback}", "fallback"),
            ("${EMPTY}", ""),
            ("${MISSING:-}", ""),
            ("${MISSING:-a:-b}", "a:-b"),
            ("$${POD}", "${POD}"),
            ("cost: $5, $$5 and $", "cost: $5, $$5 and $"),
        ] {
            assert_eq!(
                expand(value, &env, MAX_VALUE_BYTES).as_deref(),
                Ok(expected),
                "{value}"
            );
        }
    }

    #[test]
    fn unresolvable_references_say_what_to_do() {
        let env = with(&[]);
        let unset = expand("x-${NOPE}", &env, MAX_VALUE_BYTES).unwrap_err();
        assert_eq!(unset.written, "${NOPE}");
        assert!(unset.message.contains("`NOPE` is not set"), "{unset:?}");
        assert!(unset.message.contains("${NOPE:-default}"), "{unset:?}");
        for (value, written) in [
            ("${}", "${}"),
            ("${1X}", "${1X}"),
            ("${A B}", "${A B}"),
            ("open ${POD", "${POD"),
        ] {
            let problem = expand(value, &env, MAX_VALUE_BYTES).unwrap_err();
            assert_eq!(problem.written, written, "{value}");
            assert!(problem.message.contains("$${"), "{problem:?}");
        }
        let not_utf8 = expand("${BYTES}", |_| Err(()), MAX_VALUE_BYTES).unwrap_err();
        assert!(not_utf8.message.contains("not valid UTF-8"), "{not_utf8:?}");
    }

    #[test]
    fn a_value_never_grows_past_the_limit() {
        let big = "x".repeat(100);
        let vars = [("BIG", big.as_str())];
        let env = with(&vars);
        assert_eq!(expand("${BIG}${BIG}", &env, 200).map(|v| v.len()), Ok(200));
        // Many references to a large variable stop at the one that crosses the limit.
        let problem = expand("a-${BIG}${BIG}${BIG}${BIG}", &env, 200).unwrap_err();
        assert_eq!(problem.written, "${BIG}");
        assert!(
            problem
                .message
                .contains("would be 202 bytes, over the limit of 200 bytes"),
            "{problem:?}"
        );
        let problem = expand("${NONE:-0123456789}", &env, 8).unwrap_err();
        assert_eq!(problem.written, "${NONE:-0123456789}");
    }

    #[test]
    fn positions_count_characters_from_one() {
        let text = "a: 1\nservice: \"é ${X}\"\n";
        let at = text.find("${X}").unwrap();
        assert_eq!(line_and_column(text, at), (2, 13));
        assert_eq!(byte_offset(text, 2, 13), Some(at));
        assert_eq!(byte_offset(text, 1, 1), Some(0));
        assert_eq!(byte_offset(text, 9, 1), None);
    }
}
