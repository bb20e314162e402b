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
        "pooled+decay" => "#6c5b7b",
        _ => "#777",
    }
}

/// A chart's series: its mode's name and its segments (one per slice) of (x, y) points.
pub(super) type Series = (String, Vec<Vec<(f64, f64)>>);

/// A "nice" upper bound for an axis: 1, 2, 2.5 or 5 times a power of ten, at least `max` (2.5
/// keeps a run of a little over 200 s from taking half the chart's width empty).
fn nice_ceiling(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
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

/// Approximate width of `text` at `font_size` in the page's sans-serif font: enough to lay
/// out labels side by side without measuring them.
fn text_width(text: &str, font_size: f64) -> f64 {
    text.chars().count() as f64 * font_size * 0.6
}

/// A legend of the modes named `modes`, each in its colour, side by side as wide as each name.
fn legend<'a>(svg: &mut String, modes: impl Iterator<Item = &'a str>) {
    let mut x = LEFT;
    for mode in modes {
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{}\" font-size=\"11\">{}</text>",
            HEIGHT - 14.0,
            colour(mode),
            x + 14.0,
            HEIGHT - 5.0,
            escape(mode)
        );
        x += 14.0 + text_width(mode, 11.0) + 12.0;
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

/// Bars of the returned lengths per bucket on a log2 size axis (the fine buckets are about
/// equally wide on it), with the percentiles and the `maxima` (label, size, colour) marked at
/// their exact sizes. The axis reaches the largest marker, so a max above every return still
/// shows where it lies; markers at the same size share one line and one label.
pub(super) fn distribution_chart(
    sizes: &Sizes,
    maxima: &[(&str, Option<f64>, &'static str)],
) -> String {
    let buckets: Vec<(f64, f64)> = sizes
        .buckets
        .iter()
        .copied()
        .filter(|(bound, _)| bound.is_finite() && *bound > 0.0)
        .collect();
    let total: f64 = sizes.buckets.iter().map(|(_, count)| count).sum();
    let share = |count: f64| {
        if total > 0.0 {
            count / total * 100.0
        } else {
            0.0
        }
    };
    let mut markers: Vec<(String, f64, &str)> = Vec::new();
    let named = sizes
        .percentiles
        .iter()
        .map(|(name, value)| (*name, Some(*value), "#555"))
        .chain(maxima.iter().copied());
    for (label, value, colour) in named {
        let Some(value) = value.filter(|value| *value > 0.0) else {
            continue;
        };
        match markers.iter_mut().find(|(_, at, _)| *at == value) {
            Some((text, _, _)) => *text = format!("{text} = {label}"),
            None => markers.push((label.to_owned(), value, colour)),
        }
    }
    markers.sort_by(|a, b| a.1.total_cmp(&b.1));
    // The first bar spans from the bound below it, taken as a fine bucket (about 2^(1/4)).
    let low = buckets
        .first()
        .map_or(1.0, |(bound, _)| bound / 2f64.powf(0.25));
    let high = buckets
        .iter()
        .map(|(bound, _)| *bound)
        .chain(markers.iter().map(|(_, value, _)| *value))
        .fold(low * 2.0, f64::max);
    let span = (high / low).log2();
    let x_of = |value: f64| LEFT + PLOT_W * ((value.max(low) / low).log2() / span);

    let y_max = nice_ceiling(buckets.iter().map(|(_, c)| share(*c)).fold(0.0, f64::max));
    let mut svg = frame("returned lengths (% of returns per bucket)", y_max);
    let mut lower_edge = low;
    for (bound, count) in &buckets {
        let h = PLOT_H * share(*count) / y_max;
        let (x0, x1) = (x_of(lower_edge), x_of(*bound));
        let gap = (x1 - x0) * 0.1;
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#9bb\">\
             <title>up to {}: {count:.0}</title></rect>",
            x0 + gap,
            HEIGHT - BOTTOM - h,
            (x1 - x0 - 2.0 * gap).max(0.5),
            escape(&size(*bound))
        );
        lower_edge = *bound;
    }
    // Ticks at powers of two, every second or fourth one when they would crowd each other.
    let first = low.log2().ceil() as i32;
    let last = high.log2().floor() as i32;
    let per_octave = PLOT_W / span;
    let step = [1, 2, 4, 8]
        .into_iter()
        .find(|step| per_octave * f64::from(*step) >= 56.0)
        .unwrap_or(8);
    for power in (first..=last).filter(|power| power % step == 0) {
        let (value, label) = (2f64.powi(power), size(2f64.powi(power)));
        let x = x_of(value);
        // Centred under its tick, but ending at the tick where it would leave the chart.
        let anchor = if x + text_width(&label, 10.0) / 2.0 > WIDTH {
            "end"
        } else {
            "middle"
        };
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{}\" y2=\"{}\" stroke=\"#999\"/>\
             <text x=\"{x:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"{anchor}\">{}</text>",
            HEIGHT - BOTTOM,
            HEIGHT - BOTTOM + 4.0,
            HEIGHT - BOTTOM + 15.0,
            escape(&label)
        );
    }
    // One row per marker, so labels never share a line of text; a label runs right of its
    // line, or left of it where it would leave the chart. A halo of the background colour
    // keeps it legible where another marker's line crosses it.
    for (row, (label, value, colour)) in markers.iter().enumerate() {
        let x = x_of(*value);
        let text = format!("{label} {}", size(*value));
        let (text_x, anchor) = if x + 3.0 + text_width(&text, 10.0) > WIDTH - RIGHT {
            (x - 3.0, "end")
        } else {
            (x + 3.0, "start")
        };
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{}\" stroke=\"{colour}\" \
             stroke-dasharray=\"4 3\"/><text x=\"{text_x:.1}\" y=\"{:.1}\" font-size=\"10\" \
             fill=\"{colour}\" text-anchor=\"{anchor}\" stroke=\"#fafafa\" stroke-width=\"3\" \
             paint-order=\"stroke\">{}</text>",
            HEIGHT - BOTTOM,
            TOP + 12.0 + 11.0 * row as f64,
            escape(&text)
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
        assert_eq!(nice_ceiling(210.0), 250.0);
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

    #[test]
    fn markers_sit_at_their_sizes_and_share_a_label_when_equal() {
        let sizes = Sizes {
            buckets: vec![(1024.0, 1.0), (2048.0, 3.0), (4096.0, 0.0)],
            percentiles: [("p50", 2048.0), ("p95", 2048.0)].into_iter().collect(),
        };
        let svg = distribution_chart(&sizes, &[("default max", Some(16384.0), "#2e86ab")]);
        assert!(svg.contains("\">p50 = p95 2 KiB</text>"), "{svg}");
        // The axis reaches the default max, above every return, at the right edge, and its
        // label turns left there to stay inside the chart.
        let right = format!("x1=\"{:.1}\"", WIDTH - RIGHT);
        assert!(svg.contains(&right), "{svg}");
        let label = "<text x=\"445.0\" y=\"51.0\" font-size=\"10\" fill=\"#2e86ab\" \
                     text-anchor=\"end\"";
        assert!(svg.contains(label), "{svg}");
        assert!(svg.contains(">default max 16 KiB</text>"), "{svg}");
        assert!(svg.contains("text-anchor=\"end\">16 KiB</text>"), "{svg}");
        assert_eq!(svg.matches("stroke-dasharray").count(), 2, "{svg}");
        // Near the right edge, the label's size counts toward its width too.
        let near = distribution_chart(
            &sizes,
            &[("m", Some(12288.0), "#000"), ("far", Some(16384.0), "#111")],
        );
        let at = near
            .find("<text x=\"406.")
            .unwrap_or_else(|| panic!("{near}"));
        let element = &near[at..at + near[at..].find('>').unwrap()];
        assert!(element.contains("text-anchor=\"end\""), "{element}");
        assert!(
            near[at..].starts_with(&format!("{element}>m 12 KiB</text>")),
            "{near}"
        );
    }
}
