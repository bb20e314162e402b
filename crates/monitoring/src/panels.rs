//! Grafana JSON building blocks: panels, queries, variables and the grid layout.
//!
//! Only what the heapscape dashboards use; every panel queries the datasource chosen in the
//! [`DATASOURCE_VARIABLE`] variable and carries a description that says how to read it.

use serde_json::{Value, json};

/// Grafana's grid is 24 columns wide.
const GRID_WIDTH: u32 = 24;

/// The name of the template variable that picks the Prometheus datasource. Every panel,
/// query, variable and annotation refers to it (`${datasource}`) rather than to a datasource
/// uid, so the same JSON works provisioned and imported into any Grafana.
pub const DATASOURCE_VARIABLE: &str = "datasource";

/// The datasource reference of every panel, query, variable and annotation.
pub(crate) fn datasource() -> Value {
    json!({ "type": "prometheus", "uid": format!("${{{DATASOURCE_VARIABLE}}}") })
}

/// The datasource variable: any Prometheus datasource, Grafana's default one unless the
/// viewer picks another. In the compose stack the default is the provisioned datasource
/// (`isDefault: true`); imported elsewhere, the default Prometheus of that Grafana.
pub(crate) fn datasource_variable() -> Value {
    json!({
        "name": DATASOURCE_VARIABLE,
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "regex": "",
        "refresh": 1,
        "multi": false,
        "includeAll": false,
        "current": { "selected": true, "text": "default", "value": "default" },
        "options": [],
        "hide": 0,
    })
}

/// One PromQL query of a panel and its legend.
pub(crate) struct Query {
    expr: String,
    legend: String,
}

/// A query drawn with `legend` (Grafana's `{{label}}` templates).
pub(crate) fn query(expr: impl Into<String>, legend: &str) -> Query {
    Query {
        expr: expr.into(),
        legend: legend.to_owned(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    TimeSeries,
    Stat,
    Table,
    Heatmap,
}

/// A panel before layout.
pub(crate) struct Panel {
    kind: Kind,
    title: &'static str,
    description: &'static str,
    unit: &'static str,
    queries: Vec<Query>,
    width: u32,
    height: u32,
    log_scale: bool,
    stacked: bool,
    transformations: Vec<Value>,
    column_units: Vec<(&'static str, &'static str)>,
    /// A table's initial row order: columns by display name, ascending, the first the
    /// primary key.
    sort_by: Vec<&'static str>,
    /// A stat panel's texts for exact values: (value, text, colour).
    value_texts: Vec<(&'static str, &'static str, &'static str)>,
    /// A stat panel's text when its query returns nothing.
    no_value: Option<&'static str>,
    /// Per query (refId): a unit and value texts of its own, where one panel shows several
    /// quantities.
    query_overrides: Vec<QueryOverride>,
    /// Where values turn bad: (from this value up, colour), ascending; below the first, green.
    thresholds: Vec<(f64, &'static str)>,
    /// The variable a panel is repeated for, one copy per selected value.
    repeat: Option<&'static str>,
    /// Data links of a table's cells (Grafana's `links` of the field defaults).
    links: Vec<Value>,
    moves_under_load: bool,
    shows_auto_tune_moves: bool,
}

impl Panel {
    fn new(kind: Kind, title: &'static str, description: &'static str, unit: &'static str) -> Self {
        Self {
            kind,
            title,
            description,
            unit,
            queries: Vec::new(),
            width: 12,
            height: 8,
            log_scale: false,
            stacked: false,
            transformations: Vec::new(),
            column_units: Vec::new(),
            sort_by: Vec::new(),
            value_texts: Vec::new(),
            no_value: None,
            query_overrides: Vec::new(),
            thresholds: Vec::new(),
            repeat: None,
            links: Vec::new(),
            moves_under_load: false,
            shows_auto_tune_moves: false,
        }
    }

    /// Marks a panel whose values must be non-zero while the demo runs under load (rates,
    /// sizes of returned buffers): `tests/stack.rs` fails when such a panel shows only zeros.
    pub(crate) fn moves_under_load(mut self) -> Self {
        self.moves_under_load = true;
        self
    }

    /// Marks a panel that shows auto-tuning's moves: `tests/stack.rs` fails unless it shows a
    /// non-zero value at some point while its auto-tuned demo moves a setting. Moves are
    /// events, not a level, so the panel is not required to show one at any given moment.
    pub(crate) fn shows_auto_tune_moves(mut self) -> Self {
        self.shows_auto_tune_moves = true;
        self
    }

    /// The unit of one table column (after the transformations' renames): a table's columns
    /// hold different quantities, so a table has no panel-wide unit.
    pub(crate) fn column_unit(mut self, column: &'static str, unit: &'static str) -> Self {
        self.column_units.push((column, unit));
        self
    }

    /// A table's rows sorted by these columns (display names after the transformations'
    /// renames), ascending, each breaking the ties of the one before: Grafana's sortBy
    /// transformation sorts by one field only, the table's own sort by several.
    pub(crate) fn sort_by(mut self, columns: &[&'static str]) -> Self {
        self.sort_by.extend_from_slice(columns);
        self
    }

    /// A stat panel shows `text` in `colour` instead of the number when the value is
    /// `value` (Grafana's value mappings): for states that a number would not explain.
    pub(crate) fn value_text(
        mut self,
        value: &'static str,
        text: &'static str,
        colour: &'static str,
    ) -> Self {
        self.value_texts.push((value, text, colour));
        self
    }

    /// The series of query `ref_id` (`"A"` for the first) in `unit`, with `value` shown as
    /// `text` in `colour`: for one quantity among others in a panel.
    pub(crate) fn query_unit(
        mut self,
        ref_id: &'static str,
        unit: &'static str,
        value_texts: &[(&'static str, &'static str, &'static str)],
    ) -> Self {
        self.query_overrides.push(QueryOverride {
            ref_id,
            unit,
            value_texts: value_texts.to_vec(),
        });
        self
    }

    /// Colours values from `value` up as `colour` (ascending steps; green below the first),
    /// and draws the steps as lines on a time series: where a value is bad.
    pub(crate) fn threshold(mut self, value: f64, colour: &'static str) -> Self {
        self.thresholds.push((value, colour));
        self
    }

    /// One copy of the panel per value of `variable` selected (its queries select
    /// `=~"$variable"`, a single value in each copy).
    pub(crate) fn repeat(mut self, variable: &'static str) -> Self {
        self.repeat = Some(variable);
        self
    }

    /// A data link on a table's cells: `url` may use the row's labels
    /// (`${__data.fields.<label>}`) and Grafana's `${__url_time_range}`.
    pub(crate) fn link(mut self, title: &'static str, url: String) -> Self {
        self.links
            .push(json!({ "title": title, "url": url, "targetBlank": false }));
        self
    }

    /// A stat panel shows `text` when its query returns no series.
    pub(crate) fn no_value(mut self, text: &'static str) -> Self {
        self.no_value = Some(text);
        self
    }

    /// Adds a query.
    pub(crate) fn query(mut self, expr: impl Into<String>, legend: &str) -> Self {
        self.queries.push(query(expr, legend));
        self
    }

    /// Columns of the 24-column grid (default 12).
    pub(crate) fn width(mut self, width: u32) -> Self {
        self.width = width.clamp(1, GRID_WIDTH);
        self
    }

    /// Rows of the grid (default 8).
    pub(crate) fn height(mut self, height: u32) -> Self {
        self.height = height.max(1);
        self
    }

    /// A log2 y axis, for sizes that span powers of two.
    pub(crate) fn log_scale(mut self) -> Self {
        self.log_scale = true;
        self
    }

    /// Stacked series (parts of a whole).
    pub(crate) fn stacked(mut self) -> Self {
        self.stacked = true;
        self
    }

    /// A Grafana transformation applied to the query results (tables).
    pub(crate) fn transformation(mut self, transformation: Value) -> Self {
        self.transformations.push(transformation);
        self
    }

    fn targets(&self) -> Vec<Value> {
        let (format, instant) = match self.kind {
            Kind::TimeSeries => ("time_series", false),
            // A stat shows the value now: an instant query, not the last point of a range.
            Kind::Stat => ("time_series", true),
            Kind::Table => ("table", true),
            Kind::Heatmap => ("heatmap", false),
        };
        self.queries
            .iter()
            .zip(b'A'..)
            .map(|(query, ref_id)| {
                json!({
                    "datasource": datasource(),
                    "refId": char::from(ref_id).to_string(),
                    "editorMode": "code",
                    "expr": query.expr,
                    "legendFormat": query.legend,
                    "format": format,
                    "instant": instant,
                    "range": !instant,
                })
            })
            .collect()
    }

    /// Colours the two sides of the before/after comparison the same way on every panel.
    fn pooling_overrides(&self) -> Vec<Value> {
        if !self.queries.iter().any(|q| q.legend.contains("pooling=")) {
            return Vec::new();
        }
        [("off", "red"), ("on", "green")]
            .iter()
            .map(|(pooling, color)| {
                json!({
                    "matcher": { "id": "byRegexp", "options": format!(".*pooling={pooling}.*") },
                    "properties": [{ "id": "color", "value": { "mode": "fixed", "fixedColor": color } }],
                })
            })
            .collect()
    }

    fn to_json(&self, id: u32, x: u32, y: u32) -> Value {
        let mut panel = json!({
            "id": id,
            "title": self.title,
            "description": self.description,
            "datasource": datasource(),
            "gridPos": { "x": x, "y": y, "w": self.width, "h": self.height },
            "targets": self.targets(),
        });
        let fields = match self.kind {
            Kind::TimeSeries => {
                panel["type"] = json!("timeseries");
                panel["options"] = json!({
                    "legend": { "displayMode": "table", "placement": "bottom", "showLegend": true,
                                "calcs": ["lastNotNull", "max"] },
                    "tooltip": { "mode": "multi", "sort": "desc" },
                });
                let scale = if self.log_scale {
                    json!({ "type": "log", "log": 2 })
                } else {
                    json!({ "type": "linear" })
                };
                let mut fields = json!({
                    "defaults": {
                        "unit": self.unit,
                        "custom": {
                            "drawStyle": "line", "lineWidth": 1, "showPoints": "never",
                            "fillOpacity": if self.stacked { 30 } else { 10 },
                            "stacking": { "mode": if self.stacked { "normal" } else { "none" } },
                            "scaleDistribution": scale,
                        },
                    },
                    "overrides": self.pooling_overrides(),
                });
                // A log axis has no 0; a linear one starts there.
                if !self.log_scale {
                    fields["defaults"]["min"] = json!(0);
                }
                fields
            }
            Kind::Stat => {
                panel["type"] = json!("stat");
                panel["options"] = json!({
                    "reduceOptions": { "calcs": ["lastNotNull"], "fields": "", "values": false },
                    "colorMode": "value", "graphMode": "none", "textMode": "auto",
                    "justifyMode": "auto", "orientation": "auto", "wideLayout": true,
                    "showPercentChange": false, "percentChangeColorMode": "standard",
                });
                let mut fields = json!({
                    "defaults": { "unit": self.unit, "color": { "mode": "thresholds" } },
                    "overrides": [],
                });
                if !self.value_texts.is_empty() {
                    fields["defaults"]["mappings"] = value_mappings(&self.value_texts);
                }
                if let Some(text) = self.no_value {
                    fields["defaults"]["noValue"] = json!(text);
                }
                fields
            }
            Kind::Table => {
                panel["type"] = json!("table");
                panel["options"] =
                    json!({ "showHeader": true, "cellHeight": "sm", "frameIndex": 0 });
                if !self.sort_by.is_empty() {
                    let sort: Vec<Value> = self
                        .sort_by
                        .iter()
                        .map(|column| json!({ "displayName": column, "desc": false }))
                        .collect();
                    panel["options"]["sortBy"] = json!(sort);
                }
                panel["transformations"] = json!(self.transformations);
                let overrides: Vec<Value> = self
                    .column_units
                    .iter()
                    .map(|(column, unit)| {
                        json!({
                            "matcher": { "id": "byName", "options": column },
                            "properties": [{ "id": "unit", "value": unit }],
                        })
                    })
                    .collect();
                json!({ "defaults": {}, "overrides": overrides })
            }
            Kind::Heatmap => {
                panel["type"] = json!("heatmap");
                panel["options"] = json!({
                    "calculate": false,
                    "cellGap": 1,
                    "color": {
                        "mode": "scheme", "scheme": "Oranges", "steps": 64, "exponent": 0.5,
                        "fill": "dark-orange", "reverse": false,
                    },
                    "yAxis": { "unit": self.unit, "axisPlacement": "left" },
                    "rowsFrame": { "layout": "le" },
                    "tooltip": { "mode": "single", "yHistogram": true },
                    "legend": { "show": true },
                    "showValue": "auto",
                    "exemplars": { "color": "rgba(255,0,255,0.7)" },
                });
                json!({ "defaults": {}, "overrides": [] })
            }
        };
        let mut fields = fields;
        if !self.thresholds.is_empty() {
            let mut steps = vec![json!({ "color": "green", "value": null })];
            steps.extend(
                self.thresholds
                    .iter()
                    .map(|(value, colour)| json!({ "color": colour, "value": value })),
            );
            fields["defaults"]["thresholds"] = json!({ "mode": "absolute", "steps": steps });
            if self.kind == Kind::TimeSeries {
                fields["defaults"]["custom"]["thresholdsStyle"] = json!({ "mode": "line" });
            }
        }
        if let Some(overrides) = fields["overrides"].as_array_mut() {
            overrides.extend(self.query_overrides.iter().map(|o| {
                let mut properties = vec![json!({ "id": "unit", "value": o.unit })];
                if !o.value_texts.is_empty() {
                    properties
                        .push(json!({ "id": "mappings", "value": value_mappings(&o.value_texts) }));
                }
                json!({
                    "matcher": { "id": "byFrameRefID", "options": o.ref_id },
                    "properties": properties,
                })
            }));
        }
        if !self.links.is_empty() {
            fields["defaults"]["links"] = json!(self.links);
        }
        if let Some(variable) = self.repeat {
            panel["repeat"] = json!(variable);
            panel["repeatDirection"] = json!("h");
            panel["maxPerRow"] = json!(2);
        }
        panel["fieldConfig"] = fields;
        panel
    }
}

/// One query's unit and value texts within a panel.
struct QueryOverride {
    ref_id: &'static str,
    unit: &'static str,
    value_texts: Vec<(&'static str, &'static str, &'static str)>,
}

/// Grafana's value mappings showing each `value` as `text` in `colour`.
fn value_mappings(texts: &[(&'static str, &'static str, &'static str)]) -> Value {
    let options: serde_json::Map<String, Value> = texts
        .iter()
        .zip(0..)
        .map(|(&(value, text, colour), index)| {
            let result = json!({ "text": text, "color": colour, "index": index });
            (value.to_owned(), result)
        })
        .collect();
    json!([{ "type": "value", "options": options }])
}

/// A time series panel.
pub(crate) fn timeseries(
    title: &'static str,
    description: &'static str,
    unit: &'static str,
) -> Panel {
    Panel::new(Kind::TimeSeries, title, description, unit)
}

/// A single-number panel (last value).
pub(crate) fn stat(title: &'static str, description: &'static str, unit: &'static str) -> Panel {
    Panel::new(Kind::Stat, title, description, unit)
        .width(4)
        .height(4)
}

/// A table of instant query results; each column's unit is set with [`Panel::column_unit`].
pub(crate) fn table(title: &'static str, description: &'static str) -> Panel {
    Panel::new(Kind::Table, title, description, "")
}

/// A heatmap of a histogram's `_bucket` series (already bucketed: `format: heatmap`).
pub(crate) fn heatmap(title: &'static str, description: &'static str, unit: &'static str) -> Panel {
    Panel::new(Kind::Heatmap, title, description, unit)
}

/// A dashboard under construction: panels are laid out left to right, wrapping at the grid
/// width; a row starts a new line.
pub(crate) struct Board {
    panels: Vec<Value>,
    moving: Vec<&'static str>,
    auto_tune_moves: Vec<&'static str>,
    next_id: u32,
    x: u32,
    y: u32,
    line_height: u32,
}

impl Board {
    pub(crate) fn new() -> Self {
        Self {
            panels: Vec::new(),
            moving: Vec::new(),
            auto_tune_moves: Vec::new(),
            next_id: 1,
            x: 0,
            y: 0,
            line_height: 0,
        }
    }

    fn new_line(&mut self) {
        self.y += self.line_height;
        self.x = 0;
        self.line_height = 0;
    }

    /// A row header across the grid.
    pub(crate) fn row(&mut self, title: &str) -> &mut Self {
        if self.x > 0 {
            self.new_line();
        }
        self.panels.push(json!({
            "id": self.next_id,
            "type": "row",
            "title": title,
            "collapsed": false,
            "gridPos": { "x": 0, "y": self.y, "w": GRID_WIDTH, "h": 1 },
            "panels": [],
        }));
        self.next_id += 1;
        self.y += 1;
        self
    }

    /// The next panel, on this line if it fits.
    pub(crate) fn add(&mut self, panel: Panel) -> &mut Self {
        if self.x + panel.width > GRID_WIDTH {
            self.new_line();
        }
        if panel.moves_under_load {
            self.moving.push(panel.title);
        }
        if panel.shows_auto_tune_moves {
            self.auto_tune_moves.push(panel.title);
        }
        self.panels
            .push(panel.to_json(self.next_id, self.x, self.y));
        self.next_id += 1;
        self.x += panel.width;
        self.line_height = self.line_height.max(panel.height);
        self
    }

    /// The panels' JSON, and the titles of those that must move under load and of those that
    /// show auto-tuning's moves.
    pub(crate) fn finish(self) -> Finished {
        Finished {
            panels: self.panels,
            moving: self.moving,
            auto_tune_moves: self.auto_tune_moves,
        }
    }
}

/// A laid-out board.
pub(crate) struct Finished {
    /// The panels' JSON.
    pub(crate) panels: Vec<Value>,
    /// Titles of the panels marked [`Panel::moves_under_load`].
    pub(crate) moving: Vec<&'static str>,
    /// Titles of the panels marked [`Panel::shows_auto_tune_moves`].
    pub(crate) auto_tune_moves: Vec<&'static str>,
}

/// A query variable over the values of `label` (Grafana's `label_values(metric, label)`),
/// multi-valued with an "All" that matches every value.
pub(crate) fn label_variable(name: &str, label: &str, query: &str) -> Value {
    json!({
        "name": name,
        "label": label,
        "type": "query",
        "datasource": datasource(),
        "query": query,
        "refresh": 2,
        "sort": 1,
        "multi": true,
        "includeAll": true,
        "allValue": ".+",
        "current": { "selected": true, "text": ["All"], "value": ["$__all"] },
        "options": [],
        "hide": 0,
    })
}

/// An annotation drawn wherever `expr` returns a sample, tagged with the values of the labels
/// `tag_keys` (comma-separated). The query is the annotation's `target`, as Grafana saves it;
/// the title, text and tags are the Prometheus datasource's annotation options.
pub(crate) fn annotation(name: &str, expr: &str, color: &str, text: &str, tag_keys: &str) -> Value {
    json!({
        "name": name,
        "datasource": datasource(),
        "enable": true,
        "hide": false,
        "iconColor": color,
        "target": { "refId": "Anno", "expr": expr },
        "titleFormat": name,
        "textFormat": text,
        "tagKeys": tag_keys,
        "useValueForTime": false,
    })
}
