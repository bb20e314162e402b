//! The targets of a default run, judged on per-slice figures: met, not met or inconclusive.
//!
//! A target names the modes it involves (by name) and one per-slice metric; each round of
//! slices gives its figure once, from that round's slice of each of those modes (the slices of
//! a round ran back to back, so they share the machine's load). The verdict reads the median of
//! the per-round figures and its bootstrap interval ([`stats::median_interval`]): met when the
//! whole interval is on the target's side, not met when it is all on the other side,
//! inconclusive when it straddles the target or fewer than [`MIN_ROUNDS`] rounds measured it.

use super::slice::metric;
use super::stats;
use super::summary::{Goal, ModeMedian, ModeSummary, State, Verdict};

/// Rounds a verdict needs before it decides: one or two slices never do.
const MIN_ROUNDS: usize = 3;

/// The most tuned may allocate (bytes/s) against unpooled: pooling's point is the allocation
/// it saves, and the recommended caps may give back little of it.
const ALLOCATION_RATE: f64 = 0.15;

/// The most jemalloc allocated (mean) tuned may hold against pooled: what the caps are for.
const ALLOCATED: f64 = 0.60;

/// The most resident memory (mean) tuned may hold against pooled: the caps' cut must reach the
/// resident set, not only jemalloc's allocated bytes.
const RESIDENT_MEAN: f64 = 0.80;

/// A target: a figure computed per round from one per-slice metric of some modes.
struct Target {
    name: &'static str,
    metric: &'static str,
    /// The modes whose slices the figure reads, in the order `figure` takes their values.
    modes: &'static [&'static str],
    /// `figure`, in words.
    figure_text: &'static str,
    /// The figure from one round's values of `modes`; `None` where it is undefined.
    figure: fn(&[f64]) -> Option<f64>,
    goal: Goal,
}

const TARGETS: [Target; 4] = [
    Target {
        name: "allocation rate",
        metric: metric::ALLOC_RATE,
        modes: &["unpooled", "tuned"],
        figure_text: "tuned / unpooled",
        figure: ratio,
        goal: Goal::AtMost(ALLOCATION_RATE),
    },
    Target {
        name: "jemalloc allocated",
        metric: metric::ALLOCATED_MEAN,
        modes: &["pooled", "tuned"],
        figure_text: "tuned / pooled",
        figure: ratio,
        goal: Goal::AtMost(ALLOCATED),
    },
    Target {
        name: "resident mean",
        metric: metric::RESIDENT_MEAN,
        modes: &["pooled", "tuned"],
        figure_text: "tuned / pooled",
        figure: ratio,
        goal: Goal::AtMost(RESIDENT_MEAN),
    },
    Target {
        name: "resident peak",
        metric: metric::RESIDENT_P95,
        modes: &["pooled", "tuned"],
        figure_text: "tuned / pooled",
        figure: ratio,
        goal: Goal::AtMost(1.0),
    },
];

fn ratio(values: &[f64]) -> Option<f64> {
    let &[base, mode] = values else {
        return None;
    };
    (base > 0.0).then(|| mode / base)
}

/// Every target, judged on `modes`' slices.
pub(super) fn judge_all(modes: &[ModeSummary]) -> Vec<Verdict> {
    TARGETS.iter().map(|target| judge(target, modes)).collect()
}

/// Whether every verdict is decided (met or not met) on at least `rounds` rounds each: a run
/// may stop there, since more rounds would narrow intervals that already lie on one side.
pub(super) fn all_decided(verdicts: &[Verdict], rounds: usize) -> bool {
    verdicts
        .iter()
        .all(|verdict| verdict.state != State::Inconclusive && verdict.rounds >= rounds)
}

fn judge(target: &Target, modes: &[ModeSummary]) -> Verdict {
    let per_slice: Vec<&[Option<f64>]> = target
        .modes
        .iter()
        .map(|name| {
            modes
                .iter()
                .find(|mode| mode.mode == *name)
                .and_then(|mode| mode.slices.get(target.metric))
                .map_or(&[][..], |spread| &spread.per_slice)
        })
        .collect();
    let rounds = per_slice
        .iter()
        .map(|values| values.len())
        .min()
        .unwrap_or(0);
    let figures: Vec<f64> = (0..rounds)
        .filter_map(|round| {
            let values: Option<Vec<f64>> = per_slice.iter().map(|values| values[round]).collect();
            (target.figure)(&values?)
        })
        .filter(|figure| figure.is_finite())
        .collect();
    let medians = target
        .modes
        .iter()
        .zip(&per_slice)
        .map(|(name, values)| {
            let values: Vec<f64> = values.iter().flatten().copied().collect();
            ModeMedian {
                mode: name,
                median: stats::median(&values),
            }
        })
        .collect();
    let (median, interval, state) = decide(&figures, target.goal);
    Verdict {
        name: target.name,
        metric: target.metric,
        figure: target.figure_text,
        goal: target.goal,
        medians,
        rounds: figures.len(),
        median,
        interval,
        confidence: stats::CONFIDENCE,
        state,
    }
}

/// The median of the per-round `figures`, its interval, and where the interval lies against
/// `goal`.
fn decide(figures: &[f64], goal: Goal) -> (Option<f64>, Option<[f64; 2]>, State) {
    let median = stats::median(figures);
    let interval = stats::median_interval(figures);
    let state = match interval {
        Some(_) if figures.len() < MIN_ROUNDS => State::Inconclusive,
        Some([low, high]) => match goal {
            Goal::AtLeast(target) if low >= target => State::Met,
            Goal::AtLeast(target) if high < target => State::NotMet,
            Goal::AtMost(target) if high <= target => State::Met,
            Goal::AtMost(target) if low > target => State::NotMet,
            _ => State::Inconclusive,
        },
        None => State::Inconclusive,
    };
    (median, interval, state)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::compare::summary::Spread;

    #[test]
    fn clearly_above_a_lower_bound_is_met() {
        let figures = [0.91, 0.93, 0.90, 0.95, 0.92, 0.94, 0.89, 0.93];
        let (median, interval, state) = decide(&figures, Goal::AtLeast(0.85));
        assert_eq!(state, State::Met, "{interval:?}");
        assert!((median.unwrap() - 0.925).abs() < 1e-9);
    }

    #[test]
    fn clearly_below_a_lower_bound_is_not_met() {
        let figures = [0.71, 0.75, 0.78, 0.70, 0.74, 0.77, 0.72, 0.76];
        assert_eq!(decide(&figures, Goal::AtLeast(0.85)).2, State::NotMet);
        assert_eq!(decide(&figures, Goal::AtMost(0.6)).2, State::NotMet);
        assert_eq!(decide(&figures, Goal::AtMost(0.8)).2, State::Met);
    }

    #[test]
    fn figures_on_both_sides_of_the_target_are_inconclusive() {
        // The runs: 85.0, 84.9, 83.0 and 83.9 %, and per-slice rates from 79 to 89 %.
        let figures = [0.85, 0.849, 0.83, 0.839, 0.79, 0.89, 0.86, 0.87];
        let (_, interval, state) = decide(&figures, Goal::AtLeast(0.85));
        let [low, high] = interval.unwrap();
        assert!(low < 0.85 && 0.85 < high, "{low} {high}");
        assert_eq!(state, State::Inconclusive);
    }

    #[test]
    fn one_or_two_rounds_never_decide() {
        assert_eq!(decide(&[0.99], Goal::AtLeast(0.5)).2, State::Inconclusive);
        assert_eq!(
            decide(&[0.99, 0.98], Goal::AtLeast(0.5)).2,
            State::Inconclusive
        );
        assert_eq!(
            decide(&[0.99, 0.98, 0.97], Goal::AtLeast(0.5)).2,
            State::Met
        );
        assert_eq!(
            decide(&[], Goal::AtLeast(0.5)),
            (None, None, State::Inconclusive)
        );
    }

    /// A mode whose slices measured `values` (by round) of each metric.
    fn mode(name: &'static str, metrics: &[(&'static str, &[f64])]) -> ModeSummary {
        let slices = metrics
            .iter()
            .map(|(metric, values)| {
                let per_slice = values.iter().map(|v| Some(*v)).collect();
                (*metric, Spread::of(per_slice).unwrap())
            })
            .collect::<BTreeMap<_, _>>();
        ModeSummary {
            mode: name,
            slices,
            ..ModeSummary::default()
        }
    }

    const MIB: f64 = 1024.0 * 1024.0;

    #[test]
    fn the_targets_read_the_modes_by_name_and_pair_their_rounds() {
        let rate = metric::ALLOC_RATE;
        let allocated = metric::ALLOCATED_MEAN;
        let resident = metric::RESIDENT_MEAN;
        let peak = metric::RESIDENT_P95;
        // Tuned allocates 16 % of unpooled's bytes/s on average, but round to round between
        // 11 and 21 %; it holds 40 % of pooled's allocated bytes; its resident mean is below
        // 80 % of pooled's in every round and its peak higher in every round.
        let modes = [
            mode("auto", &[(rate, &[1.0; 6])]),
            mode(
                "tuned",
                &[
                    (rate, &[32.0, 60.0, 35.0, 58.0, 45.0, 44.0]),
                    (allocated, &[8.0, 8.5, 8.2, 9.0, 8.4, 8.1]),
                    (resident, &[17.0, 18.0, 19.0, 16.0, 18.5, 17.5]),
                    (peak, &[30.0, 33.0, 29.0, 31.0, 34.0, 30.5]),
                ],
            ),
            mode(
                "pooled",
                &[
                    (rate, &[4.0; 6]),
                    (allocated, &[21.0, 20.9, 20.8, 21.1, 21.0, 20.9]),
                    (resident, &[24.7, 24.8, 24.6, 24.9, 24.7, 24.8]),
                    (peak, &[25.0, 25.1, 24.9, 25.2, 25.0, 25.1]),
                ],
            ),
            mode("unpooled", &[(rate, &[280.0; 6])]),
        ]
        .map(|mut mode| {
            for spread in mode.slices.values_mut() {
                for value in spread.per_slice.iter_mut().flatten() {
                    *value *= MIB;
                }
            }
            mode
        });
        let verdicts = judge_all(&modes);
        let state = |name: &str| {
            let verdict = verdicts.iter().find(|v| v.name == name).unwrap();
            assert_eq!(verdict.rounds, 6, "{verdict:?}");
            verdict.state
        };
        assert_eq!(state("allocation rate"), State::Inconclusive);
        assert_eq!(state("jemalloc allocated"), State::Met);
        assert_eq!(state("resident mean"), State::Met);
        assert_eq!(state("resident peak"), State::NotMet);
        assert!(!all_decided(&verdicts, 3), "one is inconclusive");
        let rate = &verdicts[0];
        assert_eq!(
            rate.medians.iter().map(|m| m.mode).collect::<Vec<_>>(),
            ["unpooled", "tuned"]
        );
        assert_eq!(rate.medians[0].median, Some(280.0 * MIB));
        let [low, high] = rate.interval.unwrap();
        assert!(
            low < ALLOCATION_RATE && ALLOCATION_RATE < high,
            "{low} {high}"
        );
        let decided: Vec<Verdict> = verdicts[1..].to_vec();
        assert!(all_decided(&decided, 6));
        assert!(!all_decided(&decided, 7), "too few rounds");
    }

    #[test]
    fn a_mode_or_a_round_missing_leaves_the_target_undecided() {
        let peak = metric::RESIDENT_P95;
        let pooled = mode("pooled", &[(peak, &[25.0, 25.0, 25.0])]);
        let verdicts = judge_all(std::slice::from_ref(&pooled));
        assert!(
            verdicts
                .iter()
                .all(|v| v.state == State::Inconclusive && v.rounds == 0)
        );

        let mut tuned = mode("tuned", &[(peak, &[20.0, 20.0, 20.0])]);
        tuned.slices.get_mut(peak).unwrap().per_slice[1] = None;
        let verdicts = judge_all(&[pooled, tuned]);
        let peak = verdicts.iter().find(|v| v.name == "resident peak").unwrap();
        assert_eq!((peak.rounds, peak.state), (2, State::Inconclusive));
    }
}
