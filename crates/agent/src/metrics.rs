//! Every heapscape metric, for tools that iterate them: the catalogs of the pool, the
//! heartbeat and the agent, in one place.
//!
//! Dashboards, alert rules, a StatsD mapping or a scraper can check the names they use
//! against [`CATALOGS`] instead of typing them again.
//!
//! ```
//! use heapscape::metrics::{CATALOGS, MetricKind};
//!
//! let histograms: Vec<&str> = CATALOGS
//!     .iter()
//!     .flat_map(|catalog| catalog.iter())
//!     .filter(|def| def.kind == MetricKind::Histogram)
//!     .map(|def| def.name)
//!     .collect();
//! assert!(histograms.contains(&"heapscape_pool_returned_length_bytes"));
//! ```

pub use heapscape_pool::catalog::{MetricDef, MetricKind};

pub use crate::reload_metrics::CATALOG;

/// The catalogs of every heapscape library crate: the pool's
/// ([`heapscape_pool::metrics::CATALOG`]), the heartbeat's
/// ([`heapscape_heartbeat::metrics::CATALOG`]) and the agent's own ([`CATALOG`]).
pub const CATALOGS: &[&[MetricDef]] = &[
    heapscape_pool::metrics::CATALOG,
    heapscape_heartbeat::metrics::CATALOG,
    CATALOG,
];

/// Every heapscape histogram with its bucket upper bounds: the pool's size histograms
/// ([`heapscape_pool::metrics::HISTOGRAM_METRICS`]: returned lengths in fine buckets, returned
/// capacities in powers of two, in bytes) and the heartbeat's tick duration
/// ([`heapscape_heartbeat::SAMPLE_DURATION_BUCKETS`], in seconds).
///
/// An exporter that picks its own default bounds needs these: the pool publishes each return
/// at its bucket's upper bound, so with these bounds the exported buckets are the pool's, and
/// with another exporter's defaults (OpenTelemetry's end at 10,000) nearly every size lands in
/// the overflow bucket. The agent's Prometheus recorder and `heapscape::otel::set_histogram_bounds`
/// (feature `otel`) read them from here.
///
/// ```
/// let (name, bounds) = heapscape::metrics::HISTOGRAMS[0];
/// assert_eq!(name, "heapscape_pool_returned_length_bytes");
/// assert_eq!((bounds[0], bounds[bounds.len() - 1]), (64.0, 1_073_741_824.0));
/// ```
pub const HISTOGRAMS: &[(&str, &[f64])] = &[
    heapscape_pool::metrics::HISTOGRAM_METRICS[0],
    heapscape_pool::metrics::HISTOGRAM_METRICS[1],
    (
        heapscape_heartbeat::metrics::SAMPLE_DURATION.name,
        heapscape_heartbeat::SAMPLE_DURATION_BUCKETS,
    ),
];

/// Describes (help text and unit) every metric of [`CATALOGS`] to the installed recorder.
///
/// [`AgentBuilder::start`](crate::AgentBuilder::start) does this for the recorder the agent
/// publishes through; call it after installing a recorder of your own without an agent.
pub fn describe() {
    for catalog in CATALOGS {
        heapscape_pool::catalog::describe(catalog);
    }
}

/// `value` as the Go Prometheus client writes a float in the text format (`writeFloat` in
/// prometheus/common's expfmt, Go's `strconv.FormatFloat(value, 'g', -1, 64)`): the shortest
/// digits that read back as `value`, in exponent form when the decimal exponent is below -4 or
/// at least 6, the exponent with its sign and at least two digits; `+Inf`, `-Inf`, `NaN`.
///
/// This is how the agent spells `le` (its Prometheus exposition, and the `le` attribute of
/// `heapscape::otel::BucketCounters`, feature `otel`) and how statsd_exporter spells the StatsD
/// path's. An `le` value is a label string: `1048576` on one path and `1.048576e+06` on
/// another would be two series for one bound wherever both meet in a query, so a tool writing
/// or matching heapscape's `le` values spells them with this.
///
/// ```
/// use heapscape::metrics::go_float;
///
/// assert_eq!(go_float(524_288.0), "524288");
/// assert_eq!(go_float(1_048_576.0), "1.048576e+06");
/// assert_eq!(go_float(0.000_01), "1e-05");
/// assert_eq!(go_float(f64::INFINITY), "+Inf");
/// ```
pub fn go_float(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if value == 0.0 {
        return "0".to_owned();
    }
    // Rust's `{:e}` writes the same shortest round-trip digits, as `1.048576e6`.
    let scientific = format!("{value:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return scientific;
    };
    let exponent: i32 = exponent.parse().unwrap_or_default();
    if (-4..6).contains(&exponent) {
        // Rust's `{}` never uses an exponent and keeps the shortest digits.
        format!("{value}")
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_spelled_as_go_spells_them() {
        // What Go's strconv.FormatFloat(f, 'g', -1, 64) returns for these values.
        for (value, go) in [
            (0.0, "0"),
            (64.0, "64"),
            (524_288.0, "524288"),
            (999_999.0, "999999"),
            (1e6, "1e+06"),
            (1_048_576.0, "1.048576e+06"),
            (1_073_741_824.0, "1.073741824e+09"),
            (1.0, "1"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (0.000_25, "0.00025"),
            (0.000_01, "1e-05"),
            (0.000_025, "2.5e-05"),
            (1e100, "1e+100"),
            (1e-100, "1e-100"),
            (-1_048_576.0, "-1.048576e+06"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(go_float(value), go, "{value}");
        }
    }

    /// A histogram added to a catalog without its bounds here would reach exporters with their
    /// default bounds.
    #[test]
    fn every_histogram_of_the_catalogs_has_its_bounds() {
        let histograms: Vec<&str> = CATALOGS
            .iter()
            .flat_map(|catalog| catalog.iter())
            .filter(|def| def.kind == MetricKind::Histogram)
            .map(|def| def.name)
            .collect();
        let bounded: Vec<&str> = HISTOGRAMS.iter().map(|(name, _)| *name).collect();
        assert_eq!(bounded, histograms);
        for (name, bounds) in HISTOGRAMS {
            assert!(
                !bounds.is_empty() && bounds.is_sorted(),
                "{name}: {bounds:?}"
            );
        }
        for pool_histogram in heapscape_pool::metrics::HISTOGRAM_METRICS {
            assert!(HISTOGRAMS.contains(pool_histogram), "{}", pool_histogram.0);
        }
    }
}
