//! The self-contained HTML page: the same sections as the table, with the charts.

use std::fmt::Write as _;
use std::path::Path;

use super::format::{MIB, escape, spread_cell, spread_format};
use super::rows;
use super::svg::{self, Series};
use crate::Error;
use crate::compare::summary::{Comparison, Point, State};

const STYLE: &str = "<style>\
     body{font-family:system-ui,sans-serif;margin:2em auto;max-width:72em;color:#222}\
     table{border-collapse:collapse;margin-bottom:1em;font-size:.9em}\
     td,th{padding:.2em .5em;border-bottom:1px solid #ddd}th{vertical-align:bottom}\
     td{text-align:right;white-space:nowrap}td:first-child{text-align:left;white-space:normal}\
     .met{color:#3c9d5d}.not_met{color:#d1495b}.inconclusive{color:#8a6d1f}\
     .charts{display:grid;grid-template-columns:1fr 1fr;gap:1em}\
     svg{background:#fafafa;border:1px solid #eee}</style>";

/// Writes the HTML report to `path` (creating its folder).
pub(in crate::compare) fn write_html(comparison: &Comparison, path: &Path) -> Result<(), Error> {
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
    let names: Vec<&str> = comparison.modes.iter().map(|mode| mode.mode).collect();
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>heapscape: {}</title>{STYLE}</head><body>\n",
        escape(&names.join(", "))
    );
    intro(&mut page, comparison);
    modes_table(&mut page, comparison);
    verdicts(&mut page, comparison);
    spread(&mut page, comparison);
    settings(&mut page, comparison);
    sizes(&mut page, comparison);
    for mode in &comparison.modes {
        for (kind, n) in &mode.errors {
            let _ = writeln!(
                page,
                "<p><strong>errors with {}: {n} x {}</strong></p>",
                escape(mode.mode),
                escape(kind)
            );
        }
    }
    charts(&mut page, comparison);
    heap_profiles(&mut page, comparison);
    page.push_str("</body></html>\n");
    page
}

fn intro(page: &mut String, comparison: &Comparison) {
    let _ = write!(
        page,
        "<h1>heapscape: the speech service unpooled, pooled, tuned and auto-tuned</h1>\n<p>The \
         same seeded load (seed {}, {} requests in flight) ran against {} services in turn: \
         after {:.0} s of warm-up each, {} rounds of {:.0} s slices, one slice of each mode per \
         round and the order rotating every round, so a busy machine weighed on every mode \
         alike. <em>Pooled</em> runs the default pool; <em>pooled+decay</em> the default pool \
         with tuned's jemalloc decay settings (against pooled: what the decay alone did); \
         <em>tuned</em> runs the pooled service's recommendation after the warm-up with those \
         decay settings (against pooled+decay: what the caps alone did), {} (file \
         <code>{}</code>); <em>auto</em> \
         started from the default pool with auto-tuning on and tuned itself on its heartbeat \
         ticks (file <code>{}</code>). Heap gauges come from jemalloc, sampled every second by \
         the heartbeat and counted in a slice by when it published them, the first publication \
         after each idle gap left out; allocation counts from the counting allocator, as rates \
         over each slice's own time.</p>\n",
        comparison.seed,
        comparison.concurrency,
        comparison.modes.len(),
        comparison.warmup_seconds,
        comparison.slices,
        comparison.slice_seconds,
        escape(comparison.tuned.applied_by),
        escape(&comparison.tuned.config_file.display().to_string()),
        escape(&comparison.auto.config_file.display().to_string()),
    );
}

/// A table row of `cells`, each in `tag`; the first cell is text to escape.
fn row(page: &mut String, tag: &str, cells: &[String]) {
    page.push_str("<tr>");
    for cell in cells {
        let _ = write!(page, "<{tag}>{}</{tag}>", escape(cell));
    }
    page.push_str("</tr>\n");
}

fn modes_table(page: &mut String, comparison: &Comparison) {
    let modes = &comparison.modes;
    let headings: Vec<String> = std::iter::once(String::new())
        .chain(
            rows::headings(modes)
                .into_iter()
                .map(|h| format!("{} {}", h.top, h.bottom).trim().to_owned()),
        )
        .collect();
    page.push_str("<table>");
    row(page, "th", &headings);
    for line in rows::rows(modes) {
        let cells: Vec<String> = std::iter::once(line.label.clone())
            .chain(line.cells(modes))
            .collect();
        row(page, "td", &cells);
    }
    page.push_str("</table>\n");
}

fn verdicts(page: &mut String, comparison: &Comparison) {
    let _ = writeln!(
        page,
        "<h2>Targets of a default run</h2>\n<p>How they are read: {}.</p>\n<ul>",
        escape(&rows::verdicts_method(&comparison.verdicts))
    );
    for verdict in &comparison.verdicts {
        let state = verdict.state;
        let class = match state {
            State::Met => "met",
            State::NotMet => "not_met",
            State::Inconclusive => "inconclusive",
        };
        let _ = writeln!(
            page,
            "<li><strong class=\"{class}\">{}</strong>: {}</li>",
            state.as_str(),
            escape(&rows::verdict_text(verdict))
        );
    }
    page.push_str("</ul>\n");
}

fn spread(page: &mut String, comparison: &Comparison) {
    let modes = &comparison.modes;
    let _ = writeln!(
        page,
        "<h2>Spread across the {} slices (min / median / max)</h2>\n<table>",
        comparison.slices
    );
    let headings: Vec<String> = std::iter::once(String::new())
        .chain(modes.iter().map(|mode| mode.mode.to_owned()))
        .collect();
    row(page, "th", &headings);
    let metrics: Vec<&str> = modes
        .first()
        .map(|mode| mode.slices.keys().copied().collect())
        .unwrap_or_default();
    for metric in metrics {
        let format = spread_format(metric);
        let cells: Vec<String> = std::iter::once(metric.to_owned())
            .chain(
                modes
                    .iter()
                    .map(|mode| spread_cell(mode.slices.get(metric), format)),
            )
            .collect();
        row(page, "td", &cells);
    }
    page.push_str("</table>\n");
}

fn settings(page: &mut String, comparison: &Comparison) {
    page.push_str("<h2>The tuned settings and why</h2>\n<table>");
    row(page, "th", &["setting", "value", "from"].map(str::to_owned));
    for cells in rows::tuned_rows(&comparison.tuned) {
        row(page, "td", &cells);
    }
    page.push_str("</table>\n");
    let auto = &comparison.auto;
    let _ = writeln!(
        page,
        "<h2>The auto-tuned settings beside the tuned ones</h2>\n<p>After the warm-up; {}.</p>\n\
         <table>",
        escape(&rows::auto_tuning(auto))
    );
    let headings = [
        "setting",
        "start",
        "auto",
        "tuned",
        "auto / tuned",
        "moves",
        "bounds",
    ];
    row(page, "th", &headings.map(str::to_owned));
    for cells in rows::auto_rows(auto, &comparison.tuned) {
        row(page, "td", &cells);
    }
    page.push_str("</table>\n<ul>\n");
    for line in rows::auto_verdicts(auto) {
        let _ = writeln!(page, "<li>{}</li>", escape(&line));
    }
    page.push_str("</ul>\n");
}

fn sizes(page: &mut String, comparison: &Comparison) {
    page.push_str("<h2>Returned lengths and the candidate max buffer sizes</h2>\n");
    if let Some(sizes) = &comparison.sizes {
        page.push_str(
            "<p>Returned lengths of the pooled service over the warm-up, in the pool's fine \
             buckets (four per octave), with the percentiles and the maxima the modes ran.</p>\n",
        );
        page.push_str(&svg::distribution_chart(
            sizes,
            &[
                (
                    "tuned max",
                    comparison.tuned.pool.get("max_buffer_size").copied(),
                    svg::colour("tuned"),
                ),
                (
                    "auto max",
                    comparison.auto.after_warmup.get("max_buffer_size").copied(),
                    svg::colour("auto"),
                ),
                (
                    "default max",
                    Some(comparison.default_max()),
                    svg::colour("pooled"),
                ),
            ],
        ));
    }
    if comparison.candidates.is_empty() {
        return;
    }
    page.push_str(
        "<p>The pooled service's own candidates after the warm-up (its \
         <code>heapscape_pool_candidate_*</code> gauges): the max in force, the recommendation \
         and one fine bucket either side, each costed by the pool over its window. Returns \
         over a candidate regrow their buffer by doubling from it; the idle memory it allows \
         is at most <code>min(max_idle_buffers, peak_held) &times; max</code>, capped by \
         <code>max_idle_bytes</code>. The last column is what the modes that ran the candidate \
         measured over their slices.</p>\n<table>",
    );
    row(page, "th", &rows::CANDIDATE_HEADINGS.map(str::to_owned));
    for cells in rows::candidate_rows(&comparison.candidates) {
        row(page, "td", &cells);
    }
    page.push_str("</table>\n");
}

fn charts(page: &mut String, comparison: &Comparison) {
    let series = |pick: fn(&Point) -> f64| -> Vec<Series> {
        comparison
            .modes
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
    page.push_str("<div class=\"charts\">\n");
    for (title, pick) in [
        (
            "jemalloc resident (MiB)",
            (|p: &Point| p.resident) as fn(&Point) -> f64,
        ),
        ("jemalloc active (MiB)", |p| p.active),
        ("jemalloc allocated (MiB)", |p| p.allocated),
        ("allocation rate (MiB/s)", |p| p.alloc_rate),
    ] {
        page.push_str(&svg::line_chart(title, &series(pick)));
    }
    page.push_str(&svg::latency_chart(&comparison.modes));
    page.push_str(
        "</div>\n<p>x axis: seconds since the interleaved slices started; each line segment is \
         one slice of its mode, a point per heartbeat publication.</p>\n",
    );
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
