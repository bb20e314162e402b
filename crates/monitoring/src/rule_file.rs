//! Prometheus rule files as data, written out as YAML (`promtool check rules` reads the
//! result; `tests/config.rs` parses it back).
//!
//! Only the shape of a rule file: groups of recording rules and alerts. Scalars are written
//! plain when YAML reads them back as the same string, as a block when they span lines or are
//! long prose, and double-quoted (JSON escapes are valid YAML) otherwise.

use std::fmt::Write as _;

/// One rule file.
pub(crate) struct RuleFile {
    /// Comment lines at the top of the file (without `# `).
    pub(crate) header: Vec<String>,
    pub(crate) groups: Vec<Group>,
}

/// A rule group: rules evaluated together, in order.
pub(crate) struct Group {
    pub(crate) name: &'static str,
    pub(crate) rules: Vec<Rule>,
}

/// A recording rule or an alert.
pub(crate) enum Rule {
    Record {
        /// What the series means, written as a comment above the rule.
        comment: String,
        record: String,
        expr: String,
    },
    Alert(Alert),
}

/// An alerting rule.
pub(crate) struct Alert {
    pub(crate) name: &'static str,
    pub(crate) expr: String,
    /// `None`: fires on the first evaluation that matches.
    pub(crate) for_: Option<&'static str>,
    pub(crate) severity: &'static str,
    pub(crate) summary: String,
    pub(crate) description: String,
    pub(crate) runbook_url: String,
}

/// Lines of folded prose are wrapped at this column.
const WRAP: usize = 96;

impl RuleFile {
    /// The file's YAML text.
    pub(crate) fn to_yaml(&self) -> String {
        let mut out = String::new();
        for line in &self.header {
            comment(&mut out, 0, line);
        }
        out.push_str("groups:\n");
        for (i, group) in self.groups.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            let _ = writeln!(out, "  - name: {}", scalar(group.name, 10, 4));
            out.push_str("    rules:\n");
            for rule in &group.rules {
                match rule {
                    Rule::Record {
                        comment: meaning,
                        record,
                        expr: promql,
                    } => {
                        for line in wrap(meaning, WRAP - 8) {
                            comment(&mut out, 6, &line);
                        }
                        let _ = writeln!(out, "      - record: {}", scalar(record, 16, 8));
                        let _ = writeln!(out, "        expr: {}", expr(promql, 8));
                    }
                    Rule::Alert(alert) => {
                        let _ = writeln!(out, "      - alert: {}", scalar(alert.name, 15, 8));
                        let _ = writeln!(out, "        expr: {}", expr(&alert.expr, 8));
                        if let Some(duration) = alert.for_ {
                            let _ = writeln!(out, "        for: {}", scalar(duration, 13, 8));
                        }
                        out.push_str("        labels:\n");
                        let _ = writeln!(
                            out,
                            "          severity: {}",
                            scalar(alert.severity, 20, 10)
                        );
                        out.push_str("        annotations:\n");
                        for (key, value) in [
                            ("summary", &alert.summary),
                            ("description", &alert.description),
                        ] {
                            let _ = writeln!(
                                out,
                                "          {key}: {}",
                                scalar(value, 12 + key.len(), 10)
                            );
                        }
                        let _ = writeln!(
                            out,
                            "          runbook_url: {}",
                            expr(&alert.runbook_url, 10)
                        );
                    }
                }
            }
        }
        out
    }
}

fn comment(out: &mut String, indent: usize, text: &str) {
    let _ = writeln!(out, "{:indent$}# {text}", "");
}

/// `value` as a YAML scalar after a key whose line already holds `column` characters; block
/// scalars are indented by `indent` + 2. Only prose is folded: an expression stays on the
/// lines it was written on.
fn scalar(value: &str, column: usize, indent: usize) -> String {
    text(value, column, indent, true)
}

/// A PromQL expression or a URL: plain or a literal block, never folded.
fn expr(value: &str, indent: usize) -> String {
    text(value, 0, indent, false)
}

fn text(value: &str, column: usize, indent: usize, prose: bool) -> String {
    let pad = " ".repeat(indent + 2);
    if value.contains('\n') {
        let mut block = String::from("|-");
        for line in value.lines() {
            block.push('\n');
            if !line.is_empty() {
                block.push_str(&pad);
                block.push_str(line);
            }
        }
        return block;
    }
    let plain = is_plain_safe(value);
    if plain && (!prose || column + value.len() <= WRAP) {
        return value.to_owned();
    }
    if prose && is_foldable(value) {
        // Folded: YAML joins the lines with single spaces.
        let mut block = String::from(">-");
        for line in wrap(value, WRAP - indent - 2) {
            block.push('\n');
            block.push_str(&pad);
            block.push_str(&line);
        }
        return block;
    }
    serde_json::to_string(value).unwrap_or_default()
}

/// Whether a folded block scalar reads back as `value`: one line, words separated by single
/// spaces.
fn is_foldable(value: &str) -> bool {
    !value.is_empty()
        && !value.contains("  ")
        && !value.starts_with(' ')
        && !value.ends_with(' ')
        && !value.contains(|c: char| c.is_control())
}

/// Whether YAML reads `value` back, unquoted in block context, as this same string.
fn is_plain_safe(value: &str) -> bool {
    let Some(first) = value.chars().next() else {
        return false;
    };
    let special_word = ["true", "false", "null", "yes", "no", "on", "off", "~"]
        .iter()
        .any(|word| value.eq_ignore_ascii_case(word));
    (first.is_ascii_alphanumeric() || first == '(')
        && !value.contains(": ")
        && !value.contains(" #")
        && !value.ends_with([' ', ':'])
        && !value.contains(['\t', '\r'])
        && value.parse::<f64>().is_err()
        && !special_word
}

/// Splits prose at spaces into lines of at most `width` characters (a longer word stays
/// whole on its own line).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a scalar written after `key: ` back with a YAML parser.
    fn read_back(value: &str) -> String {
        let yaml = format!("key: {}\n", scalar(value, 5, 0));
        let parsed: serde_json::Value =
            serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
        parsed["key"]
            .as_str()
            .unwrap_or_else(|| panic!("{yaml} is not a string: {parsed}"))
            .to_owned()
    }

    #[test]
    fn every_kind_of_scalar_reads_back_as_written() {
        for value in [
            "job:heapscape_pool_hits:rate5m",
            r#"sum by (job, pool) (rate(heapscape_pool_discards_total{reason=~"over_max|idle_bytes_cap"}[5m]))"#,
            "5m",
            "0.25",
            "true",
            "{{ $labels.instance }} is down",
            "Pool {{ $labels.pool }}: more than {{ $value | humanizePercentage }} discarded",
            "a: b # c",
            "line one\n  indented two\n\nafter a blank line",
            &"A long description that must be folded over several lines because it is far \
              longer than the wrap column of the rule files, and still reads back as one line."
                .repeat(2),
            "https://github.com/heapscape/heapscape/blob/main/prometheus/RUNBOOK.md#heapscapetargetdown",
        ] {
            assert_eq!(read_back(value), value);
        }
    }

    #[test]
    fn prose_wraps_at_spaces() {
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
        assert_eq!(wrap("averylongword b", 4), ["averylongword", "b"]);
    }
}
