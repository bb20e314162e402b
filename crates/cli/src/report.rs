//! Printing recommendations: a table for people, JSON and YAML for tools (the same fields).

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::recommend::Recommendation;
use crate::since_change::SinceChange;

/// The output formats of `-o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text, one block per pool.
    Table,
    /// One JSON document.
    Json,
    /// One YAML document.
    Yaml,
}

/// The whole answer, as JSON and YAML print it.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    /// Where the data came from.
    pub source: &'a str,
    /// The percentile the max is read at.
    pub percentile: f64,
    /// One per service and pool.
    pub recommendations: &'a [Recommendation],
}

/// The report in `format`.
pub fn render(report: &Report<'_>, format: Format) -> String {
    match format {
        Format::Json => {
            let mut text = serde_json::to_string_pretty(report).unwrap_or_default();
            text.push('\n');
            text
        }
        Format::Yaml => serde_saphyr::to_string(report).unwrap_or_default(),
        Format::Table => table(report),
    }
}

/// A size the way ops write it in the config: whole MiB or KiB when exact, else with two
/// decimals.
pub(crate) fn size(bytes: u64) -> String {
    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    match bytes {
        0 => "0 B".to_owned(),
        b if b % MIB == 0 => format!("{} MiB", b / MIB),
        b if b >= MIB => format!("{:.2} MiB", b as f64 / MIB as f64),
        b if b % KIB == 0 => format!("{} KiB", b / KIB),
        b if b >= KIB => format!("{:.2} KiB", b as f64 / KIB as f64),
        b => format!("{b} B"),
    }
}

/// A service as the table and messages name it: `tts`, or `asr (job statsd-exporter)` where
/// it was scraped as a job of another name.
///
/// The service's own name comes first: it is what the operator calls the service and what
/// its config says (`service:`), and on the StatsD path the job is the exporter's, shared by
/// every service behind it. The job follows where it differs, since it is what
/// `--selector 'job="..."'` matches and where to look in Prometheus.
pub(crate) fn service_shown(service: &str, job: Option<&str>) -> String {
    match job {
        Some(job) if job != service => format!("{service} (job {job})"),
        _ => service.to_owned(),
    }
}

/// `(+1.5 MiB)`, `(-3)` or `(=)`.
fn change(from: u64, to: u64, bytes: bool) -> String {
    let (sign, by) = if to >= from {
        ('+', to - from)
    } else {
        ('-', from - to)
    };
    match (by, bytes) {
        (0, _) => "(=)".to_owned(),
        (by, true) => format!("({sign}{})", size(by)),
        (by, false) => format!("({sign}{by})"),
    }
}

fn rate(bytes_per_second: f64) -> String {
    if bytes_per_second.is_nan() {
        return "-".to_owned();
    }
    format!("{}/s", size(bytes_per_second.round() as u64))
}

fn table(report: &Report<'_>) -> String {
    let mut out = format!(
        "heapscape recommend: p{} of returned lengths, from {}\n",
        report.percentile * 100.0,
        report.source
    );
    for r in report.recommendations {
        let c = &r.confidence;
        let _ = writeln!(
            out,
            "\n{} / {}   confidence: {} ({} returns from {} instance{} over {}, {} needed)",
            service_shown(&r.service, r.job.as_deref()),
            r.pool,
            c.level,
            c.returns,
            c.instances,
            if c.instances == 1 { "" } else { "s" },
            humantime::format_duration(Duration::from_secs(c.history_seconds as u64)),
            c.min_returns,
        );
        let now = r.current;
        match r.recommended {
            Some(new) => {
                let _ = writeln!(
                    out,
                    "  {:<18} {:>12}    {:>12}  change",
                    "setting", "current", "recommended"
                );
                for (name, from, to, bytes) in [
                    (
                        "max_buffer_size",
                        now.max_buffer_size,
                        new.max_buffer_size,
                        true,
                    ),
                    (
                        "initial_capacity",
                        now.initial_capacity,
                        new.initial_capacity,
                        true,
                    ),
                    (
                        "max_idle_buffers",
                        now.max_idle_buffers,
                        new.max_idle_buffers,
                        false,
                    ),
                    (
                        "max_idle_bytes",
                        now.max_idle_bytes,
                        new.max_idle_bytes,
                        true,
                    ),
                ] {
                    let show = |v: u64| if bytes { size(v) } else { v.to_string() };
                    let _ = writeln!(
                        out,
                        "  {name:<18} {:>12} -> {:>12}  {}",
                        show(from),
                        show(to),
                        change(from, to, bytes)
                    );
                }
                if let Some(regrows) = r.initial_capacity_regrows_per_request {
                    let _ = writeln!(
                        out,
                        "  a new buffer of the recommended initial capacity regrows {regrows:.2} \
                         times per request on average"
                    );
                }
            }
            None => {
                let _ = writeln!(
                    out,
                    "  no recommendation; in force: max_buffer_size {}, initial_capacity {}, \
                     max_idle_buffers {}, max_idle_bytes {}",
                    size(now.max_buffer_size),
                    size(now.initial_capacity),
                    now.max_idle_buffers,
                    size(now.max_idle_bytes)
                );
            }
        }
        if !r.candidates.is_empty() {
            let _ = writeln!(
                out,
                "  {:<12} {:>12} {:>13} {:>16} {:>22}",
                "candidate", "max", "returns over", "regrowth copies", "idle at most (fleet)"
            );
            for candidate in &r.candidates {
                let _ = writeln!(
                    out,
                    "  {:<12} {:>12} {:>12.1}% {:>16} {:>22}",
                    candidate.role,
                    size(candidate.max_buffer_size),
                    candidate.share_over_max * 100.0,
                    rate(candidate.regrow_bytes_per_second),
                    format!(
                        "{} ({})",
                        size(candidate.idle_bytes_bound_per_instance),
                        size(candidate.idle_bytes_bound_fleet)
                    ),
                );
            }
            let _ = writeln!(
                out,
                "  observed at the max in force: idle bytes up to {} per instance, {} returns \
                 shrunk to it per second",
                size(c.observed_peak_idle_bytes_per_instance),
                if c.observed_shrinks_per_second.is_nan() {
                    "-".to_owned()
                } else {
                    format!("{:.2}", c.observed_shrinks_per_second)
                }
            );
        }
        if let Some(since) = &r.since_change {
            since_change(&mut out, since);
        }
        for note in &c.notes {
            let _ = writeln!(out, "  note: {note}");
        }
    }
    out
}

/// The rule's prediction for the new max against what followed: numbers only where a side
/// holds enough returns.
fn since_change(out: &mut String, since: &SinceChange) {
    let ago = |seconds: f64| humantime::format_duration(Duration::from_secs(seconds as u64));
    let _ = writeln!(
        out,
        "  since the max changed to {} (from {}, {} ago; {} returns before it, {} since):",
        size(since.max_buffer_size),
        size(since.previous_max_buffer_size),
        ago(since.seconds_since),
        since.returns_before,
        since.returns_since,
    );
    let _ = match since.predicted {
        Some(predicted) => writeln!(
            out,
            "    predicted: {:.1} % of returns over the max; idle bytes at most {} per instance \
             (bound)",
            predicted.share_over_max * 100.0,
            size(predicted.idle_bytes_bound_per_instance)
        ),
        None => writeln!(
            out,
            "    predicted: not enough returns before the change in the window ({}, {} \
             needed: widen --window)",
            since.returns_before, since.min_returns
        ),
    };
    let _ = match since.observed {
        Some(observed) => writeln!(
            out,
            "    observed:  {:.1} % of returns over the max; idle bytes up to {} per instance \
             (peak)",
            observed.share_over_max * 100.0,
            size(observed.peak_idle_bytes_per_instance)
        ),
        None => writeln!(
            out,
            "    observed:  too soon to say ({} returns since the change, {} needed)",
            since.returns_since, since.min_returns
        ),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::since_change::{Observed, Predicted};

    #[test]
    fn a_service_shows_its_job_where_the_job_names_it_otherwise() {
        assert_eq!(service_shown("tts", Some("tts")), "tts");
        assert_eq!(service_shown("tts", None), "tts");
        assert_eq!(
            service_shown("asr", Some("statsd-exporter")),
            "asr (job statsd-exporter)"
        );
    }

    #[test]
    fn sizes_read_as_ops_write_them() {
        assert_eq!(size(4 << 20), "4 MiB");
        assert_eq!(size(1_490_944), "1.42 MiB");
        assert_eq!(size(256 << 10), "256 KiB");
        assert_eq!(size(110_592), "108 KiB");
        assert_eq!(size(1000), "1000 B");
        assert_eq!(change(4 << 20, 1 << 20, true), "(-3 MiB)");
        assert_eq!(change(6, 64, false), "(+58)");
        assert_eq!(change(7, 7, false), "(=)");
    }

    #[test]
    fn since_a_change_numbers_show_only_where_a_side_has_enough_returns() {
        let mut since = SinceChange {
            previous_max_buffer_size: 4 << 20,
            max_buffer_size: 1_490_944,
            seconds_since: 720.4,
            seconds_before: 2880.0,
            returns_before: 9000,
            returns_since: 120,
            min_returns: 400,
            predicted: Some(Predicted {
                share_over_max: 0.048,
                idle_bytes_bound_per_instance: 9_542_041,
            }),
            observed: None,
        };
        let mut out = String::new();
        since_change(&mut out, &since);
        assert_eq!(
            out,
            "  since the max changed to 1.42 MiB (from 4 MiB, 12m ago; 9000 returns before it, \
             120 since):\n    predicted: 4.8 % of returns over the max; idle bytes at \
             most 9.10 MiB per instance (bound)\n    observed:  too soon to say (120 returns \
             since the change, 400 needed)\n"
        );
        since.returns_since = 3000;
        since.observed = Some(Observed {
            share_over_max: 0.051,
            peak_idle_bytes_per_instance: 6_501_171,
        });
        since.predicted = None;
        since.returns_before = 50;
        let mut out = String::new();
        since_change(&mut out, &since);
        assert!(
            out.contains("predicted: not enough returns before the change in the window (50, 400")
                && out.contains(
                    "observed:  5.1 % of returns over the max; idle bytes up to 6.20 MiB"
                ),
            "{out}"
        );
    }
}
