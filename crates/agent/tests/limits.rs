//! Issue 15 through the agent's reload path: configs that passed validation and then killed
//! the process (absurd sizes), an interval silently clamped, pools that could not be removed
//! or capped, and the exposition they grew.

// The Prometheus listener (or mode b's recorder) needs the `tokio` feature.
#![cfg(feature = "tokio")]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use heapscape::{Agent, Error};
use heapscape_testkit::{CapturedLogs, ConfigFile, WAIT, http_get, wait_for, write_atomically};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

/// The most bytes one scrape may have with the most pools allowed (1024), as the README says.
const EXPOSITION_BOUND: usize = 20 << 20;

/// A config with the `pcm` pool as given and the named extra pools.
fn config(pcm: &str, interval: &str, extra: &str, pools: &[String]) -> String {
    let mut text = format!(
        "service: limits\n\
         exporter: {{ prometheus: {{ listen: 127.0.0.1:0 }} }}\n\
         heartbeat: {{ interval: {interval} }}\n\
         {extra}\
         pools:\n  pcm: {{ {pcm} }}\n"
    );
    for name in pools {
        text.push_str(&format!("  {name}: {{ max_buffer_size: 64KiB }}\n"));
    }
    text
}

fn scrape(addr: SocketAddr) -> String {
    wait_for(WAIT, "a scrape", || match http_get(addr, "/metrics") {
        Some((200, body)) => Some(body),
        _ => None,
    })
}

/// `GET /metrics` from a socket bound to `source`; the status, if one came.
async fn scrape_from(source: Ipv4Addr, addr: SocketAddr) -> Option<u16> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::from((source, 0))).ok()?;
    let mut stream = socket.connect(addr).await.ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .await
        .ok()?;
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .ok()?
        .ok()?;
    String::from_utf8_lossy(&response[..response.len().min(64)])
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

/// This process's resident memory (`VmRSS`), 0 where it cannot be read.
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0)
}

/// Slow readers of the large page, opened one after another: each one asks only once the one
/// before is reading, so every one arrives after the last render began.
const SLOW_READERS: usize = 64;
/// How much a slow reader takes at a time, and how often (320 KiB/s, about 50 s for a 16 MB
/// page): fast enough that the listener's writes into the socket's buffer complete every few
/// seconds, so its 10 s stall limit does not close the connection (and free the page) while
/// memory is measured; slow enough that every reader still holds its page by then.
const SLOW_READ: usize = 64 << 10;
const SLOW_READ_PAUSE: Duration = Duration::from_millis(200);
/// The slow readers' socket receive buffer, in bytes.
const SLOW_READ_WINDOW: u32 = 16 << 10;

/// A reader that asks for `/metrics` from `source`, says when the first bytes came, then reads
/// [`SLOW_READ`] bytes per [`SLOW_READ_PAUSE`] until `stop` or the end of its connection.
async fn slow_reader(
    source: Ipv4Addr,
    addr: SocketAddr,
    reading: tokio::sync::oneshot::Sender<()>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::from((source, 0))).expect("bind");
    // A small receive window, as a distant slow reader has: loopback's autotuning would let
    // the kernel take most of the page off the listener's hands (up to 32 MB here), and the
    // listener would no longer hold it.
    socket
        .set_recv_buffer_size(SLOW_READ_WINDOW)
        .expect("SO_RCVBUF");
    let mut stream = socket.connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: limits\r\n\r\n")
        .await
        .expect("request");
    let mut buffer = vec![0; SLOW_READ];
    match tokio::time::timeout(WAIT, stream.read(&mut buffer)).await {
        Ok(Ok(read)) if read > 0 => {}
        other => panic!("no answer from {source}: {other:?}"),
    }
    let _ = reading.send(());
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(SLOW_READ_PAUSE) => {}
        }
        if matches!(stream.read(&mut buffer).await, Ok(0) | Err(_)) {
            return;
        }
    }
}

/// Gives the memory earlier steps freed back to the system: glibc keeps it for the next
/// allocations, and resident memory measured over it would hide as much growth.
fn release_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: `malloc_trim` only returns free pages of glibc's own heaps; nothing else is
    // touched.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn names(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|index| format!("{prefix}{index}")).collect()
}

/// One agent per process (the recorder is global): every case runs in turn.
#[test]
fn bounds_and_pool_removal_hold_through_reloads() {
    let captured = CapturedLogs::install(tracing::Level::INFO);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _entered = runtime.enter();
    let pcm_caps = "initial_capacity: 4KiB, max_buffer_size: 1MiB";
    let json = vec!["json".to_owned()];
    let file = ConfigFile::new("limits.yaml", &config(pcm_caps, "200ms", "", &json));
    let path = file.path().to_owned();
    let agent = Agent::builder().config_file(&path).start().expect("start");
    let addr = agent.metrics_addr().expect("a Prometheus listener");
    let pcm = agent.pool("pcm").expect("pcm");
    let json_pool = agent.pool("json").expect("json");
    json_pool.get().extend_from_slice(b"x");
    wait_for(WAIT, "the json pool's series", || {
        scrape(addr).contains("pool=\"json\"").then_some(())
    });

    // Sizes whose next miss would abort the process, a 100 GiB buffer, and intervals outside
    // 100ms..1h: each reload is rejected and nothing changes.
    let rejected = [
        config(
            "initial_capacity: 1000000GiB, max_buffer_size: 1000000GiB, \
             max_idle_bytes: 1000000GiB",
            "200ms",
            "",
            &json,
        ),
        config(
            "initial_capacity: 100GiB, max_buffer_size: 100GiB, max_idle_bytes: 100GiB",
            "200ms",
            "",
            &json,
        ),
        config(pcm_caps, "1000000000h", "", &json),
        config(pcm_caps, "1ms", "", &json),
    ];
    for (index, text) in rejected.iter().enumerate() {
        write_atomically(&path, text);
        let failures = index as u64 + 1;
        wait_for(WAIT, "the reload to be rejected", || {
            (agent.stats().config_reload_failures == failures).then_some(())
        });
        assert_eq!(pcm.config().initial_capacity, 4 << 10);
        assert_eq!(pcm.config().max_buffer_size, 1 << 20);
        assert_eq!(
            agent.config().heartbeat.interval,
            Duration::from_millis(200)
        );
        // The service keeps serving: a miss allocates the old initial capacity, scrapes answer.
        let buffer = pcm.get();
        assert!(buffer.capacity() <= 1 << 20, "{}", buffer.capacity());
        drop(buffer);
        assert!(scrape(addr).contains("heapscape_config_reload_failures_total"));
    }
    // Each line comes just after its failure is counted.
    let errors = wait_for(WAIT, "four rejections logged", || {
        let errors = captured.lines_with("config reload rejected");
        (errors.len() >= 4).then_some(errors)
    });
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(errors[0].contains("above the 1 GiB limit"), "{}", errors[0]);
    assert!(errors[2].contains("outside 100ms..1h"), "{}", errors[2]);

    // Too many pools, from code: refused as a whole, with the key and the fix.
    let mut too_many = agent.config();
    for name in names("extra", 64) {
        too_many
            .pools
            .insert(name, heapscape::PoolConfig::default());
    }
    let error = agent.apply_config(too_many).unwrap_err();
    assert!(matches!(error, Error::Limit { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("pools: 66 pools are configured but limits.max_pools is 64"),
        "{error}"
    );
    assert!(agent.pool("extra0").is_none());

    // The cap raised to its maximum and filled: every pool is published, and a scrape stays
    // under the bound the README states.
    let many = names("p", 1023);
    write_atomically(
        &path,
        &config(pcm_caps, "200ms", "limits: { max_pools: 1024 }\n", &many),
    );
    wait_for(WAIT, "1024 pools", || {
        (agent.stats().pools.len() == 1024).then_some(())
    });
    assert!(agent.pool("json").is_none(), "json was removed");
    // Every pool's series: a tick publishes the pools one after another, so a page taken
    // during the first ticks has only some of them.
    let body = wait_for(WAIT, "every pool's series", || {
        let body = scrape(addr);
        let published = body
            .lines()
            .filter(|line| line.starts_with("heapscape_pool_hits_total{"))
            .count();
        (published == 1024).then_some(body)
    });
    assert!(
        body.len() < EXPOSITION_BOUND,
        "{} bytes for 1024 pools",
        body.len()
    );
    eprintln!("exposition with 1024 pools: {} bytes", body.len());
    // Removed: the json pool's series stopped, and stay stopped over later ticks.
    assert!(!body.contains("pool=\"json\""));
    let ticks = agent.stats().heartbeat_ticks;
    wait_for(WAIT, "three more heartbeat ticks", || {
        (agent.stats().heartbeat_ticks >= ticks + 3).then_some(())
    });
    assert!(!scrape(addr).contains("pool=\"json\""));
    // A handle and a buffer of the removed pool still work; the buffer goes back to it.
    let mut buffer = json_pool.get();
    buffer.extend_from_slice(b"still usable");
    drop(buffer);

    // 32 concurrent scrapes of the large exposition, from five addresses: all succeed,
    // sharing renders.
    let before = resident_bytes();
    let statuses = runtime.block_on(async {
        let scrapes: Vec<_> = (0..32u8)
            .map(|index| tokio::spawn(scrape_from(Ipv4Addr::new(127, 0, 0, 2 + index % 5), addr)))
            .collect();
        let mut statuses = Vec::new();
        for scrape in scrapes {
            statuses.push(scrape.await.expect("scrape task"));
        }
        statuses
    });
    assert!(
        statuses.iter().all(|status| *status == Some(200)),
        "{statuses:?}"
    );
    eprintln!(
        "resident memory around 32 concurrent scrapes: {} MB before, {} MB after",
        before / 1_000_000,
        resident_bytes() / 1_000_000
    );

    // 64 slow readers of the large page, from four addresses (16 each, under the cap per
    // address): they share renders, so resident memory grows by a few pages, not 64. The
    // bound, in pages: the renders readers may hold at once (two: the newest and one of an
    // older publication), a render under way (its text grows by doubling, so up to two pages
    // while it is written), and two more for the 64 connections' buffers and the allocator's
    // slack. A copy per reader would be 64 pages (about 1 GB).
    let page = body.len() as u64;
    let bound = 6 * page;
    release_freed_memory();
    let before = resident_bytes();
    assert!(before > 0, "cannot read VmRSS from /proc/self/status");
    // Sampled from the first reader to the last reading: the listener closes connections at
    // their age limit (60 s), so a slow start would free pages before a single reading at the
    // end.
    let peak = Arc::new(AtomicU64::new(before));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (Arc::clone(&peak), Arc::clone(&sampling));
        std::thread::spawn(move || {
            // Relaxed: a flag and a maximum, read after the join.
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(resident_bytes(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let readers = runtime.block_on(async {
        let mut readers = Vec::new();
        for index in 0..SLOW_READERS {
            let source = Ipv4Addr::new(127, 0, 0, 2 + (index % 4) as u8);
            let (reading, started) = tokio::sync::oneshot::channel();
            readers.push(tokio::spawn(slow_reader(
                source,
                addr,
                reading,
                stopped.clone(),
            )));
            tokio::time::timeout(WAIT, started)
                .await
                .unwrap_or_else(|_| panic!("slow reader {index} got no answer within {WAIT:?}"))
                .unwrap_or_else(|_| panic!("slow reader {index} failed"));
        }
        // Every reader holds its page now: a few more samples.
        tokio::time::sleep(Duration::from_secs(1)).await;
        readers
    });
    sampling.store(false, Ordering::Relaxed);
    sampler.join().expect("sampler");
    stop.send(true).expect("the readers listen");
    runtime.block_on(async {
        for reader in readers {
            reader.await.expect("slow reader");
        }
    });
    let peak = peak.load(Ordering::Relaxed);
    eprintln!(
        "resident memory with {SLOW_READERS} slow readers of a {page}-byte page: {} MB before, \
         {} MB at most while they read (bound: growth under {} MB)",
        before / 1_000_000,
        peak / 1_000_000,
        bound / 1_000_000
    );
    assert!(
        peak.saturating_sub(before) < bound,
        "{SLOW_READERS} slow readers grew resident memory by {} bytes, over {bound} \
         (six {page}-byte pages)",
        peak.saturating_sub(before)
    );

    // Removing 1023 pools in one reload: their series go, and one log line says so.
    write_atomically(&path, &config(pcm_caps, "200ms", "", &[]));
    wait_for(WAIT, "the pools to be removed", || {
        (agent.stats().pools.len() == 1).then_some(())
    });
    let body = scrape(addr);
    let left = body
        .lines()
        .filter(|line| line.contains("pool=\"p") && !line.contains("pool=\"pcm\""))
        .count();
    assert_eq!(left, 0, "series of removed pools are still rendered");
    assert!(body.len() < 64 << 10, "{} bytes for one pool", body.len());
    // The line comes after the pools are gone.
    let removed = wait_for(WAIT, "the removal's log line", || {
        let removed = captured.lines_with("pools removed");
        (removed.len() >= 2).then_some(removed)
    });
    assert_eq!(removed.len(), 2, "{removed:#?}");
    assert!(removed[1].contains("count=1023"), "{}", removed[1]);
    assert!(removed[1].contains("and 1013 more"), "{}", removed[1]);
    let added = captured.lines_with("pools added");
    assert_eq!(added.len(), 1, "{added:#?}");

    agent.shutdown();
}
