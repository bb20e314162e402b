//! The three dashboards: the heap before and after pooling, buffer pool tuning, and the fleet.
//!
//! Every query filters on the `job` and `instance` variables (`$job`, `$instance`; the pool
//! dashboard also on `$pool`), on the cluster variable when [`Config::cluster_label`] is set,
//! and on [`Config::selector`]. Fleet-wide numbers deliberately ignore `$instance` but keep
//! `job`: a histogram's `_bucket` series summed across the instances of one job is that
//! service's distribution, which is how the fleet-wide recommended max is computed; two
//! services that name a pool alike stay apart.

use serde_json::{Value, json};

use crate::TAG;
use crate::config::{Config, join_matchers};
use crate::panels::{
    Board, annotation, datasource_variable, heatmap, label_variable, stat, table, timeseries,
};
use crate::rules::{quantile_name, rate_record, windowed_recommendation_record};

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
    vec![heap(config), pool(config), fleet(config)]
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
    /// and pool.
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

    /// The `q` quantile of returned lengths of each job's whole fleet over `window`, rounded
    /// up to a power of two: the exported histograms' resolution (each pool's own
    /// recommendation reads finer buckets, four per octave).
    fn fleet_length_quantile(&self, q: f64, window: &str) -> String {
        format!(
            "2 ^ ceil(log2(histogram_quantile({q}, sum by ({by}) \
             (rate(heapscape_pool_returned_length_bytes_bucket{{{sel}}}[{window}])))))",
            by = self.config.by("job, pool, le"),
            sel = self.fleet_sel,
        )
    }
}

/// The legend of a per-process series.
const LEGEND: &str = "{{instance}} {{service}} pooling={{pooling}}";

fn variables(config: &Config, with_pool: bool) -> Vec<Value> {
    let mut list = vec![datasource_variable()];
    let mut scope = String::new();
    if let Some(label) = config.cluster_label {
        list.push(label_variable(
            label,
            "Cluster",
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
fn event_annotations(sel: &str, pools_sel: &str) -> Vec<Value> {
    vec![
        annotation(
            "Config loaded",
            &format!(
                "changes(heapscape_config_last_reload_success_timestamp_seconds{{{sel}}}[1m]) > 0"
            ),
            "blue",
            "{{instance}} {{service}}: config loaded (start or successful reload)",
            "job,instance",
        ),
        annotation(
            "Config reload failed",
            &format!("increase(heapscape_config_reload_failures_total{{{sel}}}[1m]) > 0"),
            "red",
            "{{instance}} {{service}}: config reload rejected, the previous config stays",
            "job,instance",
        ),
        annotation(
            AUTO_TUNED,
            &format!("increase(heapscape_pool_auto_tune_moves_total{{{pools_sel}}}[1m]) > 0"),
            "purple",
            "{{instance}} {{service}}: pool {{pool}} auto-tuned {{setting}} (the service's log \
             line `pool auto-tuned` gives the old and new values)",
            "job,instance,pool,setting",
        ),
    ]
}

fn heap(config: &Config) -> Dashboard {
    let s = Selectors::new(config);
    let (sel, by_instance) = (&s.sel, &s.by_instance);
    let mut b = Board::new();
    // Without jemalloc as the global allocator the jemalloc panels below are empty: this
    // says why, per instance, rather than leaving empty panels to be read as a broken scrape.
    b.add(
        stat(
            "Allocator",
            "Whether jemalloc is each instance's global allocator (heapscape_allocator_info). \
             Where it is not, the heartbeat still publishes process resident memory, page \
             faults and pools, but no jemalloc statistics: the jemalloc panels stay empty for \
             that instance. Make jemalloc the global allocator to fill them.",
            "none",
        )
        .width(24)
        .height(3)
        .value_text("0", "jemalloc", "green")
        .value_text("1", "jemalloc is not the global allocator", "orange")
        .no_value("No heartbeat reports its allocator")
        .query(
            format!(
                "max by ({by_instance}) (heapscape_allocator_info{{{sel},allocator=\"other\"}}) \
                 or 0 * max by ({by_instance}) (heapscape_allocator_info{{{sel},allocator=\"jemalloc\"}})"
            ),
            LEGEND,
        ),
    );
    b.row("Heap: pooling off (red) and on (green), per instance");
    for (title, metric, description) in [
        (
            "Allocated",
            "allocated",
            "Bytes in live allocations (jemalloc stats.allocated). A city scape of spikes is \
             one fresh buffer per request; pooling flattens it.",
        ),
        (
            "Active",
            "active",
            "Bytes in pages that hold live allocations (jemalloc stats.active, a page multiple).",
        ),
        (
            "Resident",
            "resident",
            "Bytes of physical memory jemalloc holds (stats.resident, dirty pages included): \
             what the heap costs the machine.",
        ),
        (
            "Retained",
            "retained",
            "Virtual memory jemalloc keeps mapped but unused instead of returning it \
             (stats.retained); not resident.",
        ),
    ] {
        let panel = timeseries(title, description, "bytes").width(6).query(
            format!("heapscape_jemalloc_{metric}_bytes{{{sel}}}"),
            LEGEND,
        );
        // Retained may legitimately stay 0 (jemalloc configured to unmap).
        b.add(if metric == "retained" {
            panel
        } else {
            panel.moves_under_load()
        });
    }
    b.add(
        timeseries(
            "Before and after pooling: resident and allocated",
            "Averages per `pooling` label across the selected instances: the same workload \
             without pooling (off) and with it (on).",
            "bytes",
        )
        .width(12)
        .moves_under_load()
        .query(
            format!(
                "avg by ({by}) (heapscape_jemalloc_resident_bytes{{{sel}}})",
                by = config.by("pooling")
            ),
            "resident pooling={{pooling}}",
        )
        .query(
            format!(
                "avg by ({by}) (heapscape_jemalloc_allocated_bytes{{{sel}}})",
                by = config.by("pooling")
            ),
            "allocated pooling={{pooling}}",
        ),
    );
    b.add(
        timeseries(
            "Process resident set",
            "The whole process's RSS (/proc/self/statm), jemalloc's resident bytes included.",
            "bytes",
        )
        .width(12)
        .moves_under_load()
        .query(format!("heapscape_process_resident_bytes{{{sel}}}"), LEGEND),
    );
    b.add(
        timeseries(
            "jemalloc purging settings",
            "The decay settings in force (the agent's `jemalloc:` keys, or jemalloc's own): how \
             long a freed page stays dirty (resident) and then muzzy before jemalloc returns it \
             to the system, and whether background threads purge (1) or the next allocation \
             does (0). Pool caps, tuned by hand or auto-tuned, change what is allocated; these \
             change how soon the difference leaves the resident set above.",
            "s",
        )
        .width(24)
        .query(
            format!("max by ({by_instance}) (heapscape_jemalloc_dirty_decay_seconds{{{sel}}})"),
            "{{instance}} dirty decay",
        )
        .query(
            format!("max by ({by_instance}) (heapscape_jemalloc_muzzy_decay_seconds{{{sel}}})"),
            "{{instance}} muzzy decay",
        )
        .query(
            format!("max by ({by_instance}) (heapscape_jemalloc_background_thread{{{sel}}})"),
            "{{instance}} background threads (1 = on)",
        ),
    );

    b.row("Churn");
    b.add(
        timeseries(
            "Allocation rate",
            "Bytes allocated per second (counting allocator), the rate Go dashboards plot next \
             to heap size. Pooling removes the per-request buffer from it.",
            "binBps",
        )
        .width(8)
        .moves_under_load()
        .query(
            format!("sum by ({by_instance}) (rate(heapscape_alloc_bytes_total{{{sel}}}[$__rate_interval]))"),
            LEGEND,
        ),
    );
    b.add(
        timeseries(
            "Allocations per second",
            "Allocation calls per second (counting allocator) and jemalloc's small + large \
             allocation requests per second.",
            "ops",
        )
        .width(8)
        .moves_under_load()
        .query(
            format!("sum by ({by_instance}) (rate(heapscape_alloc_allocations_total{{{sel}}}[$__rate_interval]))"),
            "{{instance}} pooling={{pooling}} allocations",
        )
        .query(
            format!(
                "sum by ({by_instance}) (rate(heapscape_jemalloc_small_requests_total{{{sel}}}[$__rate_interval])) \
                 + sum by ({by_instance}) (rate(heapscape_jemalloc_large_requests_total{{{sel}}}[$__rate_interval]))"
            ),
            "{{instance}} pooling={{pooling}} jemalloc requests",
        ),
    );
    b.add(
        timeseries(
            "Page faults per second",
            "Minor faults are memory given back to the OS and touched again: the cost of churn \
             a service actually pays. Major faults needed disk.",
            "ops",
        )
        .width(8)
        .query(
            format!("rate(heapscape_process_minor_page_faults_total{{{sel}}}[$__rate_interval])"),
            "{{instance}} pooling={{pooling}} minor",
        )
        .query(
            format!("rate(heapscape_process_major_page_faults_total{{{sel}}}[$__rate_interval])"),
            "{{instance}} pooling={{pooling}} major",
        ),
    );

    b.row("Fragmentation");
    b.add(
        timeseries(
            "Fragmentation (active − allocated)",
            "Bytes in active pages not used by live allocations.",
            "bytes",
        )
        .width(8)
        .query(
            format!("heapscape_jemalloc_active_bytes{{{sel}}} - heapscape_jemalloc_allocated_bytes{{{sel}}}"),
            LEGEND,
        ),
    );
    b.add(
        timeseries(
            "Dirty pages (resident − active − metadata)",
            "Resident pages that hold no live data: freed memory jemalloc has not yet purged.",
            "bytes",
        )
        .width(8)
        .query(
            format!(
                "heapscape_jemalloc_resident_bytes{{{sel}}} - heapscape_jemalloc_active_bytes{{{sel}}} \
                 - heapscape_jemalloc_metadata_bytes{{{sel}}}"
            ),
            LEGEND,
        ),
    );
    b.add(
        timeseries(
            "Mapped and metadata",
            "Bytes in mapped extents (stats.mapped) and jemalloc's own metadata (stats.metadata).",
            "bytes",
        )
        .width(8)
        .query(
            format!("heapscape_jemalloc_mapped_bytes{{{sel}}}"),
            "{{instance}} pooling={{pooling}} mapped",
        )
        .query(
            format!("heapscape_jemalloc_metadata_bytes{{{sel}}}"),
            "{{instance}} pooling={{pooling}} metadata",
        ),
    );

    b.row("Heartbeat");
    b.add(
        timeseries(
            "Sample duration",
            "Time of one heartbeat tick (jemalloc epoch advance, reads, publication of the \
             pools): p99 from the histogram, and the mean.",
            "s",
        )
        .width(8)
        .moves_under_load()
        .query(
            format!(
                "histogram_quantile(0.99, sum by ({by}) \
                 (rate(heapscape_heartbeat_sample_duration_seconds_bucket{{{sel}}}[$__rate_interval])))",
                by = config.by("job, instance, le")
            ),
            "{{instance}} p99",
        )
        .query(
            format!(
                "rate(heapscape_heartbeat_sample_duration_seconds_sum{{{sel}}}[$__rate_interval]) \
                 / rate(heapscape_heartbeat_sample_duration_seconds_count{{{sel}}}[$__rate_interval])"
            ),
            "{{instance}} mean",
        ),
    );
    b.add(
        timeseries(
            "Staleness",
            "Seconds since the last successful heap sample, next to the configured interval. \
             Well above the interval: the heartbeat is stuck or failing.",
            "s",
        )
        .width(8)
        .query(
            format!("time() - heapscape_heartbeat_last_success_timestamp_seconds{{{sel}}}"),
            "{{instance}} since last sample",
        )
        .query(
            format!("heapscape_heartbeat_interval_seconds{{{sel}}}"),
            "{{instance}} interval",
        ),
    );
    b.add(
        stat(
            "Heartbeats up",
            "Instances whose last heap sample succeeded (heapscape_heartbeat_up = 1) out of \
             those reporting. A sample fails when the process's statistics cannot be read; the \
             service's log says why.",
            "short",
        )
        .moves_under_load()
        .width(4)
        .height(8)
        .query(format!("sum(heapscape_heartbeat_up{{{sel}}})"), "up")
        .query(
            format!("count(heapscape_heartbeat_up{{{sel}}})"),
            "reporting",
        ),
    );
    b.add(
        timeseries(
            "Config reloads",
            "Reloads attempted and rejected (SIGHUP or a change of the file). Loads and \
             rejections are also drawn as annotations on every panel.",
            "short",
        )
        .width(4)
        .query(
            format!("increase(heapscape_config_reloads_total{{{sel}}}[$__rate_interval])"),
            "{{instance}} reloads",
        )
        .query(
            format!("increase(heapscape_config_reload_failures_total{{{sel}}}[$__rate_interval])"),
            "{{instance}} failures",
        ),
    );
    dashboard(
        Meta {
            uid: "heapscape-heap",
            file_name: "heapscape-heap.json",
            title: "Heap: before and after pooling",
            description: "jemalloc heap of services with and without buffer pooling: heap size, \
                          allocation and page-fault rates, fragmentation, and the heartbeat that \
                          samples them.",
            tags: &["memory", "jemalloc"],
        },
        variables(config, false),
        event_annotations(&s.sel, &s.sel),
        b,
    )
}

fn pool(config: &Config) -> Dashboard {
    let s = Selectors::new(config);
    let (pool_sel, fleet_sel) = (&s.pool_sel, &s.fleet_sel);
    let mut b = Board::new();
    b.row("Efficiency");
    b.add(
        timeseries(
            "Hit ratio",
            "Share of gets served from idle buffers (hits / (hits + misses)). Low while the \
             pool warms up; a ratio that stays low means the idle caps are too small.",
            "percentunit",
        )
        .width(8)
        .moves_under_load()
        .query(
            format!(
                "{hits} / (({hits} + {misses}) > 0)",
                hits = s.pool_rate("heapscape_pool_hits_total", ""),
                misses = s.pool_rate("heapscape_pool_misses_total", "")
            ),
            "{{instance}} {{pool}}",
        ),
    );
    b.add(
        timeseries(
            "Hits, misses and returns",
            "Gets served from the pool (hits), gets that allocated (misses), and buffers \
             returned, per second.",
            "ops",
        )
        .width(8)
        .moves_under_load()
        .query(
            s.pool_rate("heapscape_pool_hits_total", ""),
            "{{instance}} {{pool}} hits",
        )
        .query(
            s.pool_rate("heapscape_pool_misses_total", ""),
            "{{instance}} {{pool}} misses",
        )
        .query(
            s.pool_rate("heapscape_pool_returns_total", ""),
            "{{instance}} {{pool}} returns",
        ),
    );
    b.add(
        timeseries(
            "Discards by reason",
            "Buffers released instead of kept, per second, by reason. When returned: over_max \
             (larger than the max buffer size, with over_max: drop), idle_buffers_cap, \
             idle_bytes_cap. Later: idle_timeout (trimmed after staying idle) and reconfigure \
             (released when a reload lowered a cap). And buffers shrunk to the max (over_max: \
             shrink).",
            "ops",
        )
        .width(8)
        .stacked()
        .query(
            format!(
                "sum by ({by}) (rate(heapscape_pool_discards_total{{{pool_sel}}}[$__rate_interval]))",
                by = config.by("job, instance, pool, reason"),
            ),
            "{{instance}} {{pool}} {{reason}}",
        )
        .query(
            s.pool_rate("heapscape_pool_shrinks_total", ""),
            "{{instance}} {{pool}} shrunk",
        ),
    );

    b.row("Idle buffers");
    b.add(
        timeseries(
            "Idle buffers",
            "Buffers waiting in the pool for the next get.",
            "short",
        )
        .query(
            format!("heapscape_pool_idle_buffers{{{pool_sel}}}"),
            "{{instance}} {{pool}}",
        ),
    );
    b.add(
        timeseries(
            "Idle bytes and their cap",
            "Capacity held by idle buffers: memory the pool keeps so that requests need not \
             allocate, against max_idle_bytes.",
            "bytes",
        )
        .query(
            format!("heapscape_pool_idle_bytes{{{pool_sel}}}"),
            "{{instance}} {{pool}} idle",
        )
        .query(
            format!("heapscape_pool_max_idle_bytes{{{pool_sel}}}"),
            "{{instance}} {{pool}} cap",
        ),
    );

    b.row("Idle caps: configured against recommended");
    b.add(
        timeseries(
            "Max idle buffers",
            "The max_idle_buffers in force against the one the pool recommends: the peak of \
             buffers in use over its recommendation_window plus an eighth. A cap far above \
             lets the pool keep buffers no request of the window needed.",
            "short",
        )
        .width(8)
        .moves_under_load()
        .query(
            format!("heapscape_pool_max_idle_buffers{{{pool_sel}}}"),
            "{{instance}} {{pool}} configured",
        )
        .query(
            format!("heapscape_pool_recommended_max_idle_buffers{{{pool_sel}}}"),
            "{{instance}} {{pool}} recommended",
        ),
    );
    b.add(
        timeseries(
            "Max idle bytes",
            "The max_idle_bytes in force against the one the pool recommends: the recommended \
             max idle buffers times the recommended max buffer size, so that neither cap \
             discards what the other allows.",
            "bytes",
        )
        .width(8)
        .log_scale()
        .moves_under_load()
        .query(
            format!("heapscape_pool_max_idle_bytes{{{pool_sel}}}"),
            "{{instance}} {{pool}} configured",
        )
        .query(
            format!("heapscape_pool_recommended_max_idle_bytes{{{pool_sel}}}"),
            "{{instance}} {{pool}} recommended",
        ),
    );
    // Not marked as moving: buffers in use is sampled at each heartbeat and is 0 whenever no
    // request holds one at that instant, however busy the service.
    b.add(
        timeseries(
            "Buffers in use, and the peak held",
            "Buffers handed out and not yet returned, sampled at each heartbeat, and the \
             most buffers held at once (in use or idle) over the recommendation_window: what \
             the recommended max idle buffers is derived from. The pool creates a buffer only \
             when none is idle, so the buffers it holds rise to the peak of concurrent use and \
             stay there until trimmed; a sample of those in use would miss a burst between \
             two heartbeats.",
            "short",
        )
        .width(8)
        .query(
            format!("heapscape_pool_in_use_buffers{{{pool_sel}}}"),
            "{{instance}} {{pool}} in use",
        )
        .query(
            format!("heapscape_pool_peak_held_buffers{{{pool_sel}}}"),
            "{{instance}} {{pool}} peak held over the window",
        ),
    );

    b.row("Sizes of returned buffers");
    b.add(
        heatmap(
            "Returned lengths",
            "How many bytes returned buffers held, per second, in power-of-two buckets across \
             the selected instances. The max buffer size belongs just above the bulk.",
            "bytes",
        )
        .moves_under_load()
        .query(
            format!(
                "sum by (le) (rate(heapscape_pool_returned_length_bytes_bucket{{{pool_sel}}}[$__rate_interval]))"
            ),
            "{{le}}",
        ),
    );
    b.add(
        heatmap(
            "Returned capacities",
            "Capacities of returned buffers before any shrink: what keeping them would cost.",
            "bytes",
        )
        .query(
            format!(
                "sum by (le) (rate(heapscape_pool_returned_capacity_bytes_bucket{{{pool_sel}}}[$__rate_interval]))"
            ),
            "{{le}}",
        ),
    );

    b.row("Max buffer size: configured against recommended");
    b.add(
        timeseries(
            "Per instance",
            "The max buffer size in force; the quantile of returned lengths over the alert's \
             window, as a power of two (the recording rule that the alert \
             HeapscapePoolMaxBufferSizeFarFromRecommended compares the max with); and the one \
             each instance recommends from its returns within its recommendation_window \
             (default 1 h) on fine buckets, four per octave, so at most about 20 % above its \
             recommend_percentile (default p95). The two can differ by up to one octave: the \
             alert's line reads the power-of-two histogram.",
            "bytes",
        )
        .log_scale()
        .query(
            format!("heapscape_pool_max_buffer_size_bytes{{{pool_sel}}}"),
            "{{instance}} {{pool}} configured",
        )
        .query(
            format!(
                "{windowed}{{{sel}}}",
                windowed = windowed_recommendation_record(config),
                sel = s.record_pool_sel
            ),
            &format!(
                "{{{{instance}}}} {{{{pool}}}} {q} over {window} (alert)",
                q = quantile_name(config.recommend_quantile),
                window = config.far_from_recommended_window
            ),
        )
        .query(
            format!("heapscape_pool_recommended_max_buffer_size_bytes{{{pool_sel}}}"),
            "{{instance}} {{pool}} recommended (pool, its window)",
        ),
    );
    b.add(
        timeseries(
            "Fleet-wide (all instances of the job)",
            "p95 of returned lengths of every instance of a job together (the histograms' \
             buckets summed across instances), as a power of two, against the largest and \
             smallest configured max. Ignores the instance selection; jobs stay apart. The \
             exported histograms have power-of-two buckets, so this line and the per-instance \
             recommendations, which the pools compute on finer buckets (at most about 20 % \
             above the percentile) over their recommendation_window, can differ by up to one \
             octave.",
            "bytes",
        )
        .log_scale()
        .moves_under_load()
        .query(
            s.fleet_length_quantile(config.recommend_quantile, "$__rate_interval"),
            &format!(
                "{{{{job}}}} {{{{pool}}}} fleet {q} (recommended)",
                q = quantile_name(config.recommend_quantile)
            ),
        )
        .query(
            format!(
                "max by ({by}) (heapscape_pool_max_buffer_size_bytes{{{fleet_sel}}})",
                by = config.by("job, pool")
            ),
            "{{job}} {{pool}} configured (largest)",
        )
        .query(
            format!(
                "min by ({by}) (heapscape_pool_max_buffer_size_bytes{{{fleet_sel}}})",
                by = config.by("job, pool")
            ),
            "{{job}} {{pool}} configured (smallest)",
        ),
    );
    b.add(
        stat(
            "Fleet recommended max over the time range",
            "p95 of all returned lengths in the dashboard's time range, across every instance \
             of the job, rounded up to a power of two: the value to set as max_buffer_size.",
            "bytes",
        )
        .width(6)
        .moves_under_load()
        .query(
            s.fleet_length_quantile(config.recommend_quantile, "$__range"),
            "{{job}} {{pool}}",
        ),
    );
    b.add(
        stat(
            "Fleet recommended initial capacity",
            "Median of all returned lengths in the time range, as a power of two: a new \
             buffer this large serves half of the requests without growing.",
            "bytes",
        )
        .width(6)
        .moves_under_load()
        .query(
            s.fleet_length_quantile(config.initial_capacity_quantile, "$__range"),
            "{{job}} {{pool}}",
        ),
    );
    b.add(
        timeseries(
            "Share of returns over the max",
            "Returned buffers larger than the max in force (shrunk or dropped) per return: each \
             one regrows on its next large use.",
            "percentunit",
        )
        .width(12)
        .query(
            format!(
                "({shrinks} + {over_max}) / ({returns} > 0)",
                shrinks = s.pool_rate("heapscape_pool_shrinks_total", ""),
                over_max = s.pool_rate("heapscape_pool_discards_total", r#",reason="over_max""#),
                returns = s.pool_rate("heapscape_pool_returns_total", ""),
            ),
            "{{instance}} {{pool}}",
        ),
    );
    b.add(
        table(
            "What each candidate max would discard (fleet, time range)",
            "For every candidate max buffer size (a bucket bound), the share of returns in the \
             time range, across every instance of the job, whose length is above it: \
             1 - bucket(le=max) / count. Pick the smallest max whose share you can afford.",
        )
        .width(12)
        .height(12)
        .moves_under_load()
        .query(
            format!(
                "1 - sum by ({by_le}) (increase(heapscape_pool_returned_length_bytes_bucket{{{fleet_sel},le!=\"+Inf\"}}[$__range])) \
                 / ignoring (le) group_left () \
                 (sum by ({by}) (increase(heapscape_pool_returned_length_bytes_count{{{fleet_sel}}}[$__range])) > 0)",
                by_le = config.by("job, pool, le"),
                by = config.by("job, pool"),
            ),
            "",
        )
        .transformation(json!({
            "id": "organize",
            "options": {
                "excludeByName": { "Time": true },
                "renameByName": {
                    "job": "Job", "le": "Candidate max", "pool": "Pool",
                    "Value": "Returns it would discard",
                },
            },
        }))
        .transformation(json!({
            "id": "convertFieldType",
            "options": { "conversions": [{ "targetField": "Candidate max", "destinationType": "number" }] },
        }))
        .transformation(json!({
            "id": "sortBy",
            "options": { "sort": [{ "field": "Candidate max" }] },
        }))
        .column_unit("Candidate max", "bytes")
        .column_unit("Returns it would discard", "percentunit"),
    );
    let candidate_gauge = |metric: &str| {
        format!(
            "max by ({by}) ({metric}{{{pool_sel}}})",
            by = config.by("job, instance, pool, candidate"),
        )
    };
    b.add(
        table(
            "What each candidate max would cost (per instance, recommendation window)",
            "Each instance's recommended max buffer size and its fine-bucket neighbours (one \
             row per candidate: lower, recommended, higher), computed by the pool over its \
             recommendation_window: the share of the window's returns longer than the \
             candidate (each would regrow its buffer), and the idle memory the candidate \
             implies (min(max idle buffers, peak held) times the candidate, capped by max \
             idle bytes). A lower max saves idle memory at the price of more regrowth.",
        )
        .width(12)
        .height(12)
        .moves_under_load()
        .query(
            candidate_gauge("heapscape_pool_candidate_max_buffer_size_bytes"),
            "",
        )
        .query(
            candidate_gauge("heapscape_pool_candidate_over_max_ratio"),
            "",
        )
        .query(candidate_gauge("heapscape_pool_candidate_idle_bytes"), "")
        // One row per job, instance, pool and candidate, joined on those labels.
        .transformation(json!({ "id": "merge", "options": {} }))
        .transformation(json!({
            "id": "organize",
            "options": {
                "excludeByName": { "Time": true },
                "indexByName": {
                    "job": 0, "instance": 1, "pool": 2, "candidate": 3,
                    "Value #A": 4, "Value #B": 5, "Value #C": 6,
                },
                "renameByName": {
                    "job": "Job", "instance": "Instance", "pool": "Pool",
                    "candidate": "Candidate",
                    "Value #A": "Candidate max",
                    "Value #B": "Returns over it",
                    "Value #C": "Idle memory it implies",
                },
            },
        }))
        // Within a pool the candidate max rises from lower to recommended to higher.
        .sort_by(&["Job", "Instance", "Pool", "Candidate max"])
        .column_unit("Candidate max", "bytes")
        .column_unit("Returns over it", "percentunit")
        .column_unit("Idle memory it implies", "bytes"),
    );
    b.add(
        timeseries(
            "Recommended initial capacity per instance",
            "Median length returned within each instance's recommendation_window, rounded up \
             to a fine bucket (four per octave): the initial_capacity that serves half of the \
             requests without growing.",
            "bytes",
        )
        .width(12)
        .log_scale()
        .query(
            format!("heapscape_pool_recommended_initial_capacity_bytes{{{pool_sel}}}"),
            "{{instance}} {{pool}}",
        ),
    );

    auto_tuning_row(&s, &mut b);
    dashboard(
        Meta {
            uid: "heapscape-pool",
            file_name: "heapscape-pool.json",
            title: "Buffer pool tuning",
            description: "What ops use to set a pool's max buffer size and idle caps: hit ratio, \
                          discards by reason, idle memory, the idle caps against the \
                          recommended ones, the distribution of returned sizes, the \
                          recommended max and what each candidate costs, per instance and \
                          fleet-wide, and auto-tuning's values in force against its targets.",
            tags: &["buffer-pool"],
        },
        variables(config, true),
        event_annotations(&s.sel, &s.pool_sel),
        b,
    )
}

/// The pool dashboard's auto-tuning row: each tuned setting in force against its target (and
/// the max against its bounds), and the moves, for the pools with auto-tuning on.
fn auto_tuning_row(s: &Selectors<'_>, b: &mut Board) {
    let config = s.config;
    let pool_sel = &s.pool_sel;
    let gauge = |metric: &str| s.auto_tuned(&format!("{metric}{{{pool_sel}}}"));
    b.row("Auto-tuning: values in force against their targets (pools with auto_tune on)");
    b.add(
        stat(
            "Auto-tuning",
            "Whether each pool follows its own recommendations (auto_tune.enabled, \
             heapscape_pool_auto_tune_enabled). The panels of this row draw only the pools \
             where it is on: while it is off, a pool's targets equal its values in force and \
             its bounds constrain nothing. Every move is also drawn as an \"Auto-tuned\" \
             annotation and logged by the service (`pool auto-tuned: max_buffer_size 4194304 \
             -> 1327104`).",
            "none",
        )
        .width(24)
        .height(3)
        .value_text("1", "on", "green")
        .value_text("0", "off", "text")
        .no_value("No pool reports heapscape_pool_auto_tune_enabled")
        .query(
            format!(
                "max by ({by}) (heapscape_pool_auto_tune_enabled{{{pool_sel}}})",
                by = config.by("job, instance, pool")
            ),
            "{{instance}} {{pool}}",
        ),
    );
    b.add(
        timeseries(
            "Max buffer size: in force, target and bounds",
            "The max buffer size in force; auto-tuning's target, the pool's recommended max \
             (also drawn) clamped between the lowest and the highest bound (the highest is \
             auto_tune.highest_max_buffer_size, or max_idle_bytes when lower). The value in \
             force moves to the target once the target has stayed beyond the hysteresis band \
             (auto_tune.hysteresis, default 25 % of the value in force), on one side, for the \
             cooldown (auto_tune.cooldown). A target pinned at the highest bound with the \
             recommendation above it: the bound stops the pool from following traffic and \
             the larger requests regrow their buffers; raise the bound if the memory is there \
             (alert HeapscapePoolAutoTuneHeldAtHighestBound). Pinned at the lowest bound: \
             traffic needs smaller buffers than it allows; lower it to keep less memory \
             idle. A target away from the value in force that does not move it: within the \
             band, or not yet held for the cooldown.",
            "bytes",
        )
        .log_scale()
        .query(
            gauge("heapscape_pool_max_buffer_size_bytes"),
            "{{instance}} {{pool}} in force",
        )
        .query(
            gauge("heapscape_pool_auto_tune_target_max_buffer_size_bytes"),
            "{{instance}} {{pool}} target",
        )
        .query(
            gauge("heapscape_pool_recommended_max_buffer_size_bytes"),
            "{{instance}} {{pool}} recommended",
        )
        .query(
            gauge("heapscape_pool_auto_tune_lowest_max_buffer_size_bytes"),
            "{{instance}} {{pool}} lowest bound",
        )
        .query(
            gauge("heapscape_pool_auto_tune_highest_max_buffer_size_bytes"),
            "{{instance}} {{pool}} highest bound",
        ),
    );
    b.add(
        timeseries(
            "Initial capacity: in force and target",
            "The initial capacity in force (the capacity of a buffer allocated on a miss) \
             against auto-tuning's target: the pool's recommended initial capacity (the \
             median length returned within its recommendation_window), at most the max \
             buffer size in force. A target at the max: most requests need the largest \
             buffers the pool keeps. The value in force also drops at once with a lower max.",
            "bytes",
        )
        .log_scale()
        .query(
            gauge("heapscape_pool_initial_capacity_bytes"),
            "{{instance}} {{pool}} in force",
        )
        .query(
            gauge("heapscape_pool_auto_tune_target_initial_capacity_bytes"),
            "{{instance}} {{pool}} target",
        ),
    );
    b.add(
        timeseries(
            "Max idle buffers: in force and target",
            "The max_idle_buffers in force against auto-tuning's target: the recommended one \
             (the peak of buffers held over the recommendation_window plus an eighth), at \
             most the configured value, a ceiling auto-tuning never exceeds. A target pinned \
             at the ceiling while \"Idle caps: configured against recommended\" shows a \
             higher recommendation: the configured max_idle_buffers is too low for the \
             traffic; raise it if the memory is there.",
            "short",
        )
        .width(8)
        .query(
            gauge("heapscape_pool_max_idle_buffers"),
            "{{instance}} {{pool}} in force",
        )
        .query(
            gauge("heapscape_pool_auto_tune_target_max_idle_buffers"),
            "{{instance}} {{pool}} target",
        ),
    );
    b.add(
        timeseries(
            "Max idle bytes: in force and target",
            "The max_idle_bytes in force against auto-tuning's target: the target idle \
             buffers times the max buffer size in force, at least that max and at most the \
             configured value (a ceiling, like max_idle_buffers). A target pinned at the \
             ceiling: the configured max_idle_bytes, the memory budget granted to idle \
             buffers, is what limits the pool.",
            "bytes",
        )
        .width(8)
        .log_scale()
        .query(
            gauge("heapscape_pool_max_idle_bytes"),
            "{{instance}} {{pool}} in force",
        )
        .query(
            gauge("heapscape_pool_auto_tune_target_max_idle_bytes"),
            "{{instance}} {{pool}} target",
        ),
    );
    b.add(
        timeseries(
            "Moves by setting",
            "Changes auto-tuning made, per setting (max_buffer_size, initial_capacity, \
             max_idle_buffers, max_idle_bytes). A few moves after a start, a reload or a \
             change of traffic are the pool following it. One setting moving at every \
             cooldown, back and forth: its recommendation swings across the band faster than \
             the cooldown; lengthen auto_tune.cooldown or raise auto_tune.hysteresis. A reload \
             that changes a tuned key or turns tuning off applies the file as written, \
             without a move counted here.",
            "short",
        )
        .width(8)
        .shows_auto_tune_moves()
        .query(
            s.auto_tuned(&format!(
                "sum by ({by}) (increase(heapscape_pool_auto_tune_moves_total{{{pool_sel}}}[$__rate_interval]))",
                by = config.by("job, instance, pool, setting"),
            )),
            "{{instance}} {{pool}} {{setting}}",
        ),
    );
}

fn fleet(config: &Config) -> Dashboard {
    let s = Selectors::new(config);
    let (sel, job_sel, by_instance) = (&s.sel, &s.job_sel, &s.by_instance);
    let mut b = Board::new();
    b.row("Totals across the selected instances");
    b.add(
        stat(
            "Instances sampling",
            "Instances whose last heap sample succeeded.",
            "short",
        )
        .moves_under_load()
        .query(format!("sum(heapscape_heartbeat_up{{{sel}}})"), "up"),
    );
    b.add(
        stat("Resident", "Sum of jemalloc resident bytes.", "bytes")
            .moves_under_load()
            .query(
                format!("sum(heapscape_jemalloc_resident_bytes{{{sel}}})"),
                "resident",
            ),
    );
    b.add(
        stat("Allocated", "Sum of jemalloc allocated bytes.", "bytes")
            .moves_under_load()
            .query(
                format!("sum(heapscape_jemalloc_allocated_bytes{{{sel}}})"),
                "allocated",
            ),
    );
    b.add(
        stat(
            "Allocation rate",
            "Bytes allocated per second, all instances.",
            "binBps",
        )
        .moves_under_load()
        .query(
            format!("sum(rate(heapscape_alloc_bytes_total{{{sel}}}[$__rate_interval]))"),
            "allocation rate",
        ),
    );
    b.add(
        stat(
            "Idle pool bytes",
            "Memory held by idle pooled buffers, all pools.",
            "bytes",
        )
        .query(format!("sum(heapscape_pool_idle_bytes{{{sel}}})"), "idle"),
    );
    b.add(
        stat(
            "Pool hit ratio",
            "Hits / gets across every pool and instance.",
            "percentunit",
        )
        .moves_under_load()
        .query(
            format!(
                "sum(rate(heapscape_pool_hits_total{{{sel}}}[$__rate_interval])) / \
                 ((sum(rate(heapscape_pool_hits_total{{{sel}}}[$__rate_interval])) \
                 + sum(rate(heapscape_pool_misses_total{{{sel}}}[$__rate_interval]))) > 0)"
            ),
            "hit ratio",
        ),
    );
    b.add(
        timeseries(
            "Resident by job (recording rule)",
            "job:heapscape_jemalloc_resident_bytes:sum, evaluated by Prometheus.",
            "bytes",
        )
        .width(8)
        .moves_under_load()
        .query(
            format!("job:heapscape_jemalloc_resident_bytes:sum{{{job_sel}}}"),
            "{{job}}",
        ),
    );
    b.add(
        timeseries(
            "Allocation rate by job (recording rule)",
            "Bytes allocated per second over the recording rules' rate window, evaluated by \
             Prometheus.",
            "binBps",
        )
        .width(8)
        .moves_under_load()
        .query(
            format!(
                "{record}{{{job_sel}}}",
                record = rate_record(config, "job", "heapscape_alloc_bytes")
            ),
            "{{job}}",
        ),
    );
    b.add(
        timeseries(
            "Resident by pooling",
            "Sum of resident bytes of the instances with and without pooling.",
            "bytes",
        )
        .width(8)
        .query(
            format!(
                "sum by ({by}) (heapscape_jemalloc_resident_bytes{{{sel}}})",
                by = config.by("pooling")
            ),
            "pooling={{pooling}}",
        ),
    );

    b.row("Top instances");
    b.add(
        timeseries(
            "Top 10 by resident memory",
            "The ten instances holding the most resident heap at each moment.",
            "bytes",
        )
        .query(
            format!("topk(10, heapscape_jemalloc_resident_bytes{{{sel}}})"),
            LEGEND,
        ),
    );
    b.add(
        timeseries(
            "Top 10 by allocation rate",
            "The ten instances allocating the most bytes per second.",
            "binBps",
        )
        .moves_under_load()
        .query(
            format!(
                "topk(10, sum by ({by_instance}) (rate(heapscape_alloc_bytes_total{{{sel}}}[$__rate_interval])))"
            ),
            LEGEND,
        ),
    );
    b.add(
        table(
            "Largest heaps now",
            "Instances by resident bytes, largest first.",
        )
        .moves_under_load()
        .column_unit("Resident", "bytes")
        .query(
            format!("sort_desc(topk(10, heapscape_jemalloc_resident_bytes{{{sel}}}))"),
            "",
        )
        .transformation(json!({
            "id": "organize",
            "options": {
                "excludeByName": { "Time": true, "__name__": true },
                "renameByName": { "Value": "Resident" },
            },
        })),
    );
    b.add(
        timeseries(
            "Top 10 by minor page-fault rate",
            "The ten instances paying the most for memory churn.",
            "ops",
        )
        .query(
            format!(
                "topk(10, rate(heapscape_process_minor_page_faults_total{{{sel}}}[$__rate_interval]))"
            ),
            LEGEND,
        ),
    );
    dashboard(
        Meta {
            uid: "heapscape-fleet",
            file_name: "heapscape-fleet.json",
            title: "Fleet",
            description: "Every instance at once: totals, the largest heaps and the fastest \
                          allocators.",
            tags: &["fleet"],
        },
        variables(config, false),
        event_annotations(&s.sel, &s.sel),
        b,
    )
}
