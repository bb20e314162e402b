//! The dashboards and what all three share: the selectors of their queries, their template
//! variables, the frame around their panels and the event annotations drawn on every one.
//!
//! Every query filters on the `job` and `instance` variables (`$job`, `$instance`; the pool
//! dashboard also on `$pool`), on the cluster variable when [`Config::cluster_label`] is set,
//! and on [`Config::selector`]. Fleet-wide numbers deliberately ignore `$instance` but keep
//! the labels that name a service ([`Config::service_labels`], job and service): a
//! histogram's `_bucket` series summed across the instances of one service is that service's
//! distribution, which is how the fleet-wide recommended max is computed; two services that
//! name a pool alike stay apart, also on the StatsD path, where every service is scraped as
//! statsd_exporter's job.
//!
//! Each dashboard's panels live in a file of its own (`heap`, `pool`, `fleet`) and build on
//! this module and [`crate::panels`] only, never on one another.

mod fleet;
mod heap;
mod pool;

use serde_json::{Value, json};

use crate::TAG;
use crate::config::{Config, join_matchers};
use crate::panels::{Board, annotation, datasource_variable, label_variable};
use crate::rules::fine_bucket_quantile;

/// A generated dashboard.
#[derive(Debug, Clone)]
pub struct Dashboard {
    /// Stable uid (links and the home dashboard refer to it).
    pub uid: &'static str,
    /// File name under `grafana/dashboards/`.
    pub file_name: &'static str,
    /// The dashboard JSON, as Grafana's file provisioning and its import both read it.
    pub json: Value,
    /// Titles of the panels whose values must be non-zero while the demo runs under load.
    pub moving_panels: Vec<&'static str>,
    /// Titles of the panels, and names of the annotations, that show auto-tuning's moves: a
    /// panel shows a non-zero value, an annotation fires, within a while of a pool with
    /// auto-tuning on moving a setting.
    pub auto_tune_panels: Vec<&'static str>,
}

impl Dashboard {
    /// The JSON as committed: pretty-printed, ending with a newline.
    pub fn to_json_string(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.json).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// Every heapscape dashboard for `config`, the home dashboard (heap before and after pooling)
/// first.
pub fn dashboards(config: &Config) -> Vec<Dashboard> {
    vec![heap::heap(config), pool::pool(config), fleet::fleet(config)]
}

/// The matchers and groupings of the dashboards' queries.
struct Selectors<'a> {
    config: &'a Config,
    /// The selected jobs and instances.
    sel: String,
    /// The selected jobs, instances and pools.
    pool_sel: String,
    /// The selected jobs and pools, every instance: the fleet.
    fleet_sel: String,
    /// The selected jobs, for the series of recording rules by job (which keep neither
    /// instance nor the labels of [`Config::selector`]).
    job_sel: String,
    /// The selected jobs, instances and pools, for the series of recording rules by instance
    /// and pool (which keep none of the labels of [`Config::selector`]).
    record_pool_sel: String,
    /// The labels that identify one process (`service` and `pooling` are constant per
    /// process and kept for the legends).
    by_instance: String,
}

impl<'a> Selectors<'a> {
    fn new(config: &'a Config) -> Self {
        let cluster = config
            .cluster_label
            .map(|label| format!(r#"{label}=~"${label}""#))
            .unwrap_or_default();
        let base = join_matchers(&[config.selector, &cluster]);
        Self {
            config,
            sel: join_matchers(&[&base, r#"job=~"$job",instance=~"$instance""#]),
            pool_sel: join_matchers(&[&base, r#"job=~"$job",instance=~"$instance",pool=~"$pool""#]),
            fleet_sel: join_matchers(&[&base, r#"job=~"$job",pool=~"$pool""#]),
            job_sel: join_matchers(&[&cluster, r#"job=~"$job""#]),
            record_pool_sel: join_matchers(&[
                &cluster,
                r#"job=~"$job",instance=~"$instance",pool=~"$pool""#,
            ]),
            by_instance: config.by("job, instance, service, pooling"),
        }
    }

    /// `sum by (job, instance, service, pool) (rate(<metric>{<pool selection><extra>}[$__rate_interval]))`.
    fn pool_rate(&self, metric: &str, extra: &str) -> String {
        format!(
            "sum by ({by}) (rate({metric}{{{sel}{extra}}}[$__rate_interval]))",
            by = self.config.by("job, instance, service, pool"),
            sel = self.pool_sel,
        )
    }

    /// `expr` for the pools with auto-tuning on only: while it is off, a pool's targets equal
    /// its values in force and its bounds constrain nothing, so drawing them would suggest a
    /// tuning that does not happen.
    fn auto_tuned(&self, expr: &str) -> String {
        format!(
            "{expr} and on ({by}) (heapscape_pool_auto_tune_enabled{{{sel}}} == 1)",
            by = self.config.by("job, instance, pool"),
            sel = self.pool_sel,
        )
    }

    /// The `q` quantile of returned lengths of each service's whole fleet over `window`, by
    /// the pools' own rule and buckets (see [`fine_bucket_quantile`]).
    fn fleet_length_quantile(&self, q: f64, window: &str) -> String {
        fine_bucket_quantile(
            q,
            &format!(
                "sum by ({by}) \
                 (rate(heapscape_pool_returned_length_bytes_bucket{{{sel}}}[{window}]))",
                by = self.config.by_service("pool, le"),
                sel = self.fleet_sel,
            ),
        )
    }
}

/// The legend of a per-process series.
const LEGEND: &str = "{{instance}} {{service}} pooling={{pooling}}";

fn variables(config: &Config, with_pool: bool) -> Vec<Value> {
    let mut list = vec![datasource_variable()];
    let mut scope = String::new();
    if let Some(label) = config.cluster_label {
        list.push(cluster_variable(
            label,
            &format!(
                "label_values({}, {label})",
                config.select("heapscape_heartbeat_up", "")
            ),
        ));
        scope = format!(r#"{label}=~"${label}""#);
    }
    list.push(label_variable(
        "job",
        "Job",
        &format!(
            "label_values({}, job)",
            config.select("heapscape_heartbeat_up", &scope)
        ),
    ));
    let with_job = join_matchers(&[&scope, r#"job=~"$job""#]);
    list.push(label_variable(
        "instance",
        "Instance",
        &format!(
            "label_values({}, instance)",
            config.select("heapscape_heartbeat_up", &with_job)
        ),
    ));
    if with_pool {
        let with_instance = join_matchers(&[&with_job, r#"instance=~"$instance""#]);
        list.push(label_variable(
            "pool",
            "Pool",
            &format!(
                "label_values({}, pool)",
                config.select("heapscape_pool_returns_total", &with_instance)
            ),
        ));
    }
    list
}

/// The cluster variable: one cluster at a time, like the mixins' (`showMultiCluster`). The
/// dashboards' totals, heatmaps and top-k rank across the selected series, and two clusters
/// can run the same job with the same instance names: with several clusters selected their
/// series would be summed together or drawn under one legend. Grafana picks the first cluster
/// on load.
fn cluster_variable(label: &str, query: &str) -> Value {
    let mut variable = label_variable(label, "Cluster", query);
    variable["multi"] = json!(false);
    variable["includeAll"] = json!(false);
    variable["current"] = json!({ "selected": false, "text": "", "value": "" });
    if let Some(fields) = variable.as_object_mut() {
        fields.remove("allValue");
    }
    variable
}

/// What names and describes a dashboard.
struct Meta {
    uid: &'static str,
    file_name: &'static str,
    title: &'static str,
    description: &'static str,
    tags: &'static [&'static str],
}

fn dashboard(
    meta: Meta,
    variables: Vec<Value>,
    annotations: Vec<Value>,
    board: Board,
) -> Dashboard {
    let Meta {
        uid,
        file_name,
        title,
        description,
        tags,
    } = meta;
    let mut all_tags = vec![TAG];
    all_tags.extend_from_slice(tags);
    let mut annotation_list = vec![json!({
        "builtIn": 1,
        "datasource": { "type": "grafana", "uid": "-- Grafana --" },
        "enable": true,
        "hide": true,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    })];
    annotation_list.extend(annotations);
    let finished = board.finish();
    let mut auto_tune_panels = finished.auto_tune_moves;
    auto_tune_panels.extend(
        annotation_list
            .iter()
            .filter_map(|annotation| (annotation["name"] == AUTO_TUNED).then_some(AUTO_TUNED)),
    );
    let json = json!({
        "uid": uid,
        "title": title,
        "description": description,
        "tags": all_tags,
        "editable": true,
        "graphTooltip": 1,
        "refresh": "10s",
        "schemaVersion": 39,
        "version": 1,
        "time": { "from": "now-30m", "to": "now" },
        "timepicker": {},
        "timezone": "browser",
        "fiscalYearStartMonth": 0,
        "liveNow": false,
        "weekStart": "",
        "links": [{
            "type": "dashboards", "title": "heapscape", "tags": [TAG], "asDropdown": false,
            "includeVars": true, "keepTime": true, "icon": "external link", "targetBlank": false,
            "tooltip": "", "url": "",
        }],
        "templating": { "list": variables },
        "annotations": { "list": annotation_list },
        "panels": finished.panels,
    });
    Dashboard {
        uid,
        file_name,
        json,
        moving_panels: finished.moving,
        auto_tune_panels,
    }
}

/// The name of the annotation drawn where auto-tuning moved a setting.
const AUTO_TUNED: &str = "Auto-tuned";

/// The annotations of every dashboard: config loads and rejected reloads of the processes
/// `sel` selects, and auto-tuning's moves of the pools `pools_sel` selects.
///
/// Over `$__rate_interval`, which Grafana keeps at least four scrape intervals and one step
/// long: a window holds the samples before and after an event at any zoom, where a fixed
/// `[1m]` misses events between steps wider than a minute.
fn event_annotations(sel: &str, pools_sel: &str) -> Vec<Value> {
    vec![
        annotation(
            "Config loaded",
            &format!(
                "changes(heapscape_config_last_reload_success_timestamp_seconds{{{sel}}}[$__rate_interval]) > 0"
            ),
            "blue",
            "{{instance}} {{service}}: config loaded (start or successful reload)",
            "job,instance",
        ),
        annotation(
            "Config reload failed",
            &format!(
                "increase(heapscape_config_reload_failures_total{{{sel}}}[$__rate_interval]) > 0"
            ),
            "red",
            "{{instance}} {{service}}: config reload rejected, the previous config stays",
            "job,instance",
        ),
        annotation(
            AUTO_TUNED,
            &format!(
                "increase(heapscape_pool_auto_tune_moves_total{{{pools_sel}}}[$__rate_interval]) > 0"
            ),
            "purple",
            "{{instance}} {{service}}: pool {{pool}} auto-tuned {{setting}} (the service's log \
             line `pool auto-tuned` gives the old and new values)",
            "job,instance,pool,setting",
        ),
    ]
}
