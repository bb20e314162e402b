//! The page's charts as inline SVG: a line chart of each mode's slices, the returned lengths
//! as bars with markers, grouped latency bars; each mode in its colour.

use std::fmt::Write as _;

use super::format::{escape, size};
use crate::compare::summary::{ModeSummary, Sizes};

const WIDTH: f64 = 460.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 44.0;
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
const PLOT_H: f64 = HEIGHT - TOP - BOTTOM;

/// The colour of the mode named `mode` in every chart.
pub(super) fn colour(mode: &str) -> &'static str {
    match mode {
        "unpooled" => "#d1495b",
        "pooled" => "#2e86ab",
        "tuned" => "#3c9d5d",
        "auto" => "#e09f3e",
        _ => "#6c5b7b",
    }
}

/// A chart's series: its mode's name and its segments (one per slice) of (x, y) points.
pub(super) type Series = (String, Vec<Vec<(f64, f64)>>);

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

fn frame(title: &str, y_max: f64) -> String {
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         role=\"img\" aria-label=\"{title}\"><text x=\"{LEFT}\" y=\"18\" font-size=\"14\">{title}</text>",
        title = escape(title)
    );
    for i in 0..=4 {
        let value = y_max * f64::from(i) / 4.0;
        let y = HEIGHT - BOTTOM - PLOT_H * f64::from(i) / 4.0;
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

/// A legend of the modes named `modes`, each in its colour.
fn legend<'a>(svg: &mut String, modes: impl Iterator<Item = &'a str>) {
    for (index, mode) in modes.enumerate() {
        let x = LEFT + 100.0 * index as f64;
        let _ = write!(
            svg,
            "<rect x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"11\">{}</text>",
            HEIGHT - 14.0,
            colour(mode),
            x + 14.0,
            HEIGHT - 5.0,
            escape(mode)
        );
    }
}

/// A line chart of each series' segments of (x, y) points (one polyline per segment), x from 0.
pub(super) fn line_chart(title: &str, series: &[Series]) -> String {
    let points = series
        .iter()
        .flat_map(|(_, segments)| segments.iter().flatten());
    let x_max = nice_ceiling(points.clone().map(|p| p.0).fold(0.0, f64::max));
    let y_max = nice_ceiling(points.map(|p| p.1).fold(0.0, f64::max));
    let mut svg = frame(title, y_max);
    for i in 0..=4 {
        let x = LEFT + PLOT_W * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            "<text x=\"{x:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{} s</text>",
            HEIGHT - BOTTOM + 14.0,
            short_number(x_max * f64::from(i) / 4.0)
        );
    }
    for (mode, segments) in series {
        for segment in segments.iter().filter(|segment| !segment.is_empty()) {
            let coordinates: Vec<String> = segment
                .iter()
                .map(|(x, y)| {
                    format!(
                        "{:.1},{:.1}",
                        LEFT + PLOT_W * (x.max(0.0) / x_max),
                        HEIGHT - BOTTOM - PLOT_H * (y.max(0.0) / y_max)
                    )
                })
                .collect();
            // A slice with one sample is a dot: a polyline of one point draws nothing.
            let _ = if let [only] = coordinates.as_slice() {
                let (x, y) = only.split_once(',').unwrap_or_default();
                write!(
                    svg,
                    "<circle cx=\"{x}\" cy=\"{y}\" r=\"2\" fill=\"{}\"/>",
                    colour(mode)
                )
            } else {
                write!(
                    svg,
                    "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>",
                    colour(mode),
                    coordinates.join(" ")
                )
            };
        }
    }
    legend(&mut svg, series.iter().map(|(mode, _)| mode.as_str()));
    svg.push_str("</svg>\n");
    svg
}

/// Bars of the returned lengths per bucket (one bar per bucket, so the x axis is the bucket
/// scale), with the percentiles and the `maxima` (label, size, colour) marked.
pub(super) fn distribution_chart(
    sizes: &Sizes,
    maxima: &[(&str, Option<f64>, &'static str)],
) -> String {
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
    let mut svg = frame("returned lengths (% of returns per bucket)", y_max);
    let bar_w = PLOT_W / buckets.len().max(1) as f64;
    // The x position of a size: within the bucket whose bound first reaches it.
    let x_of = |value: f64| {
        let index = buckets
            .iter()
            .position(|(bound, _)| *bound >= value)
            .unwrap_or(buckets.len().saturating_sub(1));
        LEFT + bar_w * (index as f64 + 0.5)
    };
    for (index, (bound, count)) in buckets.iter().enumerate() {
        let h = PLOT_H * share(*count) / y_max;
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
            .iter()
            .filter_map(|(label, value, colour)| Some(((*label).to_owned(), (*value)?, *colour))),
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
pub(super) fn latency_chart(modes: &[ModeSummary]) -> String {
    const QUANTILES: [&str; 4] = ["p50", "p90", "p99", "max"];
    let value = |mode: &ModeSummary, q: &str| mode.latency_ms.get(q).copied().unwrap_or(0.0);
    let y_max = nice_ceiling(
        modes
            .iter()
            .flat_map(|mode| QUANTILES.map(|q| value(mode, q)))
            .fold(0.0, f64::max),
    );
    let mut svg = frame("latency (ms)", y_max);
    let group_w = PLOT_W / QUANTILES.len() as f64;
    let bar_w = 0.8 / modes.len().max(1) as f64;
    for (group, q) in QUANTILES.iter().enumerate() {
        let x0 = LEFT + group_w * group as f64;
        for (index, mode) in modes.iter().enumerate() {
            let h = PLOT_H * value(mode, q) / y_max;
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\"/>",
                x0 + group_w * (0.1 + bar_w * index as f64),
                HEIGHT - BOTTOM - h,
                group_w * bar_w * 0.9,
                colour(mode.mode)
            );
        }
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{q}</text>",
            x0 + group_w / 2.0,
            HEIGHT - BOTTOM + 14.0
        );
    }
    legend(&mut svg, modes.iter().map(|mode| mode.mode));
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

    #[test]
    fn modes_keep_their_colour_whatever_their_place() {
        let one = line_chart("t", &[("tuned".to_owned(), vec![vec![(0.0, 1.0)]])]);
        assert!(
            one.contains(colour("tuned")) && one.contains("<circle"),
            "{one}"
        );
        assert_ne!(colour("pooled+decay"), colour("pooled"));
    }
}
