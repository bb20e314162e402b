//! The pool's own candidate max buffer sizes, read back from the pooled service's
//! `heapscape_pool_candidate_*` gauges: the max in force, the recommendation and its fine-bucket
//! neighbours, each with the cost the pool computed over its window. The costs are the pool's
//! (its regrowth model, its window), never recomputed here, so the report shows what ops and
//! dashboards see; beside each, what the modes that ran it measured.

use std::collections::BTreeMap;

use heapscape_pool::stats::CandidateRole;

use super::summary::{Candidate, CandidateRun, ModeSummary};
use crate::scrape::{
    CANDIDATE_IDLE_BOUND, CANDIDATE_MAX, CANDIDATE_OVER_MAX, CANDIDATE_REGROW_BYTES,
};

/// The candidates in `series` (one scrape of a pooled service, `pool` label dropped), in the
/// pool's order (current, lower, recommended, higher); `applied` is the max the tuned service
/// ran. Empty while the pool publishes none (NaN: too few returns in its window).
pub(super) fn read(series: &BTreeMap<String, f64>, applied: f64) -> Vec<Candidate> {
    CandidateRole::ALL
        .into_iter()
        .filter_map(|role| {
            let gauge = |name: &str| {
                let key = format!("{name}{{candidate=\"{}\"}}", role.as_str());
                series.get(&key).copied().filter(|value| value.is_finite())
            };
            let max_buffer_size = gauge(CANDIDATE_MAX)?;
            Some(Candidate {
                role: role.as_str(),
                max_buffer_size,
                over_max_ratio: gauge(CANDIDATE_OVER_MAX)?,
                regrow_bytes_per_second: gauge(CANDIDATE_REGROW_BYTES)?,
                idle_bytes_bound: gauge(CANDIDATE_IDLE_BOUND)?,
                applied: max_buffer_size == applied,
                ran: Vec::new(),
            })
        })
        .collect()
}

/// Sets beside each candidate the modes whose max in force through every slice was that
/// candidate, with what they measured.
pub(super) fn add_runs(candidates: &mut [Candidate], modes: &[ModeSummary]) {
    for candidate in candidates {
        candidate.ran = modes
            .iter()
            .filter(|mode| mode.max_buffer_size == Some(candidate.max_buffer_size))
            .map(|mode| CandidateRun {
                mode: mode.mode,
                over_max_ratio: mode.over_max_ratio,
                idle_bytes_max: mode.idle_bytes.map(|idle| idle.max),
            })
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::summary::OverTime;

    fn scrape(role: &str, max: f64, over: f64) -> [(String, f64); 4] {
        let key = |name: &str| format!("{name}{{candidate=\"{role}\"}}");
        [
            (key(CANDIDATE_MAX), max),
            (key(CANDIDATE_OVER_MAX), over),
            (key(CANDIDATE_REGROW_BYTES), 1000.0 * over),
            (key(CANDIDATE_IDLE_BOUND), 8.0 * max),
        ]
    }

    #[test]
    fn the_pools_candidates_are_read_in_its_order_with_the_applied_one_marked() {
        let series: BTreeMap<String, f64> = [
            scrape("higher", 1_785_856.0, 0.02),
            scrape("current", 4_194_304.0, 0.0),
            scrape("recommended", 1_490_944.0, 0.05),
            scrape("lower", 1_245_184.0, 0.09),
        ]
        .into_iter()
        .flatten()
        .collect();
        let candidates = read(&series, 1_490_944.0);
        let roles: Vec<&str> = candidates.iter().map(|c| c.role).collect();
        assert_eq!(roles, ["current", "lower", "recommended", "higher"]);
        let applied: Vec<&str> = candidates
            .iter()
            .filter(|c| c.applied)
            .map(|c| c.role)
            .collect();
        assert_eq!(applied, ["recommended"]);
        let lower = &candidates[1];
        assert_eq!(lower.max_buffer_size, 1_245_184.0);
        assert_eq!(lower.over_max_ratio, 0.09);
        assert_eq!(lower.regrow_bytes_per_second, 90.0);
        assert_eq!(lower.idle_bytes_bound, 8.0 * 1_245_184.0);
    }

    #[test]
    fn no_candidates_while_the_pool_publishes_nan() {
        let series: BTreeMap<String, f64> = scrape("recommended", f64::NAN, f64::NAN)
            .into_iter()
            .collect();
        assert!(read(&series, 1.0).is_empty());
        assert!(read(&BTreeMap::new(), 1.0).is_empty());
    }

    #[test]
    fn each_candidate_lists_the_modes_that_ran_it() {
        let series: BTreeMap<String, f64> = [
            scrape("current", 4_194_304.0, 0.0),
            scrape("recommended", 1_490_944.0, 0.05),
        ]
        .into_iter()
        .flatten()
        .collect();
        let mut candidates = read(&series, 1_490_944.0);
        let mode = |name, max: Option<f64>, over| ModeSummary {
            mode: name,
            max_buffer_size: max,
            over_max_ratio: over,
            idle_bytes: OverTime::of(&[1.0, 3.0]),
            ..ModeSummary::default()
        };
        let modes = [
            mode("unpooled", None, None),
            mode("pooled", Some(4_194_304.0), Some(0.0)),
            mode("tuned", Some(1_490_944.0), Some(0.048)),
            // Auto moved during the slices: no single max to set it beside.
            mode("auto", None, Some(0.1)),
            mode("pooled+decay", Some(4_194_304.0), Some(0.0)),
        ];
        add_runs(&mut candidates, &modes);
        let ran = |i: usize| -> Vec<&str> { candidates[i].ran.iter().map(|r| r.mode).collect() };
        assert_eq!(ran(0), ["pooled", "pooled+decay"]);
        assert_eq!(ran(1), ["tuned"]);
        assert_eq!(candidates[1].ran[0].over_max_ratio, Some(0.048));
        assert_eq!(candidates[1].ran[0].idle_bytes_max, Some(3.0));
    }
}
