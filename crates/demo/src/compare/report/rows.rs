//! What the table and the page both show, as cells and lines: the modes' rows with each
//! mode's change against its baseline, the tuned and auto settings, and the verdicts in words.

use super::format::{count, kib, mib, mib_per_s, one_decimal, percent, ratio, size, spread_format};
use crate::compare::summary::{
    Auto, Candidate, Goal, ModeMedian, ModeSummary, OverTime, Tuned, Verdict,
};

/// A row of the table: a label and each mode's value, formatted by `format`.
pub(super) struct Row {
    pub(super) label: String,
    /// One per mode, in the modes' order.
    values: Vec<Option<f64>>,
    format: fn(f64) -> String,
    /// Whether to show each mode's relative change against its baseline.
    change: bool,
}

/// A column heading: the mode's name and what it runs, or the pair a change column compares.
pub(super) struct Heading {
    pub(super) top: String,
    pub(super) bottom: String,
}

/// The value columns (one per mode) and then the change columns (one per mode with a baseline).
pub(super) fn headings(modes: &[ModeSummary]) -> Vec<Heading> {
    let values = modes.iter().map(|mode| Heading {
        top: mode.mode.to_owned(),
        bottom: if mode.label.is_empty() {
            String::new()
        } else {
            format!("({})", mode.label)
        },
    });
    let changes = modes.iter().filter_map(|mode| {
        Some(Heading {
            top: format!("{} vs", mode.mode),
            bottom: mode.baseline?.to_owned(),
        })
    });
    values.chain(changes).collect()
}

pub(super) fn rows(modes: &[ModeSummary]) -> Vec<Row> {
    let all = |f: &dyn Fn(&ModeSummary) -> Option<f64>| modes.iter().map(f).collect();
    let mut rows = vec![
        Row::new(
            "requests (ok)",
            all(&|m| Some(m.requests as f64)),
            count,
            false,
        ),
        Row::new(
            "requests/s",
            all(&|m| Some(m.requests_per_second)),
            one_decimal,
            true,
        ),
        Row::new(
            "latency p50 (ms)",
            all(&|m| m.latency_ms.get("p50").copied()),
            one_decimal,
            true,
        ),
        Row::new(
            "latency p99 (ms)",
            all(&|m| m.latency_ms.get("p99").copied()),
            one_decimal,
            true,
        ),
        Row::new(
            "allocated bytes/s",
            all(&|m| m.alloc_bytes_per_second),
            mib_per_s,
            true,
        ),
        Row::new(
            "allocations/s",
            all(&|m| m.allocations_per_second),
            count,
            true,
        ),
        Row::new(
            "allocated bytes/request",
            all(&|m| m.alloc_bytes_per_request),
            kib,
            true,
        ),
        Row::new(
            "allocations/request",
            all(&|m| m.allocations_per_request),
            one_decimal,
            true,
        ),
    ];
    for (name, pick) in [
        (
            "jemalloc allocated",
            (|m: &ModeSummary| m.allocated) as fn(&ModeSummary) -> Option<OverTime>,
        ),
        ("jemalloc active", |m| m.active),
        ("jemalloc resident", |m| m.resident),
        ("jemalloc resident - active", |m| m.resident_minus_active),
    ] {
        rows.push(Row::new(
            format!("{name} mean"),
            all(&|m| pick(m).map(|s| s.mean)),
            mib,
            true,
        ));
        rows.push(Row::new(
            format!("{name} max"),
            all(&|m| pick(m).map(|s| s.max)),
            mib,
            true,
        ));
        rows.push(Row::new(
            format!("{name} std dev"),
            all(&|m| pick(m).map(|s| s.std_dev)),
            mib,
            true,
        ));
    }
    rows.push(Row::new(
        "minor page faults/request",
        all(&|m| m.minor_faults_per_request),
        one_decimal,
        true,
    ));
    rows.push(Row::new(
        "pool shrinks/request",
        all(&|m| m.shrinks_per_request),
        ratio,
        true,
    ));
    rows.push(Row::new(
        "pool regrows/request",
        all(&|m| m.regrows_per_request),
        ratio,
        true,
    ));
    rows.push(Row::new(
        "pool returns over the max",
        all(&|m| m.over_max_ratio),
        percent,
        false,
    ));
    rows.push(Row::new(
        "pool idle bytes max",
        all(&|m| m.idle_bytes.map(|idle| idle.max)),
        mib,
        true,
    ));
    rows.push(Row::new(
        "pool hit ratio",
        all(&|m| m.pool_hit_ratio),
        ratio,
        false,
    ));
    let mut reasons: Vec<&String> = modes.iter().flat_map(|m| m.discards.keys()).collect();
    reasons.sort();
    reasons.dedup();
    for reason in reasons {
        rows.push(Row::new(
            format!("pool discards: {reason}"),
            all(&|m| m.discards.get(reason).copied()),
            count,
            false,
        ));
    }
    rows.push(Row::new(
        "recommended max buffer size",
        all(&|m| m.recommended_max_buffer_size),
        mib,
        false,
    ));
    rows
}

impl Row {
    fn new(
        label: impl Into<String>,
        values: Vec<Option<f64>>,
        format: fn(f64) -> String,
        change: bool,
    ) -> Self {
        Self {
            label: label.into(),
            values,
            format,
            change,
        }
    }

    /// The cells under [`headings`]: each mode's value, then each change against a baseline
    /// (empty where the row shows none).
    pub(super) fn cells(&self, modes: &[ModeSummary]) -> Vec<String> {
        let value_of = |name: &str| {
            modes
                .iter()
                .position(|mode| mode.mode == name)
                .and_then(|index| self.values[index])
        };
        let values = self
            .values
            .iter()
            .map(|value| value.map_or_else(|| "-".to_owned(), self.format));
        let changes = modes.iter().filter_map(|mode| {
            let baseline = mode.baseline?;
            Some(match (value_of(baseline), value_of(mode.mode)) {
                (Some(from), Some(to)) if self.change && from.abs() > f64::EPSILON => {
                    format!("{:+.0}%", (to - from) / from * 100.0)
                }
                _ => String::new(),
            })
        });
        values.chain(changes).collect()
    }
}

/// The heading of the verdicts.
pub(super) const VERDICTS_HEADING: &str = "targets of a default run";

/// How the verdicts are read, in a sentence.
pub(super) fn verdicts_method(verdicts: &[Verdict]) -> String {
    let confidence = verdicts.first().map_or(0.95, |v| v.confidence);
    format!(
        "each figure once per round of slices, then its median over the rounds with a {:.0}% \
         bootstrap interval; inconclusive while the interval straddles the target or fewer \
         than 3 rounds measured it",
        confidence * 100.0
    )
}

/// A verdict in words, without its state.
pub(super) fn verdict_text(verdict: &Verdict) -> String {
    let (side, target) = match verdict.goal {
        Goal::AtLeast(target) => ("at least", target),
        Goal::AtMost(target) => ("at most", target),
    };
    let figure = match (verdict.median, verdict.interval) {
        (Some(median), Some([low, high])) => format!(
            "{} (interval {} to {}, {} rounds)",
            percent(median),
            percent(low),
            percent(high),
            verdict.rounds
        ),
        _ => "not measured".to_owned(),
    };
    let format = spread_format(verdict.metric);
    let medians: Vec<String> = verdict
        .medians
        .iter()
        .map(|ModeMedian { mode, median }| {
            format!("{mode} {}", median.map_or_else(|| "-".to_owned(), format))
        })
        .collect();
    format!(
        "{}: {} = {figure}; target: {side} {}; median per slice of {}: {}",
        verdict.name,
        verdict.figure,
        percent(target),
        verdict.metric,
        medians.join(", ")
    )
}

/// The headings of [`candidate_rows`].
pub(super) const CANDIDATE_HEADINGS: [&str; 6] = [
    "candidate",
    "max",
    "returns over it",
    "regrow copies",
    "idle memory bound",
    "measured by the modes that ran it",
];

/// Per candidate of the pool: its role (and whether tuned ran it), the max, the pool's costs
/// over its window, and what the modes that ran it measured: their share of returns over the
/// max and their peak idle bytes, the measured sides of the first and last costs.
pub(super) fn candidate_rows(candidates: &[Candidate]) -> Vec<[String; 6]> {
    candidates
        .iter()
        .map(|candidate| {
            let role = if candidate.applied {
                format!("{} (applied)", candidate.role)
            } else {
                candidate.role.to_owned()
            };
            let ran: Vec<String> = candidate
                .ran
                .iter()
                .map(|run| {
                    let over = run.over_max_ratio.map_or_else(|| "-".to_owned(), percent);
                    let idle = run.idle_bytes_max.map_or_else(|| "-".to_owned(), mib);
                    format!("{}: {over} over, idle max {idle}", run.mode)
                })
                .collect();
            [
                role,
                size(candidate.max_buffer_size),
                percent(candidate.over_max_ratio),
                mib_per_s(candidate.regrow_bytes_per_second),
                mib(candidate.idle_bytes_bound),
                if ran.is_empty() {
                    "not run".to_owned()
                } else {
                    ran.join("; ")
                },
            ]
        })
        .collect()
}

/// Per tuned setting: key, value, where it came from.
pub(super) fn tuned_rows(tuned: &Tuned) -> Vec<[String; 3]> {
    let pool = tuned.pool.iter().map(|(key, value)| {
        let from = if tuned.recommendation.contains_key(key) {
            "the pooled service's recommendation"
        } else {
            "the pooled default"
        };
        [(*key).to_owned(), format!("{value:.0}"), from.to_owned()]
    });
    let jemalloc = tuned.jemalloc.iter().map(|(key, value)| {
        [
            format!("jemalloc {key}"),
            format!("{value:.0}"),
            "compare's --tuned-* options".to_owned(),
        ]
    });
    pool.chain(jemalloc).collect()
}

/// Auto's tuning settings in words.
pub(super) fn auto_tuning(auto: &Auto) -> String {
    let value = |key: &str| auto.tuning.get(key).copied().unwrap_or(f64::NAN);
    format!(
        "auto_tune on from the pooled defaults: cooldown {:.0} s, hysteresis {}, \
         recommendation window {:.0} s",
        value("cooldown_seconds"),
        percent(value("hysteresis")),
        value("recommendation_window_seconds")
    )
}

/// Per setting: key, start, auto after the warm-up, tuned, auto / tuned, moves, bounds.
pub(super) fn auto_rows(auto: &Auto, tuned: &Tuned) -> Vec<[String; 7]> {
    let number = |value: Option<&f64>| value.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"));
    auto.start
        .keys()
        .map(|key| {
            [
                (*key).to_owned(),
                number(auto.start.get(key)),
                number(auto.after_warmup.get(key)),
                number(tuned.pool.get(key)),
                auto.vs_tuned
                    .get(key)
                    .map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.2}")),
                number(auto.moves_after_warmup.get(key)),
                auto.bounds
                    .get(key)
                    .map_or_else(String::new, |[low, high]| format!("{low:.0} ..= {high:.0}")),
            ]
        })
        .collect()
}

/// Whether auto moved and settled by the end of the warm-up, and where it ended, in words.
pub(super) fn auto_verdicts(auto: &Auto) -> Vec<String> {
    let mut lines = Vec::new();
    if auto.moved {
        lines.push(
            "auto moved off the pooled defaults during the warm-up; auto/tuned may differ from \
             1 by a fine bucket (up to 19.8 %) or the hysteresis band: auto takes the target \
             that held through its cooldown and ignores smaller moves"
                .to_owned(),
        );
    } else {
        lines.push(
            "auto had NOT moved: every setting was still the pooled default at the end of the \
             warm-up, so the auto column ran the defaults"
                .to_owned(),
        );
    }
    if !auto.settled {
        lines.push(
            "auto had NOT settled: a target still lay outside the band, waiting out its \
             cooldown, when the wait after the warm-up ran out"
                .to_owned(),
        );
    }
    lines.push(
        "auto runs jemalloc's defaults, as pooled does (tuned adds the --tuned-* decay \
         settings): its column against pooled's shows what auto-tuning alone changes"
            .to_owned(),
    );
    let end: Vec<String> = auto
        .at_end
        .iter()
        .map(|(key, value)| {
            let moves = auto.moves_at_end.get(key).copied().unwrap_or(0.0);
            format!("{key} {value:.0} (moves: {moves:.0})")
        })
        .collect();
    lines.push(format!("after the last slice: {}", end.join(", ")));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::summary::State;

    fn mode(name: &'static str, baseline: Option<&'static str>, rate: f64) -> ModeSummary {
        ModeSummary {
            mode: name,
            baseline,
            requests_per_second: rate,
            ..ModeSummary::default()
        }
    }

    #[test]
    fn changes_follow_each_mode_baseline_by_name() {
        // A fifth mode and an order of modes the report has never seen.
        let modes = [
            mode("tuned", Some("pooled"), 90.0),
            mode("unpooled", None, 200.0),
            mode("pooled", Some("unpooled"), 100.0),
            mode("pooled+decay", Some("pooled"), 110.0),
        ];
        let headings: Vec<String> = headings(&modes)
            .into_iter()
            .map(|h| format!("{} {}", h.top, h.bottom).trim().to_owned())
            .collect();
        assert_eq!(
            headings[4..],
            [
                "tuned vs pooled",
                "pooled vs unpooled",
                "pooled+decay vs pooled"
            ]
        );
        let rate = rows(&modes)
            .into_iter()
            .find(|row| row.label == "requests/s")
            .unwrap();
        assert_eq!(
            rate.cells(&modes),
            ["90.0", "200.0", "100.0", "110.0", "-10%", "-50%", "+10%"]
        );
    }

    #[test]
    fn a_verdict_reads_its_figure_interval_target_and_medians() {
        let verdict = Verdict {
            name: "resident peak",
            metric: "jemalloc resident p95",
            figure: "tuned / pooled",
            goal: Goal::AtMost(1.0),
            medians: vec![
                ModeMedian {
                    mode: "pooled",
                    median: Some(25.0 * 1048576.0),
                },
                ModeMedian {
                    mode: "tuned",
                    median: None,
                },
            ],
            rounds: 8,
            median: Some(1.2),
            interval: Some([0.95, 1.31]),
            confidence: 0.95,
            state: State::Inconclusive,
        };
        assert_eq!(
            verdict_text(&verdict),
            "resident peak: tuned / pooled = 120.0% (interval 95.0% to 131.0%, 8 rounds); \
             target: at most 100.0%; median per slice of jemalloc resident p95: pooled 25.0 \
             MiB, tuned -"
        );
    }

    #[test]
    fn candidates_read_the_pools_costs_beside_what_their_modes_measured() {
        use crate::compare::summary::CandidateRun;
        let candidate = |role, max, applied, ran| Candidate {
            role,
            max_buffer_size: max,
            over_max_ratio: 0.05,
            regrow_bytes_per_second: 2.0 * 1048576.0,
            idle_bytes_bound: 8.0 * max,
            applied,
            ran,
        };
        let rows = candidate_rows(&[
            candidate("lower", 1_245_184.0, false, Vec::new()),
            candidate(
                "recommended",
                1_490_944.0,
                true,
                vec![CandidateRun {
                    mode: "tuned",
                    over_max_ratio: Some(0.048),
                    idle_bytes_max: Some(6.0 * 1048576.0),
                }],
            ),
        ]);
        assert_eq!(rows[0][0], "lower");
        assert_eq!(rows[0][5], "not run");
        assert_eq!(
            rows[1],
            [
                "recommended (applied)",
                "1.42 MiB",
                "5.0%",
                "2.0 MiB/s",
                "11.4 MiB",
                "tuned: 4.8% over, idle max 6.0 MiB"
            ]
        );
    }
}
