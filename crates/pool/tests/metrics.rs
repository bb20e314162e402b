//! A pool publishes the right values, with its label. (That every metric is described with
//! its unit is checked once for all the catalogs, in the demo's `metric_catalog` test.)

use metrics::Unit;
use metrics_util::CompositeKey;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

use heapscape_pool::Pool;
use heapscape_pool::metrics::CATALOG;
use heapscape_pool::stats::DiscardReason;

type Row = (
    CompositeKey,
    Option<Unit>,
    Option<metrics::SharedString>,
    DebugValue,
);

fn find<'a>(rows: &'a [Row], name: &str, label: Option<(&str, &str)>) -> Vec<&'a Row> {
    rows.iter()
        .filter(|(key, ..)| key.key().name() == name)
        .filter(|(key, ..)| {
            label.is_none_or(|(k, v)| key.key().labels().any(|l| l.key() == k && l.value() == v))
        })
        .collect()
}

fn gauge(rows: &[Row], name: &str, label: Option<(&str, &str)>) -> f64 {
    let found = find(rows, name, label);
    assert_eq!(found.len(), 1, "{name} {label:?}");
    match &found[0].3 {
        DebugValue::Gauge(v) => v.into_inner(),
        other => panic!("{name} is not a gauge: {other:?}"),
    }
}

fn counter(rows: &[Row], name: &str) -> u64 {
    match &find(rows, name, Some(("pool", "pcm")))[0].3 {
        DebugValue::Counter(v) => *v,
        other => panic!("{name} is not a counter: {other:?}"),
    }
}

#[test]
fn every_metric_is_published_with_its_label_and_the_right_values() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let pool = Pool::builder("pcm")
        .initial_capacity(1024)
        .max_buffer_size(8192)
        .recommendation_min_returns(3)
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        // The empty return (a request that failed after `get`) counts as a return, not as a
        // length.
        for len in [100, 3000, 20_000, 0] {
            let mut buf = pool.get();
            buf.resize(len, 0);
        }
        drop(pool.get().detach());
        let _held = pool.get();
        pool.publish();
    });
    let rows = snapshotter.snapshot().into_vec();
    for def in CATALOG {
        let found = find(&rows, def.name, Some(("pool", "pcm")));
        assert!(!found.is_empty(), "{} was not published", def.name);
    }
    let stats = pool.stats();
    assert_eq!(counter(&rows, "heapscape_pool_hits_total"), stats.hits);
    assert_eq!(counter(&rows, "heapscape_pool_misses_total"), stats.misses);
    assert_eq!(counter(&rows, "heapscape_pool_returns_total"), 4);
    // The buffer held at the publish came back empty since.
    assert_eq!(stats.empty_returns, 2);
    assert_eq!(counter(&rows, "heapscape_pool_shrinks_total"), 1);
    // 3000 and 20,000 bytes each outgrew the buffer they were lent; 100 and 0 did not.
    assert_eq!(counter(&rows, "heapscape_pool_regrows_total"), 2);
    assert_eq!(counter(&rows, "heapscape_pool_detaches_total"), 1);
    assert_eq!(
        find(&rows, "heapscape_pool_discards_total", None).len(),
        DiscardReason::ALL.len(),
        "one series per reason"
    );
    let lengths = find(&rows, "heapscape_pool_returned_length_bytes", None);
    let DebugValue::Histogram(values) = &lengths[0].3 else {
        panic!("not a histogram")
    };
    let mut values: Vec<f64> = values.iter().map(|v| v.into_inner()).collect();
    values.sort_by(f64::total_cmp);
    assert_eq!(
        values,
        [108.0, 3456.0, 23296.0],
        "each non-empty return at its fine bucket's upper bound"
    );
    assert_eq!(
        gauge(&rows, "heapscape_pool_recommendation_returns", None),
        3.0
    );
    assert_eq!(
        gauge(&rows, "heapscape_pool_recommendation_min_returns", None),
        3.0
    );

    // The p95 of 100, 3000 and 20_000 is 20_000: in the fine bucket (19_456, 23_296].
    let recommended = 23_296.0;
    assert_eq!(
        gauge(
            &rows,
            "heapscape_pool_recommended_max_buffer_size_bytes",
            None
        ),
        recommended
    );
    assert_eq!(gauge(&rows, "heapscape_pool_in_use_buffers", None), 1.0);
    assert_eq!(gauge(&rows, "heapscape_pool_peak_held_buffers", None), 1.0);
    assert_eq!(
        gauge(&rows, "heapscape_pool_max_idle_buffers", None),
        1024.0
    );
    assert_eq!(
        gauge(&rows, "heapscape_pool_recommendation_window_seconds", None),
        3600.0
    );
    assert_eq!(
        gauge(&rows, "heapscape_pool_recommended_max_idle_buffers", None),
        2.0
    );
    assert_eq!(
        gauge(&rows, "heapscape_pool_recommended_max_idle_bytes", None),
        2.0 * recommended
    );
    // The 20_000 B return over the 8 KiB max regrew from it: to 16 and 32 KiB, copying
    // 8 + 16 KiB, within the window's span so far (at least a second, as rates are read).
    let span = stats.recent_span.as_secs_f64().max(1.0);
    for (candidate, max, over_max, copied) in [
        ("current", 8192.0, 1.0 / 3.0, (8192.0 + 16384.0) / span),
        ("lower", 19_456.0, 1.0 / 3.0, 19_456.0 / span),
        ("recommended", recommended, 0.0, 0.0),
        ("higher", 27_648.0, 0.0, 0.0),
    ] {
        let label = Some(("candidate", candidate));
        assert_eq!(
            gauge(
                &rows,
                "heapscape_pool_candidate_max_buffer_size_bytes",
                label
            ),
            max
        );
        assert_eq!(
            gauge(&rows, "heapscape_pool_candidate_over_max_ratio", label),
            over_max
        );
        let regrow = gauge(
            &rows,
            "heapscape_pool_candidate_regrow_bytes_per_second",
            label,
        );
        assert!(
            (regrow - copied).abs() <= copied * 1e-6,
            "{candidate}: {regrow} B/s copied, expected {copied}"
        );
        assert_eq!(
            gauge(&rows, "heapscape_pool_candidate_idle_bound_bytes", label),
            max,
            "one buffer in use at the peak"
        );
    }
}

#[test]
fn without_enough_returns_in_the_window_the_recommendations_read_nan() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let window = std::time::Duration::from_secs(1);
    let pool = Pool::builder("pcm")
        .recommendation_min_returns(3)
        .recommendation_window(window)
        .build()
        .unwrap();
    let recommendations = [
        "heapscape_pool_recommended_max_buffer_size_bytes",
        "heapscape_pool_recommended_initial_capacity_bytes",
        "heapscape_pool_recommended_max_idle_buffers",
        "heapscape_pool_recommended_max_idle_bytes",
        "heapscape_pool_candidate_max_buffer_size_bytes",
        "heapscape_pool_candidate_over_max_ratio",
        "heapscape_pool_candidate_regrow_bytes_per_second",
        "heapscape_pool_candidate_idle_bound_bytes",
    ];
    let all_nan = |rows: &[Row]| {
        for name in recommendations {
            for row in find(rows, name, None) {
                assert!(
                    matches!(&row.3, DebugValue::Gauge(v) if v.into_inner().is_nan()),
                    "{name}: {:?}",
                    row.3
                );
            }
        }
    };
    let publish = |lengths: &[usize]| {
        metrics::with_local_recorder(&recorder, || {
            for &len in lengths {
                pool.get().resize(len, 0);
            }
            pool.publish();
        });
        snapshotter.snapshot().into_vec()
    };
    // Two returns, and two empty ones, are not enough.
    let rows = publish(&[5000, 6000, 0, 0]);
    assert_eq!(
        gauge(&rows, "heapscape_pool_recommendation_returns", None),
        2.0
    );
    all_nan(&rows);
    // A third makes a recommendation...
    let rows = publish(&[7000]);
    let recommended = gauge(
        &rows,
        "heapscape_pool_recommended_max_buffer_size_bytes",
        None,
    );
    assert_eq!(recommended, 8192.0);
    // ... which goes once the window has passed without traffic, rather than staying as if
    // current.
    std::thread::sleep(window + window / 2);
    let rows = publish(&[]);
    assert_eq!(
        gauge(&rows, "heapscape_pool_recommendation_returns", None),
        0.0
    );
    all_nan(&rows);
}

#[test]
fn counters_are_published_by_delta() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let pool = Pool::builder("pcm").build().unwrap();
    metrics::with_local_recorder(&recorder, || {
        drop(pool.get());
        pool.publish();
        pool.publish();
        drop(pool.get());
        drop(pool.get());
        pool.publish();
    });
    let rows = snapshotter.snapshot().into_vec();
    assert_eq!(counter(&rows, "heapscape_pool_returns_total"), 3);
    assert_eq!(
        counter(&rows, "heapscape_pool_hits_total") + counter(&rows, "heapscape_pool_misses_total"),
        3
    );
}
