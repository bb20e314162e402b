//! How the dashboards' panels read, checked on the generated JSON: stats evaluate now, top-k
//! panels keep the same series over the time range, ranges follow Grafana's interval, heatmaps
//! show one pool each, values that are bad stand out against the kit's thresholds, special
//! values have words, and fleet tables link to the dashboards of their rows.

mod common;

use std::collections::BTreeSet;

use common::{committed_dashboards, dashboard_queries, panels};
use heapscape_monitoring::{Config, dashboards};
use serde_json::Value;

/// Grafana's range variables: a query's `[...]` follows the zoom, never a fixed duration.
const RANGE_VARIABLES: [&str; 3] = ["$__rate_interval", "$__interval", "$__range"];

/// The panel titled `title` of dashboard `uid`, generated from `config`.
fn panel(config: &Config, uid: &str, title: &str) -> Value {
    let board = dashboards(config)
        .into_iter()
        .find(|d| d.uid == uid)
        .unwrap_or_else(|| panic!("no dashboard {uid}"));
    panels(&board.json)
        .into_iter()
        .find(|p| p["title"] == title)
        .unwrap_or_else(|| panic!("{uid} has no panel {title}"))
        .clone()
}

fn exprs(panel: &Value) -> Vec<&str> {
    panel["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["expr"].as_str())
        .collect()
}

#[test]
fn stat_panels_show_the_value_now() {
    let mut stats = 0;
    for (file, dashboard) in committed_dashboards() {
        for panel in panels(&dashboard) {
            if panel["type"] != "stat" {
                continue;
            }
            stats += 1;
            for target in panel["targets"].as_array().into_iter().flatten() {
                assert!(
                    target["instant"] == true && target["range"] == false,
                    "{file} / {}: a stat's last point of a range query lags (and can be \
                     an old series); evaluate it instantly",
                    panel["title"]
                );
            }
        }
    }
    assert!(stats >= 8, "the dashboards' stat panels ({stats})");
}

#[test]
fn ranges_follow_the_zoom_and_top_k_keeps_its_series_over_the_range() {
    let mut top_k = 0;
    for (_, dashboard) in committed_dashboards() {
        for query in dashboard_queries(&dashboard) {
            for range in query.expr.split('[').skip(1) {
                let range = &range[..range.find(']').unwrap_or(range.len())];
                assert!(
                    RANGE_VARIABLES.contains(&range),
                    "{}: `[{range}]` is fixed; use one of {RANGE_VARIABLES:?}\n  {}",
                    query.place,
                    query.expr
                );
            }
            for (at, _) in query.expr.match_indices("topk(") {
                top_k += 1;
                // The top ten picked once, over the range's totals at its end: a range query's
                // topk picks ten at every step, and more than ten lines come and go.
                let ranked = &query.expr[at..];
                let instant_table = query.expr.starts_with("sort_desc(");
                assert!(
                    instant_table || ranked.contains("[$__range] @ end())"),
                    "{}: topk over a range query picks a top ten at each step\n  {}",
                    query.place,
                    query.expr
                );
            }
        }
    }
    assert!(top_k >= 4, "the dashboards rank instances ({top_k})");
}

#[test]
fn heatmaps_show_one_pool_each() {
    let mut heatmaps = 0;
    for (file, dashboard) in committed_dashboards() {
        for panel in panels(&dashboard) {
            if panel["type"] != "heatmap" {
                continue;
            }
            heatmaps += 1;
            let title = panel["title"].as_str().unwrap_or("?");
            assert_eq!(
                panel["repeat"], "pool",
                "{file} / {title}: one heatmap per pool"
            );
            for expr in exprs(panel) {
                assert!(
                    expr.contains(r#"pool=~"$pool""#),
                    "{file} / {title}: each copy reads its own pool\n  {expr}"
                );
            }
            let description = panel["description"].as_str().unwrap_or_default();
            assert!(
                description.contains("One heatmap per pool")
                    || description.contains("one heatmap per pool"),
                "{file} / {title}: the description says it shows one pool: {description}"
            );
        }
    }
    assert_eq!(heatmaps, 2, "the pool dashboard's heatmaps");
}

#[test]
fn purging_settings_read_never_and_durations_in_words() {
    let purging = panel(
        &Config::default(),
        "heapscape-heap",
        "jemalloc purging settings",
    );
    let defaults = &purging["fieldConfig"]["defaults"];
    assert_eq!(
        defaults["unit"], "dtdurations",
        "durations in days, hours, minutes"
    );
    assert_eq!(
        defaults["mappings"][0]["options"]["-1"]["text"], "never",
        "jemalloc's -1 is never: {defaults}"
    );
    // The background threads' 1/0 are no durations.
    let background = exprs(&purging)
        .iter()
        .position(|e| e.contains("heapscape_jemalloc_background_thread"))
        .expect("the background threads' query");
    let ref_id = char::from(b'A' + u8::try_from(background).expect("a few queries"));
    let overrides = purging["fieldConfig"]["overrides"]
        .as_array()
        .expect("overrides");
    let own = overrides
        .iter()
        .find(|o| o["matcher"]["options"] == ref_id.to_string())
        .expect("an override for the background threads");
    assert_eq!(own["matcher"]["id"], "byFrameRefID");
    let properties = own["properties"].to_string();
    assert!(
        properties.contains(r#""unit""#) && properties.contains(r#""text":"on""#),
        "{properties}"
    );
}

#[test]
fn aggregate_panels_say_which_aggregation_they_draw() {
    let resident = panel(
        &Config::default(),
        "heapscape-fleet",
        "Resident per instance by pooling (average)",
    );
    for expr in exprs(&resident) {
        assert!(expr.starts_with("avg by ("), "{expr}");
    }
    for (file, dashboard) in committed_dashboards() {
        for panel in panels(&dashboard) {
            let title = panel["title"].as_str().unwrap_or_default();
            for (said, aggregation) in [("(average)", "avg"), ("(sum)", "sum")] {
                if title.contains(said) {
                    for expr in exprs(panel) {
                        assert!(
                            expr.starts_with(&format!("{aggregation} by (")),
                            "{file} / {title} draws {expr}"
                        );
                    }
                }
            }
        }
    }
}

/// The thresholds' steps of a panel: (value, colour), the base step's value null.
fn thresholds(panel: &Value) -> Vec<(Option<f64>, String)> {
    panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|step| {
            (
                step["value"].as_f64(),
                step["color"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn bad_values_stand_out_at_the_kits_thresholds() {
    let config = Config {
        discard_ratio_threshold: 0.4,
        heartbeat_stale_intervals: 7,
        ..Config::default()
    };
    for (uid, title, bad) in [
        ("heapscape-pool", "Discard ratio", 0.4),
        ("heapscape-heap", "Staleness", 7.0),
    ] {
        let shown = panel(&config, uid, title);
        assert_eq!(
            thresholds(&shown),
            [(None, "green".to_owned()), (Some(bad), "red".to_owned())],
            "{uid} / {title}"
        );
        assert_eq!(
            shown["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"], "line",
            "{uid} / {title}: the threshold drawn"
        );
    }
    // What the thresholds are compared with: the alerts' own quantities.
    let staleness = panel(&config, "heapscape-heap", "Staleness");
    assert!(
        exprs(&staleness)[0].contains("/ heapscape_heartbeat_interval_seconds"),
        "the age in heartbeat intervals, as HeapscapeHeartbeatStale counts it"
    );
    let discards = panel(&config, "heapscape-pool", "Discard ratio");
    assert!(
        exprs(&discards)[0].starts_with("instance:heapscape_pool_discard_ratio:rate"),
        "the ratio HeapscapePoolHighDiscardRate watches"
    );
}

#[test]
fn fleet_table_rows_link_to_their_service_instance_and_pool() {
    let boards = dashboards(&Config::default());
    let variables_of = |uid: &str| -> BTreeSet<String> {
        let board = boards.iter().find(|d| d.uid == uid).expect("a dashboard");
        board.json["templating"]["list"]
            .as_array()
            .expect("variables")
            .iter()
            .filter_map(|v| v["name"].as_str().map(str::to_owned))
            .collect()
    };
    let fleet = boards
        .iter()
        .find(|d| d.uid == "heapscape-fleet")
        .expect("fleet");
    let mut to_pools = 0;
    for panel in panels(&fleet.json) {
        if panel["type"] != "table" {
            continue;
        }
        let title = panel["title"].as_str().unwrap_or("?");
        let links = panel["fieldConfig"]["defaults"]["links"]
            .as_array()
            .unwrap_or_else(|| panic!("{title}: rows link to the dashboard of their row"));
        let expr = exprs(panel)[0];
        for link in links {
            let url = link["url"].as_str().expect("a link URL");
            let uid = url
                .strip_prefix("/d/")
                .and_then(|rest| rest.split(['?', '/']).next())
                .unwrap_or_else(|| panic!("{title}: {url} opens a dashboard"));
            let variables = variables_of(uid);
            assert!(
                url.contains("${datasource:queryparam}") && url.contains("${__url_time_range}"),
                "{title}: {url} keeps the datasource and time range"
            );
            for part in url.split('&').filter_map(|p| p.strip_prefix("var-")) {
                let (variable, value) = part.split_once('=').expect("var-name=value");
                assert!(
                    variables.contains(variable),
                    "{title}: {uid} has no ${variable}"
                );
                let label = value
                    .strip_prefix("${__data.fields.")
                    .and_then(|rest| rest.strip_suffix('}'))
                    .unwrap_or_else(|| panic!("{title}: {variable} from the row: {value}"));
                // The row has the label: the query keeps it (a `by` that names it, or the
                // raw series with all their labels).
                let kept = !expr.contains(" by (")
                    || expr.contains(&format!("{label},"))
                    || expr.contains(&format!("{label})"));
                assert!(kept, "{title}: the rows have no {label}\n  {expr}");
            }
            if uid == "heapscape-pool" {
                to_pools += 1;
                for variable in ["job", "instance", "pool"] {
                    assert!(url.contains(&format!("var-{variable}=")), "{title}: {url}");
                }
            }
        }
    }
    assert_eq!(
        to_pools, 1,
        "a fleet table links pools to the pool dashboard"
    );
}
