//! The comparison as a text table and as a self-contained HTML page with inline SVG charts.

use std::fmt::Write as _;
use std::path::Path;

use super::summary::{Auto, Candidate, Comparison, ModeSummary, OverTime, Point, Sizes, Spread};
use crate::Error;

const MIB: f64 = 1024.0 * 1024.0;
const KIB: f64 = 1024.0;

/// Colours of the modes in the charts: unpooled, pooled, tuned, auto.
const COLOURS: [&str; 4] = ["#d1495b", "#2e86ab", "#3c9d5d", "#e09f3e"];

/// Share of pooled's allocation savings (bytes/s against unpooled) tuned must keep.
const KEPT_SAVINGS_TARGET: f64 = 0.85;

/// Cut of jemalloc allocated (mean) tuned must make against pooled.
const ALLOCATED_CUT_TARGET: f64 = 0.40;

/// A chart's series: its label and its segments (one per slice) of (x, y) points.
type Series = (String, Vec<Vec<(f64, f64)>>);

/// A row of the table: a label and each mode's value, formatted by `format`.
struct Row {
    label: String,
    values: [Option<f64>; 4],
    format: fn(f64) -> String,
    /// Whether to show the relative changes (pooled vs unpooled, tuned vs pooled, auto vs
    /// pooled: auto differs from pooled only in auto-tuning, while tuned also runs its own
    /// jemalloc decay settings).
    change: bool,
}

fn rows(modes: &[ModeSummary; 4]) -> Vec<Row> {
    let all = |f: &dyn Fn(&ModeSummary) -> Option<f64>| modes.each_ref().map(f);
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
        "pool hit ratio",
        all(&|m| m.pool_hit_ratio),
        ratio,
        false,
    ));
    let reasons: Vec<&String> = modes[1].discards.keys().collect();
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
        values: [Option<f64>; 4],
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

    fn cells(&self) -> [String; 7] {
        let cell = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), self.format);
        let change = |from: Option<f64>, to: Option<f64>| match (from, to) {
            (Some(from), Some(to)) if self.change && from.abs() > f64::EPSILON => {
                format!("{:+.0}%", (to - from) / from * 100.0)
            }
            _ => String::new(),
        };
        let [unpooled, pooled, tuned, auto] = self.values;
        [
            cell(unpooled),
            cell(pooled),
            cell(tuned),
            cell(auto),
            change(unpooled, pooled),
            change(pooled, tuned),
            change(pooled, auto),
        ]
    }
}

fn count(value: f64) -> String {
    format!("{value:.0}")
}

fn one_decimal(value: f64) -> String {
    format!("{value:.1}")
}

fn ratio(value: f64) -> String {
    format!("{value:.3}")
}

fn percent(value: f64) -> String {
    format!("{:.1}%", value * 100.0)
}

fn kib(value: f64) -> String {
    format!("{:.1} KiB", value / KIB)
}

fn mib(value: f64) -> String {
    format!("{:.1} MiB", value / MIB)
}

fn mib_per_s(value: f64) -> String {
    format!("{:.1} MiB/s", value / MIB)
}

/// A byte size as bytes below 1 KiB, KiB below 1 MiB, else MiB with two decimals (candidate
/// bounds can differ by less than a tenth of a MiB).
fn size(value: f64) -> String {
    if value < KIB {
        format!("{value:.0} B")
    } else if value < MIB {
        format!("{:.0} KiB", value / KIB)
    } else {
        format!("{:.2} MiB", value / MIB)
    }
}

/// The format of a spread metric's values.
fn spread_format(metric: &str) -> fn(f64) -> String {
    match metric {
        "allocated bytes/s" => mib_per_s,
        m if m.starts_with("jemalloc") => mib,
        _ => one_decimal,
    }
}

fn spread_cell(spread: Option<&Spread>, format: fn(f64) -> String) -> String {
    spread.map_or_else(
        || "-".to_owned(),
        |s| {
            format!(
                "{} / {} / {}",
                format(s.min),
                format(s.median),
                format(s.max)
            )
        },
    )
}

/// A check of a target of a default run, in words.
struct Target {
    text: String,
    met: Option<bool>,
}

fn targets(modes: &[ModeSummary; 4]) -> Vec<Target> {
    let [unpooled, pooled, tuned, _] = modes;
    let mut targets = Vec::new();
    let savings = match (
        unpooled.alloc_bytes_per_second,
        pooled.alloc_bytes_per_second,
        tuned.alloc_bytes_per_second,
    ) {
        (Some(u), Some(p), Some(t)) if u > p => Some(((u - t) / (u - p), t / u)),
        _ => None,
    };
    targets.push(Target {
        text: savings.map_or_else(
            || "allocation savings: no allocation rate measured".to_owned(),
            |(kept, share)| {
                format!(
                    "tuned keeps {} of pooled's allocation savings (allocated bytes/s at {} of \
                     unpooled's; target: at least {})",
                    percent(kept),
                    percent(share),
                    percent(KEPT_SAVINGS_TARGET)
                )
            },
        ),
        met: savings.map(|(kept, _)| kept >= KEPT_SAVINGS_TARGET),
    });
    let mean = |m: &ModeSummary| m.allocated.map(|a| a.mean);
    let cut = mean(pooled)
        .zip(mean(tuned))
        .filter(|(p, _)| *p > 0.0)
        .map(|(p, t)| 1.0 - t / p);
    targets.push(Target {
        text: cut.map_or_else(
            || "jemalloc allocated: not measured".to_owned(),
            |cut| {
                format!(
                    "tuned cuts jemalloc allocated (mean) by {} against pooled (target: at \
                     least {})",
                    percent(cut),
                    percent(ALLOCATED_CUT_TARGET)
                )
            },
        ),
        met: cut.map(|cut| cut >= ALLOCATED_CUT_TARGET),
    });
    for (name, pick) in [
        ("mean", (|o: OverTime| o.mean) as fn(OverTime) -> f64),
        ("max", |o| o.max),
    ] {
        let pair = pooled
            .resident
            .zip(tuned.resident)
            .map(|(p, t)| (pick(p), pick(t)));
        targets.push(Target {
            text: pair.map_or_else(
                || format!("jemalloc resident {name}: not measured"),
                |(p, t)| {
                    format!(
                        "tuned jemalloc resident {name} {} vs pooled {} (target: at or below)",
                        mib(t),
                        mib(p)
                    )
                },
            ),
            met: pair.map(|(p, t)| t <= p),
        });
    }
    targets
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "unknown",
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

impl Comparison {
    /// The pooled default's max buffer size.
    fn default_max(&self) -> f64 {
        self.tuned
            .defaults
            .get("max_buffer_size")
            .copied()
            .unwrap_or(0.0)
    }

    /// The side-by-side table `compare` prints: unpooled, pooled, tuned and auto with the
    /// relative changes, the spread across slices, the tuned settings, auto's settings beside
    /// them, the returned lengths with the candidates' costs, and the targets.
    pub fn table(&self) -> String {
        let modes = &self.modes;
        let mut out = format!(
            "{:<32} {:>14} {:>14} {:>14} {:>14} {:>10} {:>10} {:>10}\n",
            "", "unpooled", "pooled", "tuned", "auto", "pooled vs", "tuned vs", "auto vs"
        );
        let _ = writeln!(
            out,
            "{:<32} {:>14} {:>14} {:>14} {:>14} {:>10} {:>10} {:>10}",
            "", "", "(defaults)", "(recommended)", "(auto-tuned)", "unpooled", "pooled", "pooled"
        );
        for row in rows(modes) {
            let [
                unpooled,
                pooled,
                tuned,
                auto,
                pooled_change,
                tuned_change,
                auto_change,
            ] = row.cells();
            let _ = writeln!(
                out,
                "{:<32} {unpooled:>14} {pooled:>14} {tuned:>14} {auto:>14} {pooled_change:>10} \
                 {tuned_change:>10} {auto_change:>10}",
                row.label
            );
        }
        let _ = writeln!(
            out,
            "\nspread across {} slices of {:.0} s per mode (min / median / max):",
            self.slices, self.slice_seconds
        );
        let metrics: Vec<&str> = modes[0].slices.keys().copied().collect();
        for metric in metrics {
            let format = spread_format(metric);
            for mode in modes {
                let _ = writeln!(
                    out,
                    "  {metric:<26} {:<9} {}",
                    mode.mode,
                    spread_cell(mode.slices.get(metric), format)
                );
            }
        }
        let tuned = &self.tuned;
        let _ = writeln!(
            out,
            "\ntuned settings ({}; file {}):",
            tuned.applied_by,
            tuned.config_file.display()
        );
        for (key, value) in &tuned.pool {
            let from = if tuned.recommendation.contains_key(key) {
                "the pooled service's recommendation"
            } else {
                "the pooled default"
            };
            let _ = writeln!(out, "  {key:<22} {value:>12.0}  ({from})");
        }
        for (key, value) in &tuned.jemalloc {
            let _ = writeln!(out, "  jemalloc {key:<13} {value:>12.0}");
        }
        let auto = &self.auto;
        let _ = writeln!(
            out,
            "\nauto settings after the warm-up ({}; file {}):",
            auto_tuning(auto),
            auto.config_file.display()
        );
        let _ = writeln!(
            out,
            "  {:<18} {:>12} {:>12} {:>12} {:>10} {:>6}  bounds",
            "setting", "start", "auto", "tuned", "auto/tuned", "moves"
        );
        for [key, start, value, tuned, ratio, moves, bounds] in auto_rows(auto, tuned) {
            let _ = writeln!(
                out,
                "  {key:<18} {start:>12} {value:>12} {tuned:>12} {ratio:>10} {moves:>6}  {bounds}"
            );
        }
        for line in auto_verdicts(auto) {
            let _ = writeln!(out, "  {line}");
        }
        if let Some(sizes) = &self.sizes {
            let _ = writeln!(out, "\nreturned lengths (pooled service, warm-up):");
            for (name, value) in &sizes.percentiles {
                let _ = writeln!(out, "  {name} <= {}", size(*value));
            }
            let recommended = tuned.pool.get("max_buffer_size").copied().unwrap_or(0.0);
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
        let _ = writeln!(out, "\ntargets of a default run:");
        for target in targets(modes) {
            let _ = writeln!(out, "  {}: {}", verdict(target.met), target.text);
        }
        for mode in modes {
            for (kind, n) in &mode.errors {
                let _ = writeln!(out, "errors with {}: {n} x {kind}", mode.mode);
            }
        }
        for (mode, svg) in self.modes.iter().zip(&self.heap_profiles) {
            let _ = writeln!(out, "where the heap is, {}: {}", mode.mode, svg.display());
        }
        out
    }
}

/// Auto's tuning settings in words.
fn auto_tuning(auto: &Auto) -> String {
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
fn auto_rows(auto: &Auto, tuned: &super::summary::Tuned) -> Vec<[String; 7]> {
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
fn auto_verdicts(auto: &Auto) -> Vec<String> {
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

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Writes the HTML report to `path` (creating its folder).
pub(super) fn write_html(comparison: &Comparison, path: &Path) -> Result<(), Error> {
    let write_error = |error| Error::Write {
        path: path.to_owned(),
        error,
    };
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(write_error)?;
    }
    std::fs::write(path, html(comparison)).map_err(write_error)
}

fn html(comparison: &Comparison) -> String {
    let modes = &comparison.modes;
    let mut page = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>heapscape: unpooled, pooled, tuned, auto</title><style>\
         body{font-family:system-ui,sans-serif;margin:2em auto;max-width:64em;color:#222}\
         table{border-collapse:collapse;margin-bottom:1em}\
         td,th{padding:.2em .8em;border-bottom:1px solid #ddd}\
         td{text-align:right}td:first-child{text-align:left}\
         .charts{display:grid;grid-template-columns:1fr 1fr;gap:1em}\
         svg{background:#fafafa;border:1px solid #eee}</style></head><body>\n",
    );
    let _ = write!(
        page,
        "<h1>heapscape: the speech service unpooled, pooled, tuned and auto-tuned</h1>\n<p>The \
         same seeded load (seed {}, {} requests in flight) ran against four services in turn: \
         after {:.0} s of warm-up each, {} rounds of {:.0} s slices (unpooled, pooled, tuned, \
         auto, unpooled, ...), so a busy machine weighed on every mode alike. <em>Pooled</em> \
         runs the default pool; <em>tuned</em> runs the pooled service's recommendation after \
         the warm-up, {} (file <code>{}</code>); <em>auto</em> started from the default pool \
         with auto-tuning on and tuned itself on its heartbeat ticks (file <code>{}</code>). \
         Heap gauges come from jemalloc, sampled every second by the heartbeat; allocation \
         counts from the counting allocator.</p>\n",
        comparison.seed,
        comparison.concurrency,
        comparison.warmup_seconds,
        comparison.slices,
        comparison.slice_seconds,
        escape(comparison.tuned.applied_by),
        escape(&comparison.tuned.config_file.display().to_string()),
        escape(&comparison.auto.config_file.display().to_string()),
    );
    page.push_str(
        "<table><tr><th></th><th>unpooled</th><th>pooled (defaults)</th>\
         <th>tuned (recommended)</th><th>auto (auto-tuned)</th><th>pooled vs unpooled</th>\
         <th>tuned vs pooled</th><th>auto vs pooled</th></tr>\n",
    );
    for row in rows(modes) {
        let cells: Vec<String> = row
            .cells()
            .iter()
            .map(|cell| format!("<td>{cell}</td>"))
            .collect();
        let _ = writeln!(
            page,
            "<tr><td>{}</td>{}</tr>",
            escape(&row.label),
            cells.concat()
        );
    }
    page.push_str("</table>\n<h2>Targets</h2>\n<ul>\n");
    for target in targets(modes) {
        let _ = writeln!(
            page,
            "<li><strong>{}</strong>: {}</li>",
            verdict(target.met),
            escape(&target.text)
        );
    }
    page.push_str("</ul>\n");
    let _ = writeln!(
        page,
        "<h2>Spread across the {} slices (min / median / max)</h2>\n<table><tr><th></th>\
         <th>unpooled</th><th>pooled</th><th>tuned</th><th>auto</th></tr>",
        comparison.slices
    );
    let metrics: Vec<&str> = modes[0].slices.keys().copied().collect();
    for metric in metrics {
        let format = spread_format(metric);
        let cells: Vec<String> = modes
            .iter()
            .map(|mode| format!("<td>{}</td>", spread_cell(mode.slices.get(metric), format)))
            .collect();
        let _ = writeln!(
            page,
            "<tr><td>{}</td>{}</tr>",
            escape(metric),
            cells.concat()
        );
    }
    page.push_str(
        "</table>\n<h2>The tuned settings and why</h2>\n<table><tr><th>setting</th>\
                   <th>value</th><th>from</th></tr>\n",
    );
    let tuned = &comparison.tuned;
    for (key, value) in &tuned.pool {
        let from = if tuned.recommendation.contains_key(key) {
            "the pooled service's recommendation"
        } else {
            "the pooled default"
        };
        let _ = writeln!(
            page,
            "<tr><td>{key}</td><td>{value:.0}</td><td>{from}</td></tr>"
        );
    }
    for (key, value) in &tuned.jemalloc {
        let _ = writeln!(
            page,
            "<tr><td>jemalloc {key}</td><td>{value:.0}</td><td>compare's --tuned-* options</td></tr>"
        );
    }
    page.push_str("</table>\n");
    let auto = &comparison.auto;
    let _ = writeln!(
        page,
        "<h2>The auto-tuned settings beside the tuned ones</h2>\n<p>After the warm-up; {}.</p>\n\
         <table><tr><th>setting</th><th>start</th><th>auto</th><th>tuned</th>\
         <th>auto / tuned</th><th>moves</th><th>bounds</th></tr>",
        escape(&auto_tuning(auto))
    );
    for row in auto_rows(auto, tuned) {
        let cells: Vec<String> = row
            .iter()
            .map(|cell| format!("<td>{}</td>", escape(cell)))
            .collect();
        let _ = writeln!(page, "<tr>{}</tr>", cells.concat());
    }
    page.push_str("</table>\n<ul>\n");
    for line in auto_verdicts(auto) {
        let _ = writeln!(page, "<li>{}</li>", escape(&line));
    }
    page.push_str("</ul>\n");
    if let Some(sizes) = &comparison.sizes {
        page.push_str(
            "<p>Returned lengths of the pooled service over the warm-up, by histogram bucket, \
             with the percentiles and the candidate maxima. For a candidate max, the returns \
             over it regrow (a copy of about the max each); the idle memory it implies is at \
             most <code>min(max_idle_buffers, max_idle_bytes / max) &times; max</code>.</p>\n",
        );
        page.push_str(&distribution_chart(
            sizes,
            [
                ("tuned max", tuned.pool.get("max_buffer_size"), COLOURS[2]),
                (
                    "auto max",
                    auto.after_warmup.get("max_buffer_size"),
                    COLOURS[3],
                ),
                ("default max", Some(&comparison.default_max()), COLOURS[1]),
            ],
        ));
        page.push_str(
            "<table><tr><th>candidate max</th><th>returns over it</th><th>regrow copies</th>\
             <th>idle memory bound</th></tr>\n",
        );
        for candidate in &sizes.candidates {
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                size(candidate.max_buffer_size),
                percent(candidate.share_over),
                mib_per_s(candidate.regrow_bytes_per_second),
                mib(candidate.idle_bytes_bound)
            );
        }
        page.push_str("</table>\n");
    }
    for mode in modes {
        for (kind, n) in &mode.errors {
            let _ = writeln!(
                page,
                "<p><strong>errors with {}: {n} x {}</strong></p>",
                mode.mode,
                escape(kind)
            );
        }
    }
    page.push_str("<div class=\"charts\">\n");
    let series = |pick: fn(&Point) -> f64| -> Vec<Series> {
        modes
            .iter()
            .map(|mode| {
                let mut slices: Vec<Vec<(f64, f64)>> = Vec::new();
                for point in &mode.timeline {
                    if slices.len() <= point.slice {
                        slices.resize(point.slice + 1, Vec::new());
                    }
                    slices[point.slice].push((point.t, pick(point) / MIB));
                }
                (mode.mode.to_owned(), slices)
            })
            .collect()
    };
    page.push_str(&line_chart(
        "jemalloc resident (MiB)",
        &series(|p| p.resident),
    ));
    page.push_str(&line_chart("jemalloc active (MiB)", &series(|p| p.active)));
    page.push_str(&line_chart(
        "jemalloc allocated (MiB)",
        &series(|p| p.allocated),
    ));
    page.push_str(&line_chart(
        "allocation rate (MiB/s)",
        &series(|p| p.alloc_rate),
    ));
    page.push_str(&latency_chart(modes));
    page.push_str(
        "</div>\n<p>x axis: seconds since the interleaved slices started; each line segment is \
         one slice of its mode.</p>\n",
    );
    heap_profiles(&mut page, comparison);
    page.push_str("</body></html>\n");
    page
}

/// Each mode's heap flame graph (feature `profiling`), linked by file name: they sit beside
/// the report.
fn heap_profiles(page: &mut String, comparison: &Comparison) {
    if comparison.heap_profiles.is_empty() {
        return;
    }
    page.push_str(
        "<h2>Where the heap is after the load</h2>\n<p>jemalloc's sampled in-use bytes by \
         allocating stack (click a frame to zoom).</p>\n",
    );
    for (mode, svg) in comparison.modes.iter().zip(&comparison.heap_profiles) {
        let name = escape(&svg.file_name().unwrap_or_default().to_string_lossy());
        let _ = writeln!(
            page,
            "<h3>{}</h3><object type=\"image/svg+xml\" data=\"{name}\" \
             width=\"100%\"><a href=\"{name}\">{name}</a></object>",
            escape(mode.mode)
        );
    }
}

const WIDTH: f64 = 460.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 44.0;

/// A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten, at least `max`.
fn nice_ceiling(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|step| step * power)
        .find(|bound| *bound >= max)
        .unwrap_or(10.0 * power)
}

fn chart_frame(title: &str, y_max: f64) -> String {
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         role=\"img\" aria-label=\"{title}\"><text x=\"{LEFT}\" y=\"18\" font-size=\"14\">{title}</text>",
        title = escape(title)
    );
    for i in 0..=4 {
        let value = y_max * f64::from(i) / 4.0;
        let y = HEIGHT - BOTTOM - (HEIGHT - TOP - BOTTOM) * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 4.0,
            y + 3.0,
            short_number(value)
        );
    }
    svg
}

fn short_number(value: f64) -> String {
    if value >= 100.0 || value == 0.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn legend(svg: &mut String, labels: &[String]) {
    for (index, label) in labels.iter().enumerate() {
        let x = LEFT + 100.0 * index as f64;
        let _ = write!(
            svg,
            "<rect x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"11\">{}</text>",
            HEIGHT - 14.0,
            COLOURS[index % COLOURS.len()],
            x + 14.0,
            HEIGHT - 5.0,
            escape(label)
        );
    }
}

/// A line chart of each series' segments of (x, y) points (one polyline per segment), x from 0.
fn line_chart(title: &str, series: &[Series]) -> String {
    let points = series
        .iter()
        .flat_map(|(_, segments)| segments.iter().flatten());
    let x_max = nice_ceiling(points.clone().map(|p| p.0).fold(0.0, f64::max));
    let y_max = nice_ceiling(points.map(|p| p.1).fold(0.0, f64::max));
    let mut svg = chart_frame(title, y_max);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    for i in 0..=4 {
        let x = LEFT + plot_w * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            "<text x=\"{x:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{} s</text>",
            HEIGHT - BOTTOM + 14.0,
            short_number(x_max * f64::from(i) / 4.0)
        );
    }
    for (index, (_, segments)) in series.iter().enumerate() {
        for segment in segments.iter().filter(|segment| !segment.is_empty()) {
            let coordinates: Vec<String> = segment
                .iter()
                .map(|(x, y)| {
                    format!(
                        "{:.1},{:.1}",
                        LEFT + plot_w * (x.max(0.0) / x_max),
                        HEIGHT - BOTTOM - plot_h * (y.max(0.0) / y_max)
                    )
                })
                .collect();
            let _ = write!(
                svg,
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>",
                COLOURS[index % COLOURS.len()],
                coordinates.join(" ")
            );
        }
    }
    let labels: Vec<String> = series.iter().map(|(label, _)| label.clone()).collect();
    legend(&mut svg, &labels);
    svg.push_str("</svg>\n");
    svg
}

/// Bars of the returned lengths per bucket (one bar per bucket, so the x axis is the bucket
/// scale), with the percentiles and the `maxima` (label, size, colour: tuned, auto and default)
/// marked.
fn distribution_chart(sizes: &Sizes, maxima: [(&str, Option<&f64>, &str); 3]) -> String {
    let buckets: Vec<(f64, f64)> = sizes
        .buckets
        .iter()
        .copied()
        .filter(|(bound, _)| bound.is_finite())
        .collect();
    let total: f64 = sizes.buckets.iter().map(|(_, count)| count).sum();
    let share = |count: f64| {
        if total > 0.0 {
            count / total * 100.0
        } else {
            0.0
        }
    };
    let y_max = nice_ceiling(buckets.iter().map(|(_, c)| share(*c)).fold(0.0, f64::max));
    let mut svg = chart_frame("returned lengths (% of returns per bucket)", y_max);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let bar_w = plot_w / buckets.len().max(1) as f64;
    // The x position of a size: within the bucket whose bound first reaches it.
    let x_of = |value: f64| {
        let index = buckets
            .iter()
            .position(|(bound, _)| *bound >= value)
            .unwrap_or(buckets.len().saturating_sub(1));
        LEFT + bar_w * (index as f64 + 0.5)
    };
    for (index, (bound, count)) in buckets.iter().enumerate() {
        let h = plot_h * share(*count) / y_max;
        let x = LEFT + bar_w * index as f64;
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#9bb\">\
             <title>up to {}: {count:.0}</title></rect>",
            x + bar_w * 0.1,
            HEIGHT - BOTTOM - h,
            bar_w * 0.8,
            escape(&size(*bound))
        );
    }
    let step = (buckets.len() / 6).max(1);
    for (index, (bound, _)) in buckets.iter().enumerate().step_by(step) {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"9\" text-anchor=\"middle\">{}</text>",
            LEFT + bar_w * (index as f64 + 0.5),
            HEIGHT - BOTTOM + 12.0,
            escape(&size(*bound))
        );
    }
    let mut markers: Vec<(String, f64, &str)> = sizes
        .percentiles
        .iter()
        .map(|(name, value)| ((*name).to_owned(), *value, "#555"))
        .collect();
    markers.extend(
        maxima
            .into_iter()
            .filter_map(|(label, value, colour)| Some((label.to_owned(), *value?, colour))),
    );
    for (row, (label, value, colour)) in markers.iter().enumerate() {
        let x = x_of(*value);
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{}\" stroke=\"{colour}\" \
             stroke-dasharray=\"4 3\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" \
             fill=\"{colour}\">{}</text>",
            HEIGHT - BOTTOM,
            x + 3.0,
            TOP + 12.0 + 11.0 * row as f64,
            escape(label)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// Grouped bars of the latency quantiles of the modes.
fn latency_chart(modes: &[ModeSummary; 4]) -> String {
    const QUANTILES: [&str; 4] = ["p50", "p90", "p99", "max"];
    let value = |mode: &ModeSummary, q: &str| mode.latency_ms.get(q).copied().unwrap_or(0.0);
    let y_max = nice_ceiling(
        modes
            .iter()
            .flat_map(|mode| QUANTILES.map(|q| value(mode, q)))
            .fold(0.0, f64::max),
    );
    let mut svg = chart_frame("latency (ms)", y_max);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let group_w = plot_w / QUANTILES.len() as f64;
    for (group, q) in QUANTILES.iter().enumerate() {
        let x0 = LEFT + group_w * group as f64;
        for (index, mode) in modes.iter().enumerate() {
            let h = plot_h * value(mode, q) / y_max;
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\"/>",
                x0 + group_w * (0.1 + 0.2 * index as f64),
                HEIGHT - BOTTOM - h,
                group_w * 0.18,
                COLOURS[index]
            );
        }
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{q}</text>",
            x0 + group_w / 2.0,
            HEIGHT - BOTTOM + 14.0
        );
    }
    let labels: Vec<String> = modes.iter().map(|m| m.mode.to_owned()).collect();
    legend(&mut svg, &labels);
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_bounds_are_round() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(17.0), 20.0);
        assert_eq!(nice_ceiling(100.0), 100.0);
        assert_eq!(nice_ceiling(0.07), 0.1);
        assert_eq!(nice_ceiling(f64::NAN), 1.0);
    }

    #[test]
    fn charts_escape_text_and_survive_empty_series() {
        let svg = line_chart("a <b>", &[("x&y".to_owned(), vec![Vec::new()])]);
        assert!(svg.contains("a &lt;b&gt;") && svg.contains("x&amp;y"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    }
}
