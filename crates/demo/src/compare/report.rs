//! The comparison as a text table and as a self-contained HTML page with inline SVG charts,
//! both read from the summary; modes are found by name, so another mode is another column.
//!
//! - `format`: numbers, sizes and spreads in words, HTML escaping;
//! - `rows`: what both show: the modes' rows and changes, the settings, the verdicts in words;
//! - `text`: the table `compare` prints;
//! - `html`: the page;
//! - `svg`: the page's charts.

mod format;
mod html;
mod rows;
mod svg;
mod text;

pub(super) use self::html::write_html;
