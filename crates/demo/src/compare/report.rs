//! The comparison as a text table and as a self-contained HTML page with inline SVG charts.

use std::fmt::Write as _;
use std::path::Path;

use super::summary::{Comparison, ModeSummary, OverTime, Point};
use crate::Error;

const MIB: f64 = 1024.0 * 1024.0;
const KIB: f64 = 1024.0;

/// Colours of the two modes in the charts: pooling off, pooling on.
const COLOURS: [&str; 2] = ["#d1495b", "#2e86ab"];

/// A row of the table: a label and each mode's value, formatted by `format`.
struct Row {
    label: String,
    values: [Option<f64>; 2],
    format: fn(f64) -> String,
    /// Whether to show the relative change from off to on.
    change: bool,
}

fn rows(modes: &[ModeSummary; 2]) -> Vec<Row> {
    let both = |f: &dyn Fn(&ModeSummary) -> Option<f64>| [f(&modes[0]), f(&modes[1])];
    let mut rows = vec![
        Row::new(
            "requests (ok)",
            both(&|m| Some(m.requests as f64)),
            count,
            false,
        ),
        Row::new(
            "requests/s",
            both(&|m| Some(m.requests_per_second)),
            one_decimal,
            true,
        ),
        Row::new(
            "latency p50 (ms)",
            both(&|m| m.latency_ms.get("p50").copied()),
            one_decimal,
            true,
        ),
        Row::new(
            "latency p99 (ms)",
            both(&|m| m.latency_ms.get("p99").copied()),
            one_decimal,
            true,
        ),
        Row::new(
            "allocated bytes/s",
            both(&|m| m.alloc_bytes_per_second),
            mib_per_s,
            true,
        ),
        Row::new(
            "allocations/s",
            both(&|m| m.allocations_per_second),
            count,
            true,
        ),
        Row::new(
            "allocated bytes/request",
            both(&|m| m.alloc_bytes_per_request),
            kib,
            true,
        ),
        Row::new(
            "allocations/request",
            both(&|m| m.allocations_per_request),
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
            both(&|m| pick(m).map(|s| s.mean)),
            mib,
            true,
        ));
        rows.push(Row::new(
            format!("{name} max"),
            both(&|m| pick(m).map(|s| s.max)),
            mib,
            true,
        ));
        rows.push(Row::new(
            format!("{name} std dev"),
            both(&|m| pick(m).map(|s| s.std_dev)),
            mib,
            true,
        ));
    }
    rows.push(Row::new(
        "minor page faults/request",
        both(&|m| m.minor_faults_per_request),
        one_decimal,
        true,
    ));
    rows.push(Row::new(
        "pool hit ratio",
        both(&|m| m.pool_hit_ratio),
        ratio,
        false,
    ));
    let reasons: Vec<&String> = modes[1].discards.keys().collect();
    for reason in reasons {
        rows.push(Row::new(
            format!("pool discards: {reason}"),
            both(&|m| m.discards.get(reason).copied()),
            count,
            false,
        ));
    }
    rows.push(Row::new(
        "recommended max buffer size",
        both(&|m| m.recommended_max_buffer_size),
        mib,
        false,
    ));
    rows
}

impl Row {
    fn new(
        label: impl Into<String>,
        values: [Option<f64>; 2],
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

    fn cells(&self) -> [String; 3] {
        let cell = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), self.format);
        let change = match self.values {
            [Some(off), Some(on)] if self.change && off.abs() > f64::EPSILON => {
                format!("{:+.0}%", (on - off) / off * 100.0)
            }
            _ => String::new(),
        };
        [cell(self.values[0]), cell(self.values[1]), change]
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

fn kib(value: f64) -> String {
    format!("{:.1} KiB", value / KIB)
}

fn mib(value: f64) -> String {
    format!("{:.1} MiB", value / MIB)
}

fn mib_per_s(value: f64) -> String {
    format!("{:.1} MiB/s", value / MIB)
}

impl Comparison {
    /// The side-by-side table `compare` prints: pooling off then on, with the relative change.
    pub fn table(&self) -> String {
        let modes = &self.modes;
        let mut out = format!(
            "{:<32} {:>16} {:>16} {:>8}\n",
            "", "pooling off", "pooling on", "change"
        );
        for row in rows(modes) {
            let [off, on, change] = row.cells();
            let _ = writeln!(out, "{:<32} {off:>16} {on:>16} {change:>8}", row.label);
        }
        for mode in modes {
            for (kind, n) in &mode.errors {
                let _ = writeln!(out, "errors with pooling {}: {n} x {kind}", mode.pooling);
            }
        }
        for (mode, svg) in self.modes.iter().zip(&self.heap_profiles) {
            let _ = writeln!(
                out,
                "where the heap is, pooling {}: {}",
                mode.pooling,
                svg.display()
            );
        }
        out
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Writes the HTML report to `path` (creating its folder).
pub(super) fn write_html(comparison: &Comparison, path: &Path) -> Result<(), Error> {
    let write_error = |source| Error::Write {
        path: path.to_owned(),
        source,
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
         <title>heapscape: pooling off vs on</title><style>\
         body{font-family:system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222}\
         table{border-collapse:collapse}td,th{padding:.2em .8em;border-bottom:1px solid #ddd}\
         td{text-align:right}td:first-child{text-align:left}\
         .charts{display:grid;grid-template-columns:1fr 1fr;gap:1em}\
         svg{background:#fafafa;border:1px solid #eee}</style></head><body>\n",
    );
    let _ = write!(
        page,
        "<h1>heapscape: the speech service with pooling off and on</h1>\n<p>The same seeded \
         load (seed {}, {} requests in flight, {:.0} s per mode) ran against each service in \
         turn, so they did not compete for the CPU. Heap gauges come from jemalloc, sampled \
         every second by the heartbeat; allocation counts from the counting allocator.</p>\n",
        comparison.seed, comparison.concurrency, modes[0].load_seconds
    );
    page.push_str(
        "<table><tr><th></th><th>pooling off</th><th>pooling on</th><th>change</th></tr>\n",
    );
    for row in rows(modes) {
        let [off, on, change] = row.cells();
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td>{off}</td><td>{on}</td><td>{change}</td></tr>",
            escape(&row.label)
        );
    }
    page.push_str("</table>\n");
    for mode in modes {
        for (kind, n) in &mode.errors {
            let _ = writeln!(
                page,
                "<p><strong>errors with pooling {}: {n} x {}</strong></p>",
                mode.pooling,
                escape(kind)
            );
        }
    }
    page.push_str("<div class=\"charts\">\n");
    let series = |pick: fn(&Point) -> f64| -> Vec<(String, Vec<(f64, f64)>)> {
        modes
            .iter()
            .map(|mode| {
                let points = mode.timeline.iter().map(|p| (p.t, pick(p) / MIB)).collect();
                (format!("pooling {}", mode.pooling), points)
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
    page.push_str("</div>\n<p>x axis: seconds since the mode's load started.</p>\n");
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
            "<h3>pooling {}</h3><object type=\"image/svg+xml\" data=\"{name}\" \
             width=\"100%\"><a href=\"{name}\">{name}</a></object>",
            mode.pooling
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
        let x = LEFT + 150.0 * index as f64;
        let _ = write!(
            svg,
            "<rect x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"11\">{}</text>",
            HEIGHT - 14.0,
            COLOURS[index % 2],
            x + 14.0,
            HEIGHT - 5.0,
            escape(label)
        );
    }
}

/// A line chart of each series' (x, y) points, x from 0.
fn line_chart(title: &str, series: &[(String, Vec<(f64, f64)>)]) -> String {
    let points = series.iter().flat_map(|(_, points)| points);
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
    for (index, (_, points)) in series.iter().enumerate() {
        let coordinates: Vec<String> = points
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
            COLOURS[index % 2],
            coordinates.join(" ")
        );
    }
    let labels: Vec<String> = series.iter().map(|(label, _)| label.clone()).collect();
    legend(&mut svg, &labels);
    svg.push_str("</svg>\n");
    svg
}

/// Grouped bars of the latency quantiles of both modes.
fn latency_chart(modes: &[ModeSummary; 2]) -> String {
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
                x0 + group_w * (0.15 + 0.35 * index as f64),
                HEIGHT - BOTTOM - h,
                group_w * 0.33,
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
    let labels: Vec<String> = modes
        .iter()
        .map(|m| format!("pooling {}", m.pooling))
        .collect();
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
        let svg = line_chart("a <b>", &[("x&y".to_owned(), Vec::new())]);
        assert!(svg.contains("a &lt;b&gt;") && svg.contains("x&amp;y"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    }
}
