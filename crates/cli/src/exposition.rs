//! A reader for the Prometheus text exposition format (what `/metrics` serves).
//!
//! Enough of the format for scraping our own services: comments and `# HELP`/`# TYPE` lines are
//! skipped; a sample is `name{label="value",...} value [timestamp]` with escaped label values
//! (`\\`, `\"`, `\n`) and the special values `NaN`, `+Inf`, `-Inf`.

use std::collections::BTreeMap;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name (with `_bucket`, `_sum`, `_count` suffixes as written).
    pub name: String,
    /// The labels, in the order written.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A line that is not a valid sample.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: &'static str,
}

/// Parses a whole exposition.
///
/// # Errors
///
/// The first line that is neither blank, a comment nor a valid sample.
///
/// ```
/// let text = "# TYPE up gauge\nup{job=\"a\",path=\"C:\\\\x\"} 1\nrate 0.5 1700000000\n";
/// let samples = heapscape_cli::exposition::parse(text).unwrap();
/// assert_eq!(samples[0].label("path"), Some("C:\\x"));
/// assert_eq!((samples[1].name.as_str(), samples[1].value), ("rate", 0.5));
/// ```
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let line = line.trim();
            !line.is_empty() && !line.starts_with('#')
        })
        .map(|(index, line)| {
            parse_line(line.trim()).map_err(|reason| ParseError {
                line: index + 1,
                reason,
            })
        })
        .collect()
}

/// Sums samples by series key, dropping the labels in `ignore`: the key is the name, then the
/// remaining labels as `{k="v",...}` sorted by label name.
pub fn by_series(samples: &[Sample], ignore: &[&str]) -> BTreeMap<String, f64> {
    let mut series = BTreeMap::new();
    for sample in samples {
        let mut labels: Vec<_> = sample
            .labels
            .iter()
            .filter(|(key, _)| !ignore.contains(&key.as_str()))
            .collect();
        labels.sort();
        let mut key = sample.name.clone();
        if !labels.is_empty() {
            let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            key = format!("{key}{{{}}}", inner.join(","));
        }
        *series.entry(key).or_insert(0.0) += sample.value;
    }
    series
}

fn parse_line(line: &str) -> Result<Sample, &'static str> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("no metric name");
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = parse_labels(after_brace, &mut labels)?;
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or("no value")?;
    let value = match value {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        other => other.parse().map_err(|_| "value is not a number")?,
    };
    if let Some(timestamp) = fields.next() {
        timestamp
            .parse::<i64>()
            .map_err(|_| "timestamp is not an integer")?;
    }
    if fields.next().is_some() {
        return Err("unexpected text after the value");
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Parses `k="v",...}` and returns what follows the closing brace.
fn parse_labels<'a>(
    mut rest: &'a str,
    labels: &mut Vec<(String, String)>,
) -> Result<&'a str, &'static str> {
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let eq = rest.find('=').ok_or("label without '='")?;
        let key = rest[..eq].trim();
        if key.is_empty() {
            return Err("empty label name");
        }
        rest = rest[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or("label value is not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((at, '"')) => break at,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, escaped)) => value.push(escaped),
                    None => return Err("unterminated label value"),
                },
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value"),
            }
        };
        labels.push((key.to_owned(), value));
        rest = rest[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_exporter_writes() {
        let text = "# HELP heapscape_pool_hits_total Hits.\n\
                    # TYPE heapscape_pool_hits_total counter\n\
                    heapscape_pool_hits_total{pooling=\"on\",pool=\"pcm\"} 38\n\
                    heapscape_x_bucket{le=\"+Inf\"} 4\n\
                    heapscape_ratio NaN\n\
                    heapscape_y{a=\"q\\\"uote\",b=\"new\\nline\",} -Inf 123\n\n";
        let samples = parse(text).unwrap();
        assert_eq!(samples.len(), 4);
        assert_eq!(samples[0].label("pool"), Some("pcm"));
        assert_eq!(samples[0].value, 38.0);
        assert_eq!(samples[1].label("le"), Some("+Inf"));
        assert!(samples[2].value.is_nan());
        assert_eq!(samples[3].label("a"), Some("q\"uote"));
        assert_eq!(samples[3].label("b"), Some("new\nline"));
        assert_eq!(samples[3].value, f64::NEG_INFINITY);

        let series = by_series(&samples, &["pooling"]);
        assert_eq!(series["heapscape_pool_hits_total{pool=\"pcm\"}"], 38.0);
    }

    #[test]
    fn rejects_broken_lines_with_their_number() {
        for (text, reason) in [
            ("ok 1\n{a=\"b\"} 1", "no metric name"),
            ("ok 1\nm{a=\"b\" 1", "label without '='"),
            ("ok 1\nm{a=b} 1", "label value is not quoted"),
            ("ok 1\nm{a=\"b} 1", "unterminated label value"),
            ("ok 1\nm one", "value is not a number"),
            ("ok 1\nm", "no value"),
            ("ok 1\nm 1 2 3", "unexpected text after the value"),
        ] {
            assert_eq!(parse(text), Err(ParseError { line: 2, reason }), "{text:?}");
        }
    }
}
