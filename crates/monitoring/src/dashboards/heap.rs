//! The home dashboard: the jemalloc heap of services with and without pooling, its churn and
//! fragmentation, and the heartbeat that samples it.

use super::{Dashboard, LEGEND, Meta, Selectors, dashboard, event_annotations, variables};
use crate::config::Config;
use crate::panels::{Board, stat, timeseries};

pub(super) fn heap(config: &Config) -> Dashboard {
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
        stat(
            "jemalloc purging settings",
            "The decay settings in force per instance (the agent's `jemalloc:` keys, or \
             jemalloc's own): how long a freed page stays dirty (resident) and then muzzy \
             before jemalloc returns it to the system (never: jemalloc's -1, pages stay until \
             reused), and whether background threads purge (on) or the next allocation does \
             (off). Pool caps, tuned by hand or auto-tuned, change what is allocated; these \
             change how soon the difference leaves the resident set above.",
            "dtdurations",
        )
        .width(24)
        .height(4)
        .value_text("-1", "never", "orange")
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
            "{{instance}} background threads",
        )
        .query_unit("C", "none", &[("1", "on", "green"), ("0", "off", "text")]),
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
            "Heartbeat intervals since the last successful heap sample (the age of the sample \
             over the configured interval): about 1 while the heartbeat samples. Red from the \
             intervals at which HeapscapeHeartbeatStale fires: the heartbeat is stuck or \
             failing.",
            "none",
        )
        .width(8)
        .threshold(f64::from(config.heartbeat_stale_intervals), "red")
        .query(
            format!(
                "(time() - heapscape_heartbeat_last_success_timestamp_seconds{{{sel}}}) \
                 / heapscape_heartbeat_interval_seconds{{{sel}}}"
            ),
            "{{instance}} intervals since the last sample",
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
