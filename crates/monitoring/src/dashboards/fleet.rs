//! The fleet dashboard: totals across every selected instance, by service and by pooling, and
//! the instances with the largest heaps and the fastest allocation.

use serde_json::json;

use super::{Dashboard, LEGEND, Meta, Selectors, dashboard, event_annotations, variables};
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
