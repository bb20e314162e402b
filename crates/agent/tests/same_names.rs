//! "The same metric names and labels on both paths": the same config and the same pool
//! activity give the same set of metric names, each with the same label keys, in the
//! Prometheus exposition and in the StatsD lines (DogStatsD tag keys).
//!
//! A process can install only one global recorder, so the StatsD side runs in a child process
//! of this test binary (the ignored test `statsd_side`, selected by an environment variable)
//! and sends its lines to a UDP socket of the parent.

// The Prometheus listener (or mode b's recorder) needs the `tokio` feature.
#![cfg(feature = "tokio")]

use std::collections::{BTreeMap, BTreeSet};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use heapscape::{Agent, Config};
use heapscape_testkit::{ChildGuard, WAIT, http_get, wait_until};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const PORT_ENV: &str = "HEAPSCAPE_SAME_NAMES_STATSD_PORT";

/// Metric name -> label keys (`le` aside), over all series of the name.
type Names = BTreeMap<String, BTreeSet<String>>;

fn config(exporter: &str) -> Config {
    Config::from_yaml_str(
        &format!(
            "service: it-same-names\n\
             labels: {{ pooling: \"on\" }}\n\
             exporter: {exporter}\n\
             heartbeat: {{ interval: 200ms }}\n\
             pools: {{ pcm: {{ max_buffer_size: 64KiB, recommendation_min_returns: 100 }} }}\n"
        ),
        "same_names.yaml",
    )
    .expect("config")
}

/// The same activity on both sides: hits, a miss, returns of several sizes, one over the max,
/// more than the recommendations rest on (`recommendation_min_returns: 100`): without them the
/// recommendation and candidate gauges read NaN, which StatsD has no line for. Then waits for
/// three heartbeat ticks, so every metric has been published.
fn run(agent: &Agent) {
    let pcm = agent.pool("pcm").expect("pool");
    for round in 0..200usize {
        pcm.get().resize(100 * (round % 7 + 1), 0);
    }
    pcm.get().resize(128 << 10, 0);
    let ticks = agent.stats().heartbeat_ticks;
    wait_until(WAIT, "three heartbeat ticks", || {
        agent.stats().heartbeat_ticks >= ticks + 3
    });
}

fn add(names: &mut Names, name: &str, keys: impl IntoIterator<Item = String>) {
    names.entry(name.to_owned()).or_default().extend(keys);
}

/// Names and label keys of a Prometheus exposition; a histogram's `_bucket`, `_sum` and
/// `_count` series count as its name, without `le`.
fn exposition_names(exposition: &str) -> Names {
    let histograms: BTreeSet<&str> = exposition
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" histogram"))
        .collect();
    let mut names = Names::new();
    for line in exposition.lines().filter(|line| !line.starts_with('#')) {
        let Some(end) = line.find(['{', ' ']) else {
            continue;
        };
        let series = &line[..end];
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                series
                    .strip_suffix(suffix)
                    .filter(|base| histograms.contains(base))
            })
            .unwrap_or(series);
        let labels = line[end..]
            .strip_prefix('{')
            .and_then(|rest| rest.split_once('}'))
            .map_or("", |(labels, _)| labels);
        let keys = labels
            .split(',')
            .filter_map(|label| label.split_once("=\"").map(|(key, _)| key.to_owned()))
            .filter(|key| key != "le");
        add(&mut names, name, keys);
    }
    names
}

/// Adds the names and tag keys of StatsD lines (`name:value|type[|@rate][|#k:v,...]`).
fn add_statsd_lines(names: &mut Names, datagram: &str) {
    for line in datagram.lines() {
        let (name, rest) = line.split_once(':').expect("name:value");
        let keys = rest
            .split('|')
            .find_map(|part| part.strip_prefix('#'))
            .into_iter()
            .flat_map(|tags| tags.split(','))
            .map(|tag| tag.split_once(':').map_or(tag, |(key, _)| key).to_owned());
        add(names, name, keys);
    }
}

/// Reads the datagrams waiting on `socket` (waiting at most `wait` for the first) into `names`.
fn receive(socket: &UdpSocket, names: &mut Names, wait: Duration) {
    socket.set_read_timeout(Some(wait)).expect("read timeout");
    let mut datagram = vec![0; 65_536];
    while let Ok(length) = socket.recv(&mut datagram) {
        add_statsd_lines(
            names,
            std::str::from_utf8(&datagram[..length]).expect("UTF-8 lines"),
        );
        socket
            .set_read_timeout(Some(Duration::from_millis(1)))
            .expect("read timeout");
    }
}

fn missing(expected: &Names, got: &Names) -> Names {
    expected
        .iter()
        .filter(|(name, keys)| got.get(*name) != Some(keys))
        .map(|(name, keys)| (name.clone(), keys.clone()))
        .collect()
}

#[test]
fn prometheus_and_statsd_publish_the_same_names_and_labels() {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the StatsD receiver");
    let port = socket.local_addr().expect("address").port();
    let child = ChildGuard::spawn(
        "StatsD side",
        Command::new(std::env::current_exe().expect("test binary path"))
            .args(["statsd_side", "--exact", "--ignored", "--nocapture"])
            .env(PORT_ENV, port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _entered = runtime.enter();
    let agent = Agent::builder()
        .config(config("{ prometheus: { listen: 127.0.0.1:0 } }"))
        .start()
        .expect("start");
    run(&agent);
    let (status, exposition) =
        http_get(agent.metrics_addr().expect("listener"), "/metrics").expect("a scrape");
    assert_eq!(status, 200, "{exposition}");
    let prometheus = exposition_names(&exposition);
    assert!(
        prometheus.contains_key("heapscape_pool_returned_length_bytes")
            && prometheus.contains_key("heapscape_jemalloc_allocated_bytes"),
        "{exposition}"
    );
    agent.shutdown();

    // Until every name and label key of the exposition arrived, or the wait ends.
    let mut statsd = Names::new();
    let deadline = Instant::now() + WAIT;
    while !missing(&prometheus, &statsd).is_empty() && Instant::now() < deadline {
        receive(&socket, &mut statsd, Duration::from_millis(200));
    }
    let output = child.wait_with_output(WAIT);
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stdout).contains("1 passed"),
        "the StatsD side failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // What the final tick sent after the wait above.
    receive(&socket, &mut statsd, Duration::from_millis(1));
    assert_eq!(
        statsd,
        prometheus,
        "\nonly in the exposition (or other keys): {:?}\nonly on StatsD (or other keys): {:?}",
        missing(&prometheus, &statsd),
        missing(&statsd, &prometheus)
    );
}

#[test]
#[ignore = "the StatsD side of the test above, in its own process"]
fn statsd_side() {
    // Under `--ignored` without a receiver this would check nothing: fail and say what to set.
    let port = std::env::var(PORT_ENV).unwrap_or_else(|_| {
        panic!(
            "{PORT_ENV} is not set: this test is the StatsD side of \
             `prometheus_and_statsd_publish_the_same_names_and_labels`, which starts it with the port of its \
             UDP receiver; run that test, or set {PORT_ENV} to a port where a StatsD receiver \
             listens"
        )
    });
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _entered = runtime.enter();
    let agent = Agent::builder()
        .config(config(&format!(
            "{{ statsd: {{ host: 127.0.0.1, port: {port} }} }}"
        )))
        .start()
        .expect("start");
    run(&agent);
    agent.shutdown();
}
