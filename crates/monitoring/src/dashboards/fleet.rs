//! The fleet dashboard: totals across every selected instance, by service and by pooling, and
//! the instances with the largest heaps and the fastest allocation.

use serde_json::json;

use super::{Dashboard, LEGEND, Meta, Selectors, dashboard, event_annotations, variables};
use crate::DATASOURCE_VARIABLE;
use crate::config::Config;
use crate::panels::{Board, stat, table, timeseries};
use crate::rules::rate_record;

pub(super) fn fleet(config: &Config) -> Dashboard {
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
            "Resident by service (recording rule)",
            "job:heapscape_jemalloc_resident_bytes:sum, evaluated by Prometheus.",
            "bytes",
        )
        .width(8)
        .moves_under_load()
        .query(
            format!("job:heapscape_jemalloc_resident_bytes:sum{{{job_sel}}}"),
            "{{job}} {{service}}",
        ),
    );
    b.add(
        timeseries(
            "Allocation rate by service (recording rule)",
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
            "{{job}} {{service}}",
        ),
    );
    b.add(
        timeseries(
            "Resident per instance by pooling (average)",
            "The average of the resident bytes of the instances with pooling on and of those \
             with it off: an average, not a sum, so that the sides compare whatever the \
             number of instances of each.",
            "bytes",
        )
        .width(8)
        .query(
            format!(
                "avg by ({by}) (heapscape_jemalloc_resident_bytes{{{sel}}})",
                by = config.by("pooling")
            ),
            "pooling={{pooling}}",
        ),
    );

    b.row("Top instances over the time range");
    // The top ten over the range's totals, evaluated once at its end (`@ end()`): `topk` over a
    // range query would pick its ten at each step, drawing more than ten lines that come and
    // go.
    let on_instance = config.by("job, instance");
    let top = |series: String, total: String| {
        format!("{series}\nand on ({on_instance})\ntopk(10, {total})")
    };
    b.add(
        timeseries(
            "Top 10 by resident memory",
            "The ten instances whose resident heap peaked highest over the time range, the \
             same ten throughout.",
            "bytes",
        )
        .query(
            top(
                format!("heapscape_jemalloc_resident_bytes{{{sel}}}"),
                format!(
                    "max_over_time(heapscape_jemalloc_resident_bytes{{{sel}}}[$__range] @ end())"
                ),
            ),
            LEGEND,
        ),
    );
    b.add(
        timeseries(
            "Top 10 by allocation rate",
            "The ten instances that allocated the most bytes over the time range, the same \
             ten throughout, in bytes per second.",
            "binBps",
        )
        .moves_under_load()
        .query(
            top(
                format!(
                    "sum by ({by_instance}) (rate(heapscape_alloc_bytes_total{{{sel}}}[$__rate_interval]))"
                ),
                format!(
                    "sum by ({by_instance}) (increase(heapscape_alloc_bytes_total{{{sel}}}[$__range] @ end()))"
                ),
            ),
            LEGEND,
        ),
    );
    b.add(
        table(
            "Largest heaps now",
            "Instances by resident bytes, largest first. A row links to the heap dashboard \
             for its instance.",
        )
        .moves_under_load()
        .column_unit("Resident", "bytes")
        .link(
            "Heap of this instance",
            drill_down("heapscape-heap", &["job", "instance"]),
        )
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
            "The ten instances that paid for the most minor page faults (memory churn) over \
             the time range, the same ten throughout.",
            "ops",
        )
        .query(
            top(
                format!(
                    "rate(heapscape_process_minor_page_faults_total{{{sel}}}[$__rate_interval])"
                ),
                format!(
                    "increase(heapscape_process_minor_page_faults_total{{{sel}}}[$__range] @ end())"
                ),
            ),
            LEGEND,
        ),
    );
    b.add(
        table(
            "Pools holding the most idle bytes now",
            "The pools (per service, instance and pool) whose idle buffers hold the most \
             memory, largest first. A row links to the buffer pool dashboard for that \
             service's instance and pool.",
        )
        .column_unit("Idle bytes", "bytes")
        .link(
            "Buffer pool tuning of this pool",
            drill_down("heapscape-pool", &["job", "instance", "pool"]),
        )
        .query(
            format!(
                "sort_desc(topk(10, sum by ({by}) (heapscape_pool_idle_bytes{{{sel}}})))",
                by = config.by_service("instance, pool")
            ),
            "",
        )
        .transformation(json!({
            "id": "organize",
            "options": {
                "excludeByName": { "Time": true },
                "renameByName": { "Value": "Idle bytes" },
            },
        })),
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

/// The URL of dashboard `uid` with its `labels` variables set to a table row's values (the
/// variable of each label has the label's name), the same datasource and time range.
fn drill_down(uid: &str, labels: &[&str]) -> String {
    let mut url = format!("/d/{uid}?${{{DATASOURCE_VARIABLE}:queryparam}}");
    for label in labels {
        url.push_str(&format!("&var-{label}=${{__data.fields.{label}}}"));
    }
    url.push_str("&${__url_time_range}");
    url
}
