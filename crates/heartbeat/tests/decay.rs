//! jemalloc's decay settings applied while the program runs: read back through mallctl for the
//! defaults and for every existing arena, changed again, and published by a tick.

#![cfg(feature = "jemalloc")]

use std::time::Duration;

use heapscape_heartbeat::Heartbeat;
use heapscape_heartbeat::decay::{DecaySettings, DecayState};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tikv_jemalloc_ctl::raw;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// `arena.<i>.<key>` of every initialized arena.
fn per_arena(key: &str) -> Vec<isize> {
    // SAFETY: the types are jemalloc's: unsigned, bool, ssize_t.
    unsafe {
        let arenas: u32 = raw::read(b"arenas.narenas\0").unwrap();
        (0..arenas)
            .filter(|i| raw::read::<bool>(format!("arena.{i}.initialized\0").as_bytes()).unwrap())
            .map(|i| raw::read(format!("arena.{i}.{key}\0").as_bytes()).unwrap())
            .collect()
    }
}

fn settings(dirty: u64, muzzy: u64, background_thread: bool) -> DecaySettings {
    let mut settings = DecaySettings::default();
    settings.dirty_decay = Some(Duration::from_millis(dirty));
    settings.muzzy_decay = Some(Duration::from_millis(muzzy));
    settings.background_thread = Some(background_thread);
    settings
}

fn gauge(snapshot: &[(String, DebugValue)], name: &str) -> f64 {
    match snapshot.iter().find(|(key, _)| key == name) {
        Some((_, DebugValue::Gauge(value))) => value.into_inner(),
        other => panic!("{name}: {other:?}"),
    }
}

// One test: the settings are process-wide.
#[test]
fn settings_apply_to_every_arena_change_again_and_are_published() {
    // Threads get arenas round-robin: several threads that allocate initialize several arenas,
    // which existed before the settings and must be changed one by one.
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| drop(std::hint::black_box(vec![1u8; 1 << 20])));
        }
    });
    assert!(per_arena("dirty_decay_ms").len() >= 2, "several arenas");

    settings(1000, 0, true).apply().unwrap();
    let state = DecayState::read().unwrap();
    assert_eq!(
        (
            state.dirty_decay_ms,
            state.muzzy_decay_ms,
            state.background_thread
        ),
        (1000, 0, true)
    );
    assert!(per_arena("dirty_decay_ms").iter().all(|&ms| ms == 1000));
    assert!(per_arena("muzzy_decay_ms").iter().all(|&ms| ms == 0));

    // Applied again with other values, as a config reload does.
    settings(250, 2000, false).apply().unwrap();
    let state = DecayState::read().unwrap();
    assert_eq!(
        (
            state.dirty_decay_ms,
            state.muzzy_decay_ms,
            state.background_thread
        ),
        (250, 2000, false)
    );
    assert!(per_arena("dirty_decay_ms").iter().all(|&ms| ms == 250));
    assert!(per_arena("muzzy_decay_ms").iter().all(|&ms| ms == 2000));

    // Unset fields leave jemalloc's values alone.
    DecaySettings::default().apply().unwrap();
    assert_eq!(DecayState::read().unwrap(), state);

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || Heartbeat::builder().build().tick().unwrap());
    let snapshot: Vec<(String, DebugValue)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| (key.key().name().to_owned(), value))
        .collect();
    assert_eq!(
        gauge(&snapshot, "heapscape_jemalloc_dirty_decay_seconds"),
        0.25
    );
    assert_eq!(
        gauge(&snapshot, "heapscape_jemalloc_muzzy_decay_seconds"),
        2.0
    );
    assert_eq!(
        gauge(&snapshot, "heapscape_jemalloc_background_thread"),
        0.0
    );
}
