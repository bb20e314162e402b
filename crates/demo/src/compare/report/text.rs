//! The table `compare` prints.

use std::fmt::Write as _;

use super::format::{size, spread_cell, spread_format};
use super::rows;
use crate::compare::summary::Comparison;

/// Width of the label column.
const LABEL: usize = 32;
/// Width of a mode's column.
const VALUE: usize = 14;
/// Width of a change column.
const CHANGE: usize = 10;

impl Comparison {
    /// The side-by-side table `compare` prints: each mode with its change against its
    /// baseline, the spread across slices, the targets judged on the slices, the tuned
    /// settings, auto's settings beside them, the returned lengths, and the pool's candidate
    /// max buffer sizes with their costs.
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
                    "  {metric:<26} {:<12} {}",
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
        if let Some(sizes) = &self.sizes {
            let _ = writeln!(out, "\nreturned lengths (pooled service, warm-up):");
            for (name, value) in &sizes.percentiles {
                let _ = writeln!(out, "  {name} <= {}", size(*value));
            }
        }
        if self.candidates.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "\ncandidate max buffer sizes (the pooled service's own, costed over its window \
             after the warm-up; the applied one is the tuned service's):"
        );
        let [role, max, over, regrow, idle, measured] = rows::CANDIDATE_HEADINGS;
        let _ = writeln!(
            out,
            "  {role:<23} {max:>10} {over:>15} {regrow:>13} {idle:>17}  {measured}"
        );
        for [role, max, over, regrow, idle, measured] in rows::candidate_rows(&self.candidates) {
            let _ = writeln!(
                out,
                "  {role:<23} {max:>10} {over:>15} {regrow:>13} {idle:>17}  {measured}"
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
