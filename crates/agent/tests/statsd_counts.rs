//! StatsD counts against a real Etsy statsd: known numbers of pool returns arrive as exactly
//! those counts, through the returns counter and through the size histogram's sampled `|h`
//! lines (which Etsy statsd adds up as `value / rate`).

use std::time::Duration;

use heapscape::{Agent, Config};
use heapscape_testkit::{Statsd, WAIT, wait_for};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Returns of each length; the last is alone in its bucket, so it goes out unsampled.
const RETURNS: [(usize, usize); 3] = [(100, 2_000), (3_000, 37), (20_000, 1)];

/// The values of the `counters` dump entries for `name` whose tags include `tag`
/// (`'name;service=x;pool=pcm': 2037`): one, unless lines of one series were keyed apart.
fn counters(dump: &str, name: &str, tag: &str) -> Vec<f64> {
    let parts: Vec<&str> = dump.split('\'').collect();
    parts
        .windows(2)
        .filter_map(|pair| {
            let key = pair[0].strip_prefix(&format!("{name};"))?;
            if !key.split(';').any(|part| part == tag) {
                return None;
            }
            let value = pair[1].trim_start_matches(':').trim();
            value.trim_end_matches([',', '}']).trim().parse().ok()
        })
        .collect()
}

/// The one value of `counters`; panics if the series was split.
fn counter(dump: &str, name: &str, tag: &str) -> Option<f64> {
    let values = counters(dump, name, tag);
    assert!(values.len() <= 1, "{name} is split into series:\n{dump}");
    values.first().copied()
}

#[test]
fn etsy_statsd_counts_every_return() {
    // Counters are reset at each flush: one flush an hour keeps the totals in the dump.
    let daemon = Statsd::start_with_flush_interval(Duration::from_secs(3600));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _entered = runtime.enter();
    let config = Config::from_yaml_str(
        &format!(
            "service: it-statsd-counts\n\
             exporter: {{ statsd: {{ host: 127.0.0.1, port: {} }} }}\n\
             heartbeat: {{ interval: 200ms }}\n\
             pools: {{ pcm: {{ max_buffer_size: 1MiB }} }}\n",
            daemon.udp_port()
        ),
        "statsd_counts.yaml",
    )
    .expect("config");
    let agent = Agent::builder().config(config).start().expect("start");
    let pcm = agent.pool("pcm").expect("pool");
    for (length, count) in RETURNS {
        for _ in 0..count {
            pcm.get().resize(length, 0);
        }
    }

    let buckets = heapscape_pool::metrics::LENGTH_BUCKETS;
    let bucket_of = |length: usize| -> f64 {
        #[allow(clippy::cast_precision_loss)] // small lengths
        let length = length as f64;
        *buckets
            .iter()
            .find(|bound| **bound >= length)
            .expect("a bucket")
    };
    #[allow(clippy::cast_precision_loss)] // small counts
    let returns: f64 = RETURNS.iter().map(|(_, count)| *count as f64).sum();
    #[allow(clippy::cast_precision_loss)]
    let lengths: f64 = RETURNS
        .iter()
        .map(|(length, count)| bucket_of(*length) * *count as f64)
        .sum();
    // `1/rate` is within a rounding error of the count it stands for.
    let tolerance = lengths * 1e-9;
    wait_for(WAIT, "statsd to count every return", || {
        let dump = daemon.counters()?;
        let counted_returns = counter(&dump, "heapscape_pool_returns_total", "pool=pcm")?;
        let counted_lengths = counter(&dump, "heapscape_pool_returned_length_bytes", "pool=pcm")?;
        assert!(
            counted_returns <= returns && counted_lengths <= lengths + tolerance,
            "counted more than was returned: {counted_returns} returns (of {returns}), \
             {counted_lengths} in length buckets (of {lengths}):\n{dump}"
        );
        assert!(
            dump.contains("'statsd.bad_lines_seen': 0"),
            "every line must parse:\n{dump}"
        );
        (counted_returns == returns && (counted_lengths - lengths).abs() <= tolerance).then_some(())
    });
    agent.shutdown();
}
