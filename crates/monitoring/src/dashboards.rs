//! The three dashboards: the heap before and after pooling, buffer pool tuning, and the fleet.
//!
//! Every query filters on the `job` and `instance` variables (`$job`, `$instance`; the pool
//! dashboard also on `$pool`). Fleet-wide numbers deliberately ignore `$instance`: a
//! histogram's `_bucket` series summed across instances is the fleet's distribution, which is
//! how the fleet-wide recommended max is computed.

use serde_json::{Value, json};

use crate::TAG;
use crate::panels::{Board, annotation, heatmap, label_variable, stat, table, timeseries};

/// A generated dashboard.
#[derive(Debug, Clone)]
pub struct Dashboard {
    /// Stable uid (links and the home dashboard refer to it).
    pub uid: &'static str,
    /// File name under `grafana/dashboards/`.
    pub file_name: &'static str,
    /// The dashboard JSON as Grafana's file provisioning reads it.
    pub json: Value,
}

impl Dashboard {
    /// The JSON as committed: pretty-printed, ending with a newline.
    pub fn to_json_string(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.json).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// Every heapscape dashboard, the home dashboard (heap before and after pooling) first.
pub fn dashboards() -> Vec<Dashboard> {
    vec![heap(), pool(), fleet()]
}

/// The selected jobs and instances.
const SEL: &str = r#"job=~"$job",instance=~"$instance""#;

/// The selected jobs, instances and pools.
const POOL_SEL: &str = r#"job=~"$job",instance=~"$instance",pool=~"$pool""#;

/// The selected jobs and pools, every instance: the fleet.
const FLEET_POOL_SEL: &str = r#"job=~"$job",pool=~"$pool""#;

/// The labels that identify one process (`service` and `pooling` are constant per process
/// and kept for the legends).
const BY_INSTANCE: &str = "job, instance, service, pooling";

/// Legend of a per-process series.
const LEGEND: &str = "{{instance}} {{service}} pooling={{pooling}}";

fn variables(with_pool: bool) -> Vec<Value> {
    let mut list = vec![
        label_variable("job", "Job", "label_values(heapscape_heartbeat_up, job)"),
        label_variable(
            "instance",
            "Instance",
            r#"label_values(heapscape_heartbeat_up{job=~"$job"}, instance)"#,
        ),
    ];
    if with_pool {
        list.push(label_variable(
            "pool",
            "Pool",
            r#"label_values(heapscape_pool_returns_total{job=~"$job",instance=~"$instance"}, pool)"#,
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
        "panels": board.into_panels(),
    });
    Dashboard {
        uid,
        file_name,
        json,
    }
}

fn reload_annotations() -> Vec<Value> {
    vec![
        annotation(
            "Config loaded",
            &format!(
                "changes(heapscape_config_last_reload_success_timestamp_seconds{{{SEL}}}[1m]) > 0"
            ),
            "blue",
            "{{instance}} {{service}}: config loaded (start or successful reload)",
        ),
        annotation(
            "Config reload failed",
            &format!("increase(heapscape_config_reload_failures_total{{{SEL}}}[1m]) > 0"),
            "red",
            "{{instance}} {{service}}: config reload rejected, the previous config stays",
        ),
    ]
}

fn heap() -> Dashboard {
    let mut b = Board::new();
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
        b.add(timeseries(title, description, "bytes").width(6).query(
            format!("heapscape_jemalloc_{metric}_bytes{{{SEL}}}"),
            LEGEND,
        ));
    }
    b.add(
        timeseries(
            "Before and after pooling: resident and allocated",
            "Averages per `pooling` label across the selected instances: the same workload \
             without pooling (off) and with it (on).",
            "bytes",
        )
        .width(12)
        .query(
            format!("avg by (pooling) (heapscape_jemalloc_resident_bytes{{{SEL}}})"),
            "resident pooling={{pooling}}",
        )
        .query(
            format!("avg by (pooling) (heapscape_jemalloc_allocated_bytes{{{SEL}}})"),
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
        .query(format!("heapscape_process_resident_bytes{{{SEL}}}"), LEGEND),
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
        .query(
            format!("sum by ({BY_INSTANCE}) (rate(heapscape_alloc_bytes_total{{{SEL}}}[$__rate_interval]))"),
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
        .query(
            format!("sum by ({BY_INSTANCE}) (rate(heapscape_alloc_allocations_total{{{SEL}}}[$__rate_interval]))"),
            "{{instance}} pooling={{pooling}} allocations",
        )
        .query(
            format!(
                "sum by ({BY_INSTANCE}) (rate(heapscape_jemalloc_small_requests_total{{{SEL}}}[$__rate_interval])) \
                 + sum by ({BY_INSTANCE}) (rate(heapscape_jemalloc_large_requests_total{{{SEL}}}[$__rate_interval]))"
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
            format!("rate(heapscape_process_minor_page_faults_total{{{SEL}}}[$__rate_interval])"),
            "{{instance}} pooling={{pooling}} minor",
        )
        .query(
            format!("rate(heapscape_process_major_page_faults_total{{{SEL}}}[$__rate_interval])"),
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
            format!("heapscape_jemalloc_active_bytes{{{SEL}}} - heapscape_jemalloc_allocated_bytes{{{SEL}}}"),
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
                "heapscape_jemalloc_resident_bytes{{{SEL}}} - heapscape_jemalloc_active_bytes{{{SEL}}} \
                 - heapscape_jemalloc_metadata_bytes{{{SEL}}}"
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
            format!("heapscape_jemalloc_mapped_bytes{{{SEL}}}"),
            "{{instance}} pooling={{pooling}} mapped",
        )
        .query(
            format!("heapscape_jemalloc_metadata_bytes{{{SEL}}}"),
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
        .query(
            format!(
                "histogram_quantile(0.99, sum by (job, instance, le) \
                 (rate(heapscape_heartbeat_sample_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))"
            ),
            "{{instance}} p99",
        )
        .query(
            format!(
                "rate(heapscape_heartbeat_sample_duration_seconds_sum{{{SEL}}}[$__rate_interval]) \
                 / rate(heapscape_heartbeat_sample_duration_seconds_count{{{SEL}}}[$__rate_interval])"
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
            format!("time() - heapscape_heartbeat_last_success_timestamp_seconds{{{SEL}}}"),
            "{{instance}} since last sample",
        )
        .query(
            format!("heapscape_heartbeat_interval_seconds{{{SEL}}}"),
            "{{instance}} interval",
        ),
    );
    b.add(
        stat(
            "Heartbeats up",
            "Instances whose last heap sample succeeded (heapscape_heartbeat_up = 1) out of \
             those reporting. 0 up usually means jemalloc is not the global allocator.",
            "short",
        )
        .width(4)
        .height(8)
        .query(format!("sum(heapscape_heartbeat_up{{{SEL}}})"), "up")
        .query(
            format!("count(heapscape_heartbeat_up{{{SEL}}})"),
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
            format!("increase(heapscape_config_reloads_total{{{SEL}}}[$__rate_interval])"),
            "{{instance}} reloads",
        )
        .query(
            format!("increase(heapscape_config_reload_failures_total{{{SEL}}}[$__rate_interval])"),
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
        variables(false),
        reload_annotations(),
        b,
    )
}

/// `sum by (job, instance, service, pool) (rate(<metric>{<pool selection>}[$__rate_interval]))`.
fn pool_rate(metric: &str, extra: &str) -> String {
    format!(
        "sum by (job, instance, service, pool) (rate({metric}{{{POOL_SEL}{extra}}}[$__rate_interval]))"
    )
}

/// The fleet-wide `q` quantile of returned lengths, rounded up to a power of two as the pool
/// rounds its own recommendation.
fn fleet_length_quantile(q: &str, window: &str) -> String {
    format!(
        "2 ^ ceil(log2(histogram_quantile({q}, sum by (pool, le) \
         (rate(heapscape_pool_returned_length_bytes_bucket{{{FLEET_POOL_SEL}}}[{window}])))))"
    )
}

fn pool() -> Dashboard {
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
        .query(
            format!(
                "{hits} / ({hits} + {misses})",
                hits = pool_rate("heapscape_pool_hits_total", ""),
                misses = pool_rate("heapscape_pool_misses_total", "")
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
        .query(
            pool_rate("heapscape_pool_hits_total", ""),
            "{{instance}} {{pool}} hits",
        )
        .query(
            pool_rate("heapscape_pool_misses_total", ""),
            "{{instance}} {{pool}} misses",
        )
        .query(
            pool_rate("heapscape_pool_returns_total", ""),
            "{{instance}} {{pool}} returns",
        ),
    );
    b.add(
        timeseries(
            "Discards by reason",
            "Returned buffers released instead of kept, per second, by reason: over_max (larger \
             than the max buffer size, with over_max: drop), idle_buffers_cap, idle_bytes_cap, \
             idle_timeout; and buffers shrunk to the max (over_max: shrink).",
            "ops",
        )
        .width(8)
        .stacked()
        .query(
            format!(
                "sum by (job, instance, pool, reason) \
                 (rate(heapscape_pool_discards_total{{{POOL_SEL}}}[$__rate_interval]))"
            ),
            "{{instance}} {{pool}} {{reason}}",
        )
        .query(
            pool_rate("heapscape_pool_shrinks_total", ""),
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
            format!("heapscape_pool_idle_buffers{{{POOL_SEL}}}"),
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
            format!("heapscape_pool_idle_bytes{{{POOL_SEL}}}"),
            "{{instance}} {{pool}} idle",
        )
        .query(
            format!("heapscape_pool_max_idle_bytes{{{POOL_SEL}}}"),
            "{{instance}} {{pool}} cap",
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
        .query(
            format!(
                "sum by (le) (rate(heapscape_pool_returned_length_bytes_bucket{{{POOL_SEL}}}[$__rate_interval]))"
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
                "sum by (le) (rate(heapscape_pool_returned_capacity_bytes_bucket{{{POOL_SEL}}}[$__rate_interval]))"
            ),
            "{{le}}",
        ),
    );

    b.row("Max buffer size: configured against recommended");
    b.add(
        timeseries(
            "Per instance",
            "The max buffer size in force and the one each instance recommends (its \
             recommend_percentile, default p95, of returned lengths as a power of two).",
            "bytes",
        )
        .log_scale()
        .query(
            format!("heapscape_pool_max_buffer_size_bytes{{{POOL_SEL}}}"),
            "{{instance}} {{pool}} configured",
        )
        .query(
            format!("heapscape_pool_recommended_max_buffer_size_bytes{{{POOL_SEL}}}"),
            "{{instance}} {{pool}} recommended",
        ),
    );
    b.add(
        timeseries(
            "Fleet-wide (all instances of the job)",
            "p95 of returned lengths of every instance together (the histograms' buckets \
             summed across instances), as a power of two, against the largest and smallest \
             configured max. Ignores the instance selection.",
            "bytes",
        )
        .log_scale()
        .query(
            fleet_length_quantile("0.95", "$__rate_interval"),
            "{{pool}} fleet p95 (recommended)",
        )
        .query(
            format!("max by (pool) (heapscape_pool_max_buffer_size_bytes{{{FLEET_POOL_SEL}}})"),
            "{{pool}} configured (largest)",
        )
        .query(
            format!("min by (pool) (heapscape_pool_max_buffer_size_bytes{{{FLEET_POOL_SEL}}})"),
            "{{pool}} configured (smallest)",
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
        .query(fleet_length_quantile("0.95", "$__range"), "{{pool}}"),
    );
    b.add(
        stat(
            "Fleet recommended initial capacity",
            "Median of all returned lengths in the time range, as a power of two: a new \
             buffer this large serves half of the requests without growing.",
            "bytes",
        )
        .width(6)
        .query(fleet_length_quantile("0.5", "$__range"), "{{pool}}"),
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
                "({shrinks} + {over_max}) / {returns}",
                shrinks = pool_rate("heapscape_pool_shrinks_total", ""),
                over_max = pool_rate("heapscape_pool_discards_total", r#",reason="over_max""#),
                returns = pool_rate("heapscape_pool_returns_total", ""),
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
            "percentunit",
        )
        .width(12)
        .height(12)
        .query(
            format!(
                "1 - sum by (pool, le) (increase(heapscape_pool_returned_length_bytes_bucket{{{FLEET_POOL_SEL},le!=\"+Inf\"}}[$__range])) \
                 / ignoring (le) group_left sum by (pool) (increase(heapscape_pool_returned_length_bytes_count{{{FLEET_POOL_SEL}}}[$__range]))"
            ),
            "",
        )
        .transformation(json!({
            "id": "organize",
            "options": {
                "excludeByName": { "Time": true },
                "renameByName": { "le": "Candidate max", "pool": "Pool", "Value": "Returns it would discard" },
            },
        }))
        .transformation(json!({
            "id": "convertFieldType",
            "options": { "conversions": [{ "targetField": "Candidate max", "destinationType": "number" }] },
        }))
        .transformation(json!({
            "id": "sortBy",
            "options": { "sort": [{ "field": "Candidate max" }] },
        })),
    );
    b.add(
        timeseries(
            "Recommended initial capacity per instance",
            "Median returned length as a power of two, per instance: the initial_capacity \
             that serves half of the requests without growing.",
            "bytes",
        )
        .width(12)
        .log_scale()
        .query(
            format!("heapscape_pool_recommended_initial_capacity_bytes{{{POOL_SEL}}}"),
            "{{instance}} {{pool}}",
        ),
    );
    dashboard(
        Meta {
            uid: "heapscape-pool",
            file_name: "heapscape-pool.json",
            title: "Buffer pool tuning",
            description: "What ops use to set a pool's max buffer size and idle caps: hit ratio, \
                          discards by reason, idle memory, the distribution of returned sizes \
                          and the recommended max, per instance and fleet-wide.",
            tags: &["buffer-pool"],
        },
        variables(true),
        reload_annotations(),
        b,
    )
}

fn fleet() -> Dashboard {
    let mut b = Board::new();
    b.row("Totals across the selected instances");
    b.add(
        stat(
            "Instances sampling",
            "Instances whose last heap sample succeeded.",
            "short",
        )
        .query(format!("sum(heapscape_heartbeat_up{{{SEL}}})"), "up"),
    );
    b.add(
        stat("Resident", "Sum of jemalloc resident bytes.", "bytes").query(
            format!("sum(heapscape_jemalloc_resident_bytes{{{SEL}}})"),
            "resident",
        ),
    );
    b.add(
        stat("Allocated", "Sum of jemalloc allocated bytes.", "bytes").query(
            format!("sum(heapscape_jemalloc_allocated_bytes{{{SEL}}})"),
            "allocated",
        ),
    );
    b.add(
        stat(
            "Allocation rate",
            "Bytes allocated per second, all instances.",
            "binBps",
        )
        .query(
            format!("sum(rate(heapscape_alloc_bytes_total{{{SEL}}}[$__rate_interval]))"),
            "allocation rate",
        ),
    );
    b.add(
        stat(
            "Idle pool bytes",
            "Memory held by idle pooled buffers, all pools.",
            "bytes",
        )
        .query(format!("sum(heapscape_pool_idle_bytes{{{SEL}}})"), "idle"),
    );
    b.add(
        stat(
            "Pool hit ratio",
            "Hits / gets across every pool and instance.",
            "percentunit",
        )
        .query(
            format!(
                "sum(rate(heapscape_pool_hits_total{{{SEL}}}[$__rate_interval])) / \
                 (sum(rate(heapscape_pool_hits_total{{{SEL}}}[$__rate_interval])) \
                 + sum(rate(heapscape_pool_misses_total{{{SEL}}}[$__rate_interval])))"
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
        .query(
            r#"job:heapscape_jemalloc_resident_bytes:sum{job=~"$job"}"#,
            "{{job}}",
        ),
    );
    b.add(
        timeseries(
            "Allocation rate by job (recording rule)",
            "job:heapscape_alloc_bytes:rate5m: bytes allocated per second over 5 minutes.",
            "binBps",
        )
        .width(8)
        .query(
            r#"job:heapscape_alloc_bytes:rate5m{job=~"$job"}"#,
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
            format!("sum by (pooling) (heapscape_jemalloc_resident_bytes{{{SEL}}})"),
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
            format!("topk(10, heapscape_jemalloc_resident_bytes{{{SEL}}})"),
            LEGEND,
        ),
    );
    b.add(
        timeseries(
            "Top 10 by allocation rate",
            "The ten instances allocating the most bytes per second.",
            "binBps",
        )
        .query(
            format!(
                "topk(10, sum by ({BY_INSTANCE}) (rate(heapscape_alloc_bytes_total{{{SEL}}}[$__rate_interval])))"
            ),
            LEGEND,
        ),
    );
    b.add(
        table(
            "Largest heaps now",
            "Instances by resident bytes, largest first.",
            "bytes",
        )
        .query(
            format!("sort_desc(topk(10, heapscape_jemalloc_resident_bytes{{{SEL}}}))"),
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
                "topk(10, rate(heapscape_process_minor_page_faults_total{{{SEL}}}[$__rate_interval]))"
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
        variables(false),
        reload_annotations(),
        b,
    )
}
