//! Numbers in words: counts, ratios, byte sizes and rates, the spread of a per-slice metric,
//! and text made safe for HTML.

use crate::compare::slice::metric;
use crate::compare::summary::Spread;

/// Bytes in a MiB.
pub(super) const MIB: f64 = 1024.0 * 1024.0;
const KIB: f64 = 1024.0;

pub(super) fn count(value: f64) -> String {
    format!("{value:.0}")
}

pub(super) fn one_decimal(value: f64) -> String {
    format!("{value:.1}")
}

pub(super) fn ratio(value: f64) -> String {
    format!("{value:.3}")
}

pub(super) fn percent(value: f64) -> String {
    format!("{:.1}%", value * 100.0)
}

pub(super) fn kib(value: f64) -> String {
    format!("{:.1} KiB", value / KIB)
}

pub(super) fn mib(value: f64) -> String {
    format!("{:.1} MiB", value / MIB)
}

pub(super) fn mib_per_s(value: f64) -> String {
    format!("{:.1} MiB/s", value / MIB)
}

/// A byte size as bytes below 1 KiB, KiB below 1 MiB, else MiB with two decimals (candidate
/// bounds can differ by less than a tenth of a MiB).
pub(super) fn size(value: f64) -> String {
    if value < KIB {
        format!("{value:.0} B")
    } else if value < MIB {
        format!("{:.0} KiB", value / KIB)
    } else {
        format!("{:.2} MiB", value / MIB)
    }
}

/// The format of a per-slice metric's values.
pub(super) fn spread_format(name: &str) -> fn(f64) -> String {
    match name {
        metric::ALLOC_RATE => mib_per_s,
        m if m.starts_with("jemalloc") => mib,
        _ => one_decimal,
    }
}

/// A spread as min / median / max, `-` without one.
pub(super) fn spread_cell(spread: Option<&Spread>, format: fn(f64) -> String) -> String {
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

/// `text` with HTML's special characters escaped.
pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_pick_their_unit() {
        assert_eq!(size(512.0), "512 B");
        assert_eq!(size(256.0 * KIB), "256 KiB");
        assert_eq!(size(1_490_944.0), "1.42 MiB");
        assert_eq!(percent(0.8512), "85.1%");
        assert_eq!(escape("a<b & \"c\">"), "a&lt;b &amp; &quot;c&quot;&gt;");
    }
}
