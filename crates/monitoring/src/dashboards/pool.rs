//! The buffer pool tuning dashboard: efficiency, idle buffers, the idle caps and max buffer
//! size against their recommendations, and auto-tuning's values in force against its targets.

use serde_json::json;

use super::{Dashboard, Meta, Selectors, dashboard, event_annotations, variables};
use crate::config::{Config, join_matchers};
use crate::panels::{Board, heatmap, stat, table, timeseries};
use crate::rules::{RecommendRecords, quantile_name};

/// The "Decide" row: one line per service and pool with what `heapscape recommend` prints,
/// from the recording rules over the recommendation window (the same series and rule).
fn decide_row(config: &Config, s: &Selectors<'_>, b: &mut Board) {
    let r = RecommendRecords::new(config);
    let sel = join_matchers(&[&s.job_sel, r#"pool=~"$pool""#]);
    b.row(&format!(
        "Decide: what to set, per service and pool (all instances, last {})",
        config.recommendation_window
    ));
    let columns = [
        (&r.current_max, "Max in force", "bytes"),
        (&r.max, "Recommended max", "bytes"),
        (&r.initial, "Recommended initial capacity", "bytes"),
        (
            &r.current_over_max,
            "Returns over the max in force",
            "percentunit",
        ),
        (
            &r.current_regrow,
            "Regrowth copies at the max in force",
            "binBps",
        ),
        (
            &r.idle_observed,
            "Idle bytes observed (peaks summed)",
            "bytes",
        ),
        (
            &r.idle_bound,
            "Idle bytes at most, recommended max",
            "bytes",
        ),
        (&r.returns, "Returns in the window", "short"),
        (&r.min_returns, "Returns needed", "short"),
        (&r.instances, "Instances", "short"),
    ];
    let mut panel = table(
        "Recommendation per service and pool",
        "The answer heapscape recommend prints, from the same series and rule: the pools' \
         percentile of the returned lengths of every instance of the service together, over \
         the recommendation window, rounded up to its bucket's bound (four per octave). Empty \
         while the window holds fewer returns than the pools need (Returns needed); the \
         recommended values are per instance, the idle bytes for the whole service. The \
         share over the max in force and its regrowth come from each instance's own figures \
         (their sum, weighted by returns). Per-instance values are in the drill-down rows \
         below.",
    )
    .width(24)
    .height(6)
    .moves_under_load();
    let mut rename = serde_json::Map::new();
    let mut index = serde_json::Map::new();
    // The records keep the labels that name a service (job and service): on the StatsD
    // path every service is scraped as statsd_exporter's job and only `service` tells them
    // apart; on the Prometheus path the job is the service and the column stays empty.
    for (i, (label, title)) in [("job", "Job"), ("service", "Service"), ("pool", "Pool")]
        .into_iter()
        .enumerate()
    {
        index.insert(label.into(), json!(i));
        rename.insert(label.into(), json!(title));
    }
    for (i, (record, title, unit)) in columns.into_iter().enumerate() {
        panel = panel
            .query(format!("{record}{{{sel}}}"), "")
            .column_unit(title, unit);
        let value = format!("Value #{}", char::from(b'A' + i as u8));
        index.insert(value.clone(), json!(i + 3));
        rename.insert(value, json!(title));
    }
    b.add(
        panel
            // One row per service and pool, joined on those labels.
            .transformation(json!({ "id": "merge", "options": {} }))
            .transformation(json!({
                "id": "organize",
                "options": {
                    "excludeByName": { "Time": true },
                    "indexByName": index,
                    "renameByName": rename,
                },
            }))
            .sort_by(&["Job", "Service", "Pool"]),
    );
}

pub(super) fn pool(config: &Config) -> Dashboard {
    let s = Selectors::new(config);
    let (pool_sel, fleet_sel) = (&s.pool_sel, &s.fleet_sel);
    let mut b = Board::new();
    decide_row(config, &s, &mut b);
    b.row("Efficiency");
    b.add(
        timeseries(
            "Hit ratio",
            "Share of gets served from idle buffers (hits / (hits + misses)). Low while the \
             pool warms up; a ratio that stays low means the idle caps are too small.",
            "percentunit",
        )
        .width(6)
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
        .width(6)
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
             idle_bytes_cap. Later: idle_timeout (trimmed after staying idle), reconfigure \
             (released when a reload lowered a cap) and spare (the one buffer kept over the \
             max, released for one within it). And buffers shrunk to the max (over_max: \
             shrink), and returns that grew while on loan (regrew: each growth a reallocation \
             and a copy).",
            "ops",
        )
        .width(6)
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
        )
        .query(
            s.pool_rate("heapscape_pool_regrows_total", ""),
            "{{instance}} {{pool}} regrew",
        ),
    );
    b.add(
        timeseries(
            "Discard ratio",
            "Returned buffers released instead of kept (over_max, idle_buffers_cap, \
             idle_bytes_cap) per return, over the rules' rate window: what the alert \
             HeapscapePoolHighDiscardRate watches. Red above its threshold; the alert also \
             needs enough returns, so a quiet pool's red is no alert.",
            "percentunit",
        )
        .width(6)
        .threshold(config.discard_ratio_threshold, "red")
        .query(
            format!(
                "instance:heapscape_pool_discard_ratio:rate{w}{{{sel}}}",
                w = config.rate_window,
                sel = s.record_pool_sel
            ),
            "{{instance}} {{pool}}",
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
             buffers in use over its recommendation_window plus an eighth, and one for the spare (a \
             buffer returned over the max, kept whole) when returns are longer than the \
             recommended max. A cap far above \
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
             max idle buffers times the recommended max buffer size, one max more for the spare, \
             so that neither cap discards what the other allows.",
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
            "How many bytes returned buffers held, per second, in the pools' buckets (four per \
             octave): one heatmap per pool selected in the Pool variable, the selected \
             instances' returns together; empty returns are left out. The max buffer size \
             belongs just above the bulk.",
            "bytes",
        )
        .repeat("pool")
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
            "Capacities of returned buffers before any shrink, per second, in powers of two: \
             what keeping them would cost. One heatmap per pool selected in the Pool \
             variable, the selected instances' returns together.",
            "bytes",
        )
        .repeat("pool")
        .query(
            format!(
                "sum by (le) (rate(heapscape_pool_returned_capacity_bytes_bucket{{{pool_sel}}}[$__rate_interval]))"
            ),
            "{{le}}",
        ),
    );

    b.row("Drill-down: max buffer size per instance and over time");
    b.add(
        timeseries(
            "Per instance",
            "The max buffer size in force and the one each instance recommends from its \
             returns within its recommendation_window (default 1 h), by the pools' rule on \
             their buckets (four per octave, at most about 20 % above the \
             recommend_percentile, default p95): what the alert \
             HeapscapePoolMaxBufferSizeFarFromRecommended compares. No line while an \
             instance has too few returns in its window to recommend from.",
            "bytes",
        )
        .log_scale()
        .query(
            format!("heapscape_pool_max_buffer_size_bytes{{{pool_sel}}}"),
            "{{instance}} {{pool}} configured",
        )
        .query(
            format!("heapscape_pool_recommended_max_buffer_size_bytes{{{pool_sel}}}"),
            "{{instance}} {{pool}} recommended",
        ),
    );
    b.add(
        timeseries(
            "Fleet-wide (all instances of the service)",
            "p95 of returned lengths of every instance of a service together (the histograms' \
             buckets summed across instances), rounded up to its bucket's bound as each pool \
             rounds its own (four buckets per octave), against the largest and smallest \
             configured max. Ignores the instance selection; services (job and service \
             labels) stay apart.",
            "bytes",
        )
        .log_scale()
        .moves_under_load()
        .query(
            s.fleet_length_quantile(config.recommend_quantile, "$__rate_interval"),
            &format!(
                "{{{{job}}}} {{{{service}}}} {{{{pool}}}} fleet {q} (recommended)",
                q = quantile_name(config.recommend_quantile)
            ),
        )
        .query(
            format!(
                "max by ({by}) (heapscape_pool_max_buffer_size_bytes{{{fleet_sel}}})",
                by = config.by_service("pool")
            ),
            "{{job}} {{service}} {{pool}} configured (largest)",
        )
        .query(
            format!(
                "min by ({by}) (heapscape_pool_max_buffer_size_bytes{{{fleet_sel}}})",
                by = config.by_service("pool")
            ),
            "{{job}} {{service}} {{pool}} configured (smallest)",
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
             time range, across every instance of the service, whose length is above it: \
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
                by_le = config.by_service("pool, le"),
                by = config.by_service("pool"),
            ),
            "",
        )
        .transformation(json!({
            "id": "organize",
            "options": {
                "excludeByName": { "Time": true },
                "renameByName": {
                    "job": "Job", "service": "Service", "le": "Candidate max", "pool": "Pool",
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
            "Each instance's max buffer size in force, its recommended one and the \
             recommendation's fine-bucket neighbours (one row per candidate: current, lower, \
             recommended, higher), computed by the pool over its recommendation_window: the \
             share of the window's returns longer than the candidate, the bytes per second \
             their regrowth would copy (doubling from the candidate, as a Vec grows), and the \
             most idle memory the candidate allows (a bound: min(max idle buffers, peak held) \
             times the candidate, capped by max idle bytes). A lower max saves idle memory at \
             the price of more regrowth. No rows while a pool has too few returns to \
             recommend from.",
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
        .query(
            candidate_gauge("heapscape_pool_candidate_regrow_bytes_per_second"),
            "",
        )
        .query(
            candidate_gauge("heapscape_pool_candidate_idle_bound_bytes"),
            "",
        )
        // One row per job, instance, pool and candidate, joined on those labels.
        .transformation(json!({ "id": "merge", "options": {} }))
        .transformation(json!({
            "id": "organize",
            "options": {
                "excludeByName": { "Time": true },
                "indexByName": {
                    "job": 0, "instance": 1, "pool": 2, "candidate": 3,
                    "Value #A": 4, "Value #B": 5, "Value #C": 6, "Value #D": 7,
                },
                "renameByName": {
                    "job": "Job", "instance": "Instance", "pool": "Pool",
                    "candidate": "Candidate",
                    "Value #A": "Candidate max",
                    "Value #B": "Returns over it",
                    "Value #C": "Regrowth copies",
                    "Value #D": "Idle memory at most",
                },
            },
        }))
        // Within a pool the candidate max rises from lower to recommended to higher.
        .sort_by(&["Job", "Instance", "Pool", "Candidate max"])
        .column_unit("Candidate max", "bytes")
        .column_unit("Returns over it", "percentunit")
        .column_unit("Regrowth copies", "binBps")
        .column_unit("Idle memory at most", "bytes"),
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
             (the peak of buffers held over the recommendation_window plus an eighth, and one \
             for the spare), at \
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
