//! Issue 15 through the agent's reload path: configs that passed validation and then killed
//! the process (absurd sizes), an interval silently clamped, pools that could not be removed
//! or capped, and the exposition they grew.

use std::net::{Ipv4Addr, SocketAddr};
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
    let agent = Agent::start_from_file(&path).expect("start");
    let addr = agent.metrics_addr().expect("a Prometheus listener");
    let pcm = agent.pool("pcm").expect("pcm");
    let json_pool = agent.pool("json").expect("json");
    json_pool.get().extend_from_slice(b"x");
    wait_for(WAIT, "the json pool's series", || {
        scrape(addr).contains("pool=\"json\"").then_some(())
    });

    // Item 1: sizes that used to pass and abort the next miss, then a 100 GiB buffer, then a
    // clamped interval: each reload is rejected and nothing changes.
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

    // Item 5: too many pools, from code: refused as a whole, with the key and the fix.
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
    let body = wait_for(WAIT, "the last pool's series", || {
        let body = scrape(addr);
        body.contains("pool=\"p1022\"").then_some(body)
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
