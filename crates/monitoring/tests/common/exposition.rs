//! Prometheus text expositions of a histogram, with the bucket bounds spelled as a given
//! exporter spells them.
//!
//! Classic histograms' `le` values are label strings: Prometheus 2.x keeps them as written, so
//! two exporters that spell one bound differently make two series. The Go client (and so
//! statsd_exporter, which serves its histograms through it) writes a bound with
//! `strconv.FormatFloat(f, 'g', -1, 64)`: the shortest digits that read back as the same
//! float, in exponent form when the decimal exponent is below -4 or at least 6 (Go's "shortest
//! %g" rule uses precision 6 for that choice), with a sign and at least two exponent digits.
//! So 524288 is `524288`, 1048576 is `1.048576e+06`, 0.0001 is `0.0001`, 0.00001 is `1e-05`;
//! 1 is `1` and infinity `+Inf`.

use heapscape::metrics::go_float;

use super::yaml_file;

/// The bucket bounds statsd_exporter/mapping.yml gives the histogram `metric`.
pub fn mapping_bounds(metric: &str) -> Vec<f64> {
    let mapping = yaml_file("statsd_exporter/mapping.yml");
    let entry = mapping["mappings"]
        .as_array()
        .expect("mappings")
        .iter()
        .find(|m| m["name"] == metric)
        .unwrap_or_else(|| panic!("statsd_exporter/mapping.yml maps no {metric}"));
    entry["histogram_options"]["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|b| b.as_f64().expect("a numeric bound"))
        .collect()
}

/// What statsd_exporter serves for a histogram the StatsD path sends: the mapping's bounds in
/// the Go client's spelling.
pub fn statsd_path_histogram(metric: &str, labels: &str, observations: &[f64]) -> String {
    histogram(
        metric,
        labels,
        &mapping_bounds(metric),
        observations,
        go_float,
    )
}

/// `value` as Rust's `Display` writes it: how the agent's Prometheus path
/// (metrics-exporter-prometheus) spelled bucket bounds, `1048576` and `0.00001`.
pub fn rust_float(value: f64) -> String {
    if value.is_infinite() && value > 0.0 {
        "+Inf".to_owned()
    } else {
        format!("{value}")
    }
}

/// The text exposition of one histogram: its cumulative `_bucket` series for `bounds` (and
/// `+Inf`), `_sum` and `_count`, after `observations`; `labels` as `key="value"` pairs; each
/// bound written by `spell`.
pub fn histogram(
    name: &str,
    labels: &str,
    bounds: &[f64],
    observations: &[f64],
    spell: fn(f64) -> String,
) -> String {
    let mut text = format!("# TYPE {name} histogram\n");
    let separator = if labels.is_empty() { "" } else { "," };
    for &bound in bounds.iter().chain(&[f64::INFINITY]) {
        let count = observations.iter().filter(|&&v| v <= bound).count();
        text.push_str(&format!(
            "{name}_bucket{{{labels}{separator}le=\"{}\"}} {count}\n",
            spell(bound)
        ));
    }
    let sum: f64 = observations.iter().sum();
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    text.push_str(&format!("{name}_sum{braces} {sum}\n"));
    text.push_str(&format!("{name}_count{braces} {}\n", observations.len()));
    text
}
