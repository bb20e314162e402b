//! Auto-tuning through the agent, as ops use it: turned on in the file, moves made on
//! heartbeat ticks, each one scraped and logged, and reloads that behave as the README says
//! (the tuned values stay unless the file changes a tuned key or turns auto-tuning off; a bad
//! file changes nothing).

// The Prometheus listener (or mode b's recorder) needs the `tokio` feature.
#![cfg(feature = "tokio")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use heapscape::Agent;
use heapscape_pool::Pool;
use heapscape_pool::config::TunedSetting;
use heapscape_testkit::{CapturedLogs, ConfigFile, WAIT, http_get, wait_for, write_atomically};

/// The `pcm` pool's file, with the given starting max and `auto_tune` keys. A 2 s window and a
/// 1 s cooldown, so that a move comes within seconds of traffic.
fn config(max_buffer_size: &str, auto_tune: &str) -> String {
    format!(
        "service: it-auto-tune\n\
         exporter: {{ prometheus: {{ listen: 127.0.0.1:0 }} }}\n\
         heartbeat: {{ interval: 200ms }}\n\
         pools:\n  \
           pcm:\n    \
             initial_capacity: 4KiB\n    \
             max_buffer_size: {max_buffer_size}\n    \
             max_idle_buffers: 64\n    \
             max_idle_bytes: 64MiB\n    \
             recommendation_window: 2s\n    \
             auto_tune: {{ {auto_tune} }}\n"
    )
}

const ON: &str = "enabled: true, lowest_max_buffer_size: 16KiB, highest_max_buffer_size: 8MiB, \
                  cooldown: 1s";

/// The value of the `pcm` pool's series `name` with the given labels besides `pool`.
fn scraped(addr: SocketAddr, name: &str, labels: &[&str]) -> Option<f64> {
    let (_, body) = http_get(addr, "/metrics")?;
    body.lines()
        .find(|line| {
            line.starts_with(&format!("{name}{{"))
                && line.contains("pool=\"pcm\"")
                && labels.iter().all(|label| line.contains(label))
        })
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

/// Returns 30 KB buffers to the pool until dropped, so the window always holds a mix.
struct Traffic {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Traffic {
    fn start(pool: Pool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            // Bounded: at most a few minutes of returns, whatever happens to the test.
            for _ in 0..100_000 {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                pool.get().resize(30_000, 0);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One agent per process (the recorder is global): the steps run in turn.
#[test]
fn moves_are_scraped_and_logged_and_reloads_behave_as_documented() {
    let logs = CapturedLogs::install(tracing::Level::INFO);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _entered = runtime.enter();
    let file = ConfigFile::new("heapscape.yaml", &config("4MiB", ON));
    let path = file.path().to_owned();
    let agent = Agent::builder().config_file(&path).start().expect("start");
    let addr = agent.metrics_addr().expect("prometheus");
    let pcm = agent.pool("pcm").expect("pool");
    let in_force = || pcm.stats().max_buffer_size;

    // 30 KB requests against a 4 MiB max: the max comes down within the bounds.
    let traffic = Traffic::start(pcm.clone());
    let tuned = wait_for(WAIT, "an auto-tuning move of the max", || {
        let max = in_force();
        (max < 1 << 20).then_some(max)
    });
    assert!((16 << 10..=64 << 10).contains(&tuned), "tuned to {tuned}");
    assert_eq!(
        pcm.config().max_buffer_size,
        4 << 20,
        "the file's value stays the config set"
    );
    let enabled = wait_for(WAIT, "the move in a scrape", || {
        let moves = scraped(
            addr,
            "heapscape_pool_auto_tune_moves_total",
            &["setting=\"max_buffer_size\""],
        )?;
        let applied = scraped(addr, "heapscape_pool_max_buffer_size_bytes", &[])?;
        let target = scraped(
            addr,
            "heapscape_pool_auto_tune_target_max_buffer_size_bytes",
            &[],
        )?;
        let enabled = scraped(addr, "heapscape_pool_auto_tune_enabled", &[])?;
        (moves >= 1.0 && applied < f64::from(1 << 20) && target < f64::from(1 << 20))
            .then_some(enabled)
    });
    assert_eq!(enabled, 1.0);
    let lines = logs.lines_with("pool auto-tuned");
    assert!(
        lines
            .iter()
            .any(|line| line.contains("pool=\"pcm\"") || line.contains("pool=pcm")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.contains(&format!("max_buffer_size 4194304 -> {tuned}"))),
        "{lines:?}"
    );
    drop(traffic);
    let tuned = in_force();

    // Another cooldown, same tuned keys: the tuned values stay.
    write_atomically(
        &path,
        &config("4MiB", &ON.replace("cooldown: 1s", "cooldown: 2s")),
    );
    wait_for(WAIT, "the new cooldown", || {
        (pcm.config().auto_tune.cooldown == Duration::from_secs(2)).then_some(())
    });
    assert_eq!(in_force(), tuned);

    // A bad file: rejected, the tuned values and the config set stay.
    write_atomically(
        &path,
        &config(
            "4MiB",
            &ON.replace(
                "lowest_max_buffer_size: 16KiB",
                "lowest_max_buffer_size: 16MiB",
            ),
        ),
    );
    wait_for(WAIT, "the rejection", || {
        (agent.stats().config_reload_failures == 1).then_some(())
    });
    assert_eq!(in_force(), tuned);
    assert_eq!(pcm.config().auto_tune.cooldown, Duration::from_secs(2));

    // A new starting value in the file: applied as written.
    write_atomically(&path, &config("2MiB", ON));
    wait_for(WAIT, "the file's new max", || {
        (in_force() == 2 << 20).then_some(())
    });

    // Off: the file's values are the values in force, and the pool says it is not tuning.
    let traffic = Traffic::start(pcm.clone());
    wait_for(WAIT, "another move", || {
        (in_force() < 1 << 20).then_some(())
    });
    write_atomically(&path, &config("2MiB", "enabled: false"));
    wait_for(WAIT, "auto-tuning off", || {
        (!pcm.stats().auto_tune.enabled).then_some(())
    });
    let stats = pcm.stats();
    assert_eq!(
        (
            stats.max_buffer_size,
            stats.initial_capacity,
            stats.max_idle_buffers
        ),
        (2 << 20, 4 << 10, 64)
    );
    let moves = stats.auto_tune.moves_of(TunedSetting::MaxBufferSize);
    wait_for(WAIT, "auto_tune_enabled 0 in a scrape", || {
        (scraped(addr, "heapscape_pool_auto_tune_enabled", &[])? == 0.0).then_some(())
    });
    // Ticks go on under traffic, and nothing moves.
    let ticks = agent.stats().heartbeat_ticks;
    wait_for(WAIT, "five more ticks", || {
        (agent.stats().heartbeat_ticks >= ticks + 5).then_some(())
    });
    drop(traffic);
    let stats = pcm.stats();
    assert_eq!(stats.max_buffer_size, 2 << 20);
    assert_eq!(stats.auto_tune.moves_of(TunedSetting::MaxBufferSize), moves);
    assert_eq!(agent.stats().config_reload_failures, 1);
    agent.shutdown();
}
