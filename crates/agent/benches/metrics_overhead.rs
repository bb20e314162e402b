//! W1 (get a pooled buffer, append 16 bytes, read its length, give it back) with metrics off
//! and on: "on" is the agent installed as a service runs it, the Prometheus recorder with a
//! heartbeat publishing the pool every second (10x the default rate) and a scraper reading
//! `/metrics` every second. Run: `cargo bench -p heapscape --bench metrics_overhead`.
//!
//! The hot path never touches the recorder (the pool bumps per-thread counters that
//! `publish` reads), so the difference is what publication and scraping beside it cost the
//! timed thread on a 2-core machine.

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use criterion::{Bencher, Criterion, criterion_group, criterion_main};
use heapscape::{Agent, Config, Pool};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const CONFIG: &str = "
service: bench
exporter:
  prometheus: { listen: 127.0.0.1:0 }
heartbeat: { interval: 1s }
pools:
  w1: { initial_capacity: 4KiB, max_buffer_size: 8MiB, max_idle_bytes: 1GiB }
";

/// The timed loop of both variants: one out-of-line function, so that both run the same
/// machine code.
#[inline(never)]
fn w1_loop(b: &mut Bencher<'_>, pool: &Pool) {
    b.iter(|| {
        let mut buf = pool.get();
        buf.extend_from_slice(black_box(&[7u8; 16]));
        black_box(buf.len());
    });
}

fn scrape(addr: SocketAddr) -> usize {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return 0;
    };
    let _ = stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n");
    let mut body = Vec::new();
    let _ = stream.read_to_end(&mut body);
    body.len()
}

fn w1_metrics(c: &mut Criterion) {
    let config = Config::from_yaml_str(CONFIG, "bench config").expect("valid config");
    let mut group = c.benchmark_group("W1_metrics");
    let off = Pool::builder("w1")
        .config(config.pools["w1"].clone())
        .build()
        .expect("valid pool");
    group.bench_function("off/1thr", |b| w1_loop(b, &off));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let agent = runtime
        .block_on(async { Agent::builder().config(config).start() })
        .expect("agent starts");
    let pool = agent.pool("w1").expect("configured pool");
    let addr = agent.metrics_addr().expect("prometheus listener");
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                black_box(scrape(addr));
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        group.bench_function("on/1thr", |b| w1_loop(b, &pool));
        stop.store(true, Ordering::Relaxed);
    });
    group.finish();
    assert!(scrape(addr) > 0, "the agent served metrics during the run");
    agent.shutdown();
}

criterion_group!(benches, w1_metrics);
criterion_main!(benches);
