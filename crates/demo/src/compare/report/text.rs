//! The table `compare` prints.

use std::fmt::Write as _;

use super::format::{mib, mib_per_s, percent, size, spread_cell, spread_format};
use super::rows;
use crate::compare::summary::{Candidate, Comparison, Sizes};

/// Width of the label column.
const LABEL: usize = 32;
/// Width of a mode's column.
const VALUE: usize = 14;
/// Width of a change column.
const CHANGE: usize = 10;

impl Comparison {
    /// The side-by-side table `compare` prints: each mode with its change against its
    /// baseline, the spread across slices, the targets judged on the slices, the tuned
    /// settings, auto's settings beside them, and the returned lengths with the candidates'
    /// costs.
    pub fn table(&self) -> String {
        let mut out = String::new();
        self.modes_table(&mut out);
        self.spread(&mut out);
        let _ = writeln!(
            out,
            "\n{} ({}):",
            rows::VERDICTS_HEADING,
            rows::verdicts_method(&self.verdicts)
        );
        for verdict in &self.verdicts {
            let _ = writeln!(
                out,
                "  {}: {}",
                verdict.state.as_str(),
                rows::verdict_text(verdict)
            );
        }
        self.settings(&mut out);
        self.sizes(&mut out);
        for mode in &self.modes {
            for (kind, n) in &mode.errors {
                let _ = writeln!(out, "errors with {}: {n} x {kind}", mode.mode);
            }
        }
        for (mode, svg) in self.modes.iter().zip(&self.heap_profiles) {
            let _ = writeln!(out, "where the heap is, {}: {}", mode.mode, svg.display());
        }
        out
    }

    fn modes_table(&self, out: &mut String) {
        let modes = &self.modes;
        let line = |out: &mut String, label: &str, cells: &[String]| {
            let _ = write!(out, "{label:<LABEL$}");
            for (index, cell) in cells.iter().enumerate() {
                let width = if index < modes.len() { VALUE } else { CHANGE };
                let _ = write!(out, " {cell:>width$}");
            }
            out.push('\n');
        };
        let headings = rows::headings(modes);
        let top: Vec<String> = headings.iter().map(|h| h.top.clone()).collect();
        let bottom: Vec<String> = headings.iter().map(|h| h.bottom.clone()).collect();
        line(out, "", &top);
        line(out, "", &bottom);
        for row in rows::rows(modes) {
            line(out, &row.label, &row.cells(modes));
        }
    }

    fn spread(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\nspread across {} slices of {:.0} s per mode (min / median / max):",
            self.slices, self.slice_seconds
        );
        let metrics: Vec<&str> = self
            .modes
            .first()
            .map(|mode| mode.slices.keys().copied().collect())
            .unwrap_or_default();
        for metric in metrics {
            let format = spread_format(metric);
            for mode in &self.modes {
                let _ = writeln!(
                    out,
                    "  {metric:<26} {:<9} {}",
                    mode.mode,
                    spread_cell(mode.slices.get(metric), format)
                );
            }
        }
    }

    fn settings(&self, out: &mut String) {
        let tuned = &self.tuned;
        let _ = writeln!(
            out,
            "\ntuned settings ({}; file {}):",
            tuned.applied_by,
            tuned.config_file.display()
        );
        for [key, value, from] in rows::tuned_rows(tuned) {
            let _ = writeln!(out, "  {key:<26} {value:>12}  ({from})");
        }
        let auto = &self.auto;
        let _ = writeln!(
            out,
            "\nauto settings after the warm-up ({}; file {}):",
            rows::auto_tuning(auto),
            auto.config_file.display()
        );
        let _ = writeln!(
            out,
            "  {:<18} {:>12} {:>12} {:>12} {:>10} {:>6}  bounds",
            "setting", "start", "auto", "tuned", "auto/tuned", "moves"
        );
        for [key, start, value, tuned, ratio, moves, bounds] in rows::auto_rows(auto, tuned) {
            let _ = writeln!(
                out,
                "  {key:<18} {start:>12} {value:>12} {tuned:>12} {ratio:>10} {moves:>6}  {bounds}"
            );
        }
        for line in rows::auto_verdicts(auto) {
            let _ = writeln!(out, "  {line}");
        }
    }

    fn sizes(&self, out: &mut String) {
        let Some(sizes) = &self.sizes else { return };
        let _ = writeln!(out, "\nreturned lengths (pooled service, warm-up):");
        for (name, value) in &sizes.percentiles {
            let _ = writeln!(out, "  {name} <= {}", size(*value));
        }
        let recommended = self
            .tuned
            .pool
            .get("max_buffer_size")
            .copied()
            .unwrap_or(0.0);
        let _ = writeln!(
            out,
            "  {:<14} {:>14} {:>16} {:>18}",
            "candidate max", "returns over", "regrow copies", "idle memory bound"
        );
        for candidate in shown_candidates(sizes, recommended, self.default_max()) {
            let _ = writeln!(
                out,
                "  {:<14} {:>14} {:>16} {:>18}",
                size(candidate.max_buffer_size),
                percent(candidate.share_over),
                mib_per_s(candidate.regrow_bytes_per_second),
                mib(candidate.idle_bytes_bound)
            );
        }
    }

    /// The pooled default's max buffer size.
    pub(super) fn default_max(&self) -> f64 {
        self.tuned
            .defaults
            .get("max_buffer_size")
            .copied()
            .unwrap_or(0.0)
    }
}

/// The candidates the text shows: the recommended max, one bucket on each side, and the
/// pooled default.
fn shown_candidates(sizes: &Sizes, recommended: f64, default: f64) -> Vec<Candidate> {
    let at = sizes
        .candidates
        .iter()
        .position(|c| c.max_buffer_size >= recommended);
    let mut shown: Vec<Candidate> = match at {
        Some(index) => sizes.candidates
            [index.saturating_sub(1)..(index + 2).min(sizes.candidates.len())]
            .to_vec(),
        None => Vec::new(),
    };
    if let Some(default) = sizes
        .candidates
        .iter()
        .find(|c| c.max_buffer_size >= default)
        .filter(|c| !shown.iter().any(|s| s.max_buffer_size == c.max_buffer_size))
    {
        shown.push(*default);
    }
    shown
}
