//! Printing recommendations: a table for people, JSON and YAML for tools (the same fields).

use std::fmt::Write as _;

use serde::Serialize;

use crate::recommend::Recommendation;

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
            r.service,
            r.pool,
            c.level,
            c.returns,
            c.instances,
            if c.instances == 1 { "" } else { "s" },
            humantime::format_duration(std::time::Duration::from_secs(c.history_seconds as u64)),
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
                "  idle bytes observed at the peak: {} per instance",
                size(c.observed_peak_idle_bytes_per_instance)
            );
        }
        for note in &c.notes {
            let _ = writeln!(out, "  note: {note}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
