//! `heapscape-demo compare`: the heap of the service without and with pooling, side by side.
//!
//! Starts two `serve` children of this same binary on free loopback ports (pooling off and on,
//! 1 s heartbeat), runs the same seeded load against one and then the other (one after the other,
//! so they do not compete for the CPU), scrapes both metric endpoints every second, and
//! summarizes: throughput and latency from the load generator; allocation rate, jemalloc heap
//! gauges, page faults and pool behaviour from the services' own metrics. The summary is printed
//! as a table and written as a self-contained HTML report with charts (and as JSON beside it).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::time::Instant;

use crate::Error;
use crate::load::{self, LoadOptions, LoadReport};
use crate::prom;
use crate::report;
use crate::server::{Pooling, READY_PREFIX};

/// Load time per mode of a default run (the whole run stays under 2 minutes).
pub const DEFAULT_DURATION: Duration = Duration::from_secs(40);

/// Load time per mode with `--quick`.
pub const QUICK_DURATION: Duration = Duration::from_secs(3);

/// Scrape and heartbeat period.
const TICK: Duration = Duration::from_secs(1);

/// Wait after a load phase: two heartbeat ticks, so every counter of the phase is published.
const SETTLE: Duration = Duration::from_millis(2500);

/// Time a child has to print its ready line, and to exit once asked to.
const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

/// What `heapscape-demo compare` does.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareOptions {
    /// A few-second run (3 s of load per mode) instead of 40 s per mode.
    #[arg(long)]
    pub quick: bool,
    /// Load time per mode, instead of 40 s (or 3 s with --quick).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: u32,
    /// Seed of the request texts; both modes get the same requests.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where to write the HTML report (a JSON summary goes beside it, `.json`).
    #[arg(long, default_value = "reports/heapscape-compare.html")]
    pub report: PathBuf,
}

/// One number summarized over time: mean, max and population standard deviation.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct OverTime {
    /// Mean of the samples.
    pub mean: f64,
    /// Largest sample.
    pub max: f64,
    /// Population standard deviation.
    pub std_dev: f64,
}

impl OverTime {
    fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        Some(Self {
            mean,
            max: values.iter().copied().fold(f64::MIN, f64::max),
            std_dev: variance.sqrt(),
        })
    }
}

/// A point of a mode's timeline, seconds from the start of its load.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Point {
    /// Seconds since the mode's load started.
    pub t: f64,
    /// `heapscape_jemalloc_allocated_bytes`.
    pub allocated: f64,
    /// `heapscape_jemalloc_active_bytes`.
    pub active: f64,
    /// `heapscape_jemalloc_resident_bytes`.
    pub resident: f64,
    /// Bytes allocated per second (counting allocator) between the last two heartbeat
    /// publications seen at this point.
    pub alloc_rate: f64,
}

/// What one mode measured.
#[derive(Debug, Clone, Serialize)]
pub struct ModeSummary {
    /// `"off"` or `"on"`.
    pub pooling: &'static str,
    /// Seconds of load.
    pub load_seconds: f64,
    /// Successful requests.
    pub requests: u64,
    /// Failed requests by kind.
    pub errors: BTreeMap<String, u64>,
    /// Successful requests per second.
    pub requests_per_second: f64,
    /// Latency quantiles of successful requests, milliseconds.
    pub latency_ms: BTreeMap<&'static str, f64>,
    /// Bytes allocated per second (`heapscape_alloc_bytes_total`), if the counting allocator ran.
    pub alloc_bytes_per_second: Option<f64>,
    /// Allocations per second (`heapscape_alloc_allocations_total`).
    pub allocations_per_second: Option<f64>,
    /// Bytes allocated per successful request.
    pub alloc_bytes_per_request: Option<f64>,
    /// Allocations per successful request.
    pub allocations_per_request: Option<f64>,
    /// jemalloc `stats.allocated` over the load.
    pub allocated: Option<OverTime>,
    /// jemalloc `stats.active` over the load.
    pub active: Option<OverTime>,
    /// jemalloc `stats.resident` over the load.
    pub resident: Option<OverTime>,
    /// Minor page faults per successful request.
    pub minor_faults_per_request: Option<f64>,
    /// Pool hits / gets during the load (pooled mode).
    pub pool_hit_ratio: Option<f64>,
    /// Pool discards during the load, by reason.
    pub discards: BTreeMap<String, f64>,
    /// The pool's recommended max buffer size at the end (pooled mode).
    pub recommended_max_buffer_size: Option<f64>,
    /// Heap and allocation rate, every second.
    pub timeline: Vec<Point>,
}

/// The result of a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Requests in flight during each load.
    pub concurrency: u32,
    /// Seed of the requests.
    pub seed: u64,
    /// Pooling off, then on.
    pub modes: [ModeSummary; 2],
    /// The HTML report.
    pub report: PathBuf,
    /// The JSON summary.
    pub json: PathBuf,
}

impl Comparison {
    /// Failed requests over both modes.
    pub fn failed_requests(&self) -> u64 {
        self.modes
            .iter()
            .flat_map(|mode| mode.errors.values())
            .sum()
    }

    /// The side-by-side table `compare` prints.
    pub fn table(&self) -> String {
        report::table(&self.modes)
    }
}

/// Runs the comparison, writes the report and returns the summary.
///
/// Ctrl-C stops the load, shuts both children down and returns [`Error::Interrupted`].
///
/// # Errors
///
/// A child that does not start or exits with an error, a report that cannot be written, or
/// Ctrl-C. Failed requests are not errors here: see [`Comparison::failed_requests`].
pub async fn run(options: &CompareOptions) -> Result<Comparison, Error> {
    let exe = std::env::current_exe().map_err(Error::io("finding this program's path"))?;
    let mut children = Vec::new();
    let outcome = tokio::select! {
        outcome = compare(options, &exe, &mut children) => outcome,
        _ = tokio::signal::ctrl_c() => Err(Error::Interrupted),
    };
    let mut stopped = Ok(());
    for child in children {
        let result = child.shutdown().await;
        if stopped.is_ok() {
            stopped = result;
        }
    }
    let comparison = outcome?;
    stopped?;
    Ok(comparison)
}

async fn compare(
    options: &CompareOptions,
    exe: &Path,
    children: &mut Vec<ServeChild>,
) -> Result<Comparison, Error> {
    let duration = options.duration.unwrap_or(if options.quick {
        QUICK_DURATION
    } else {
        DEFAULT_DURATION
    });
    eprintln!(
        "starting two services (pooling off and on); each gets {} of load in turn, so they do \
         not compete for the CPU",
        humantime::format_duration(duration)
    );
    for pooling in [Pooling::Off, Pooling::On] {
        children.push(ServeChild::spawn(exe, pooling).await?);
    }

    let start = Instant::now();
    let timelines: Arc<Mutex<[Vec<Scrape>; 2]>> = Arc::default();
    let scraper = tokio::spawn(scrape_every_tick(
        [children[0].metrics, children[1].metrics],
        timelines.clone(),
        start,
    ));

    let mut phases = Vec::new();
    for child in children.iter_mut() {
        eprintln!(
            "loading the service with pooling {}",
            child.pooling.as_str()
        );
        let before = scrape(child.metrics)
            .await
            .map_err(|reason| child.failed(reason))?;
        let load_start = start.elapsed();
        let load = load::run(&LoadOptions {
            url: format!("http://{}", child.http),
            concurrency: options.concurrency,
            duration: Some(duration),
            seed: options.seed,
            ..LoadOptions::default()
        })
        .await?;
        tokio::time::sleep(SETTLE).await;
        let after = scrape(child.metrics)
            .await
            .map_err(|reason| child.failed(reason))?;
        child.check_running()?;
        phases.push(Phase {
            pooling: child.pooling,
            load,
            before,
            after,
            window: (load_start.as_secs_f64(), start.elapsed().as_secs_f64()),
        });
    }
    scraper.abort();
    let timelines = std::mem::take(&mut *timelines.lock().unwrap_or_else(PoisonError::into_inner));

    let [off, on] = <[Phase; 2]>::try_from(phases).map_err(|_| Error::Child {
        mode: "both".to_owned(),
        reason: "a load phase is missing".to_owned(),
    })?;
    let [off_timeline, on_timeline] = timelines;
    let modes = [off.summarize(&off_timeline), on.summarize(&on_timeline)];
    let json = options.report.with_extension("json");
    let comparison = Comparison {
        concurrency: options.concurrency,
        seed: options.seed,
        modes,
        report: options.report.clone(),
        json: json.clone(),
    };
    report::write_html(&comparison, &options.report)?;
    let text = serde_json::to_string_pretty(&comparison).unwrap_or_default();
    if let Some(dir) = json.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| Error::Write {
            path: dir.to_owned(),
            source,
        })?;
    }
    std::fs::write(&json, text).map_err(|source| Error::Write { path: json, source })?;
    Ok(comparison)
}

/// One scrape: seconds since the comparison started, series without `pooling`/`pool` labels.
#[derive(Debug, Clone)]
struct Scrape {
    at: f64,
    series: BTreeMap<String, f64>,
}

async fn scrape_every_tick(
    targets: [SocketAddr; 2],
    timelines: Arc<Mutex<[Vec<Scrape>; 2]>>,
    start: Instant,
) {
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        for (index, target) in targets.iter().enumerate() {
            // A failed scrape leaves a gap; a child that died is reported by its phase.
            if let Ok(series) = scrape(*target).await {
                let at = start.elapsed().as_secs_f64();
                timelines.lock().unwrap_or_else(PoisonError::into_inner)[index]
                    .push(Scrape { at, series });
            }
        }
    }
}

pub(crate) async fn scrape(target: SocketAddr) -> Result<BTreeMap<String, f64>, String> {
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let uri = format!("http://{target}/metrics")
        .parse()
        .map_err(|e| format!("bad metrics URL: {e}"))?;
    let fetch = async {
        let response = client
            .get(uri)
            .await
            .map_err(|e| format!("scrape failed: {e}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("scrape failed: {e}"))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("scrape answered {status}"));
        }
        let text = String::from_utf8_lossy(&body);
        let samples = prom::parse(&text).map_err(|e| format!("unreadable metrics: {e}"))?;
        Ok(prom::by_series(&samples, &["pooling", "pool"]))
    };
    tokio::time::timeout(Duration::from_secs(10), fetch)
        .await
        .map_err(|_| "scrape timed out".to_owned())?
}

struct Phase {
    pooling: Pooling,
    load: LoadReport,
    before: BTreeMap<String, f64>,
    after: BTreeMap<String, f64>,
    /// Seconds since the start: load start and end of the settle time.
    window: (f64, f64),
}

const ALLOC_BYTES: &str = "heapscape_alloc_bytes_total";
const ALLOCATIONS: &str = "heapscape_alloc_allocations_total";
const ALLOCATED: &str = "heapscape_jemalloc_allocated_bytes";
const HEARTBEAT_TIMESTAMP: &str = "heapscape_heartbeat_last_success_timestamp_seconds";
const ACTIVE: &str = "heapscape_jemalloc_active_bytes";
const RESIDENT: &str = "heapscape_jemalloc_resident_bytes";
const MINOR_FAULTS: &str = "heapscape_process_minor_page_faults_total";
const HITS: &str = "heapscape_pool_hits_total";
const MISSES: &str = "heapscape_pool_misses_total";
const DISCARDS: &str = "heapscape_pool_discards_total";
const RECOMMENDED_MAX: &str = "heapscape_pool_recommended_max_buffer_size_bytes";

impl Phase {
    fn delta(&self, series: &str) -> Option<f64> {
        Some(self.after.get(series)? - self.before.get(series).copied().unwrap_or(0.0))
    }

    fn summarize(&self, timeline: &[Scrape]) -> ModeSummary {
        let load_seconds = self.load.elapsed.as_secs_f64();
        let requests = self.load.ok;
        let per_request =
            |total: Option<f64>| total.filter(|_| requests > 0).map(|t| t / requests as f64);
        let per_second = |total: Option<f64>| total.map(|t| t / load_seconds.max(1e-9));

        let (from, to) = self.window;
        let in_window: Vec<&Scrape> = timeline
            .iter()
            .filter(|scrape| (from..=to).contains(&scrape.at))
            .collect();
        let gauge = |name: &str| {
            let values: Vec<f64> = in_window
                .iter()
                .filter_map(|s| s.series.get(name).copied())
                .collect();
            OverTime::of(&values)
        };
        let rates = alloc_rates(&in_window);
        let points = in_window
            .iter()
            .zip(rates)
            .map(|(scrape, alloc_rate)| {
                let value = |name: &str| scrape.series.get(name).copied().unwrap_or(0.0);
                Point {
                    t: scrape.at - from,
                    allocated: value(ALLOCATED),
                    active: value(ACTIVE),
                    resident: value(RESIDENT),
                    alloc_rate,
                }
            })
            .collect();

        let hits = self.delta(HITS).unwrap_or(0.0);
        let gets = hits + self.delta(MISSES).unwrap_or(0.0);
        let discards = self
            .after
            .keys()
            .filter_map(|key| {
                let reason = key
                    .strip_prefix(DISCARDS)?
                    .strip_prefix("{reason=\"")?
                    .strip_suffix("\"}")?;
                Some((reason.to_owned(), self.delta(key)?))
            })
            .collect();
        let pooled = self.pooling == Pooling::On;
        let latency_ms = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)]
            .into_iter()
            .map(|(name, q)| (name, load::ms(self.load.latency(q))))
            .chain([("max", load::ms(self.load.max_latency()))])
            .collect();
        ModeSummary {
            pooling: self.pooling.as_str(),
            load_seconds,
            requests,
            errors: self.load.errors.clone(),
            requests_per_second: self.load.requests_per_second(),
            latency_ms,
            alloc_bytes_per_second: per_second(self.delta(ALLOC_BYTES)),
            allocations_per_second: per_second(self.delta(ALLOCATIONS)),
            alloc_bytes_per_request: per_request(self.delta(ALLOC_BYTES)),
            allocations_per_request: per_request(self.delta(ALLOCATIONS)),
            allocated: gauge(ALLOCATED),
            active: gauge(ACTIVE),
            resident: gauge(RESIDENT),
            minor_faults_per_request: per_request(self.delta(MINOR_FAULTS)),
            pool_hit_ratio: (pooled && gets > 0.0).then(|| hits / gets),
            discards: if pooled { discards } else { BTreeMap::new() },
            recommended_max_buffer_size: self
                .after
                .get(RECOMMENDED_MAX)
                .copied()
                .filter(|_| pooled),
            timeline: points,
        }
    }
}

/// The allocation rate (bytes/s) at each scrape, from the counter's deltas between heartbeat
/// publications rather than between scrapes.
///
/// The counter only moves when the heartbeat publishes (every second), and 1 s scrapes drift
/// against 1 s publications: a scrape interval holds 0, 1 or 2 publications, and per-scrape
/// deltas would plot as 0-then-double spikes. So a rate is computed only when a new
/// publication is seen (the heartbeat's `last_success_timestamp` moved, or, without it, the
/// counter moved), over the time between the two publications (the heartbeat's timestamps, or
/// the scrape times without them), and held until the next one.
fn alloc_rates(scrapes: &[&Scrape]) -> Vec<f64> {
    let heartbeat_clock = scrapes
        .iter()
        .all(|scrape| scrape.series.contains_key(HEARTBEAT_TIMESTAMP));
    // (publication time, counter) of the last publication seen.
    let mut last: Option<(f64, f64)> = None;
    let mut rate = 0.0;
    scrapes
        .iter()
        .map(|scrape| {
            let Some(&counter) = scrape.series.get(ALLOC_BYTES) else {
                return rate;
            };
            let at = if heartbeat_clock {
                scrape.series[HEARTBEAT_TIMESTAMP]
            } else {
                scrape.at
            };
            match last {
                Some((previous_at, _)) if heartbeat_clock && at <= previous_at => {}
                Some((_, previous)) if !heartbeat_clock && counter == previous => {}
                Some((previous_at, previous)) => {
                    rate = (counter - previous).max(0.0) / (at - previous_at).max(1e-3);
                    last = Some((at, counter));
                }
                None => last = Some((at, counter)),
            }
            rate
        })
        .collect()
}

/// A `serve` child process; killed if dropped without [`ServeChild::shutdown`].
pub(crate) struct ServeChild {
    pooling: Pooling,
    pub(crate) process: Child,
    /// Closing it asks the child to shut down gracefully (`--exit-on-stdin-close`).
    stdin: Option<ChildStdin>,
    pub(crate) http: SocketAddr,
    pub(crate) metrics: SocketAddr,
}

impl ServeChild {
    async fn spawn(exe: &Path, pooling: Pooling) -> Result<Self, Error> {
        Self::spawn_with(exe, pooling, &[]).await
    }

    /// A `serve` child with `extra` arguments after the ones `compare` uses.
    pub(crate) async fn spawn_with(
        exe: &Path,
        pooling: Pooling,
        extra: &[&str],
    ) -> Result<Self, Error> {
        let failed = |reason: String| Error::Child {
            mode: format!("pooling {}", pooling.as_str()),
            reason,
        };
        let mut process = Command::new(exe)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
                "--heartbeat-interval",
                "1s",
                "--exit-on-stdin-close",
                "--pooling",
                pooling.as_str(),
            ])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed(format!("cannot start {}: {e}", exe.display())))?;
        let stdin = process.stdin.take();
        let stdout = process
            .stdout
            .take()
            .ok_or_else(|| failed("no standard output".to_owned()))?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(CHILD_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.strip_prefix(READY_PREFIX) {
                    return Some(rest.to_owned());
                }
            }
            None
        })
        .await;
        let ready = match ready {
            Ok(Some(ready)) => ready,
            Ok(None) => {
                let status = process
                    .wait()
                    .await
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                return Err(failed(format!("exited before it was ready ({status})")));
            }
            Err(_) => return Err(failed(format!("not ready within {CHILD_TIMEOUT:?}"))),
        };
        // Keep reading so the child never writes into a full or closed pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let field = |key: &str| {
            ready
                .split_whitespace()
                .find_map(|field| field.strip_prefix(key)?.strip_prefix('='))
                .and_then(|addr| addr.parse::<SocketAddr>().ok())
                .ok_or_else(|| failed(format!("its ready line has no {key} address: {ready:?}")))
        };
        Ok(Self {
            pooling,
            http: field("http")?,
            metrics: field("metrics")?,
            process,
            stdin,
        })
    }

    fn failed(&self, reason: String) -> Error {
        Error::Child {
            mode: format!("pooling {}", self.pooling.as_str()),
            reason,
        }
    }

    pub(crate) fn check_running(&mut self) -> Result<(), Error> {
        match self.process.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(self.failed(format!("exited during the run ({status})"))),
            Err(e) => Err(self.failed(format!("cannot be checked: {e}"))),
        }
    }

    /// Closes the child's standard input and waits for it to exit; kills it after the timeout.
    pub(crate) async fn shutdown(mut self) -> Result<(), Error> {
        drop(self.stdin.take());
        match tokio::time::timeout(CHILD_TIMEOUT, self.process.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(self.failed(format!("exited with {status}"))),
            Ok(Err(e)) => Err(self.failed(format!("cannot be waited for: {e}"))),
            Err(_) => {
                // Ignored: kill_on_drop kills it anyway when `self` goes.
                let _ = self.process.kill().await;
                Err(self.failed(format!("did not stop within {CHILD_TIMEOUT:?}; killed")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(at: f64, published_at: Option<f64>, bytes: f64) -> Scrape {
        let mut series = BTreeMap::from([(ALLOC_BYTES.to_owned(), bytes)]);
        if let Some(published_at) = published_at {
            series.insert(HEARTBEAT_TIMESTAMP.to_owned(), published_at);
        }
        Scrape { at, series }
    }

    /// A steady 1000 B/s, published every second, scraped every second but out of step: a
    /// scrape interval sees 0, 1 or 2 publications.
    fn drifting(with_timestamps: bool) -> Vec<Scrape> {
        // (scrape time, last publication time before it)
        let seen = [
            (1.0, 0.9),
            (1.95, 0.9),
            (3.0, 2.9),
            (4.0, 3.9),
            (4.9, 3.9),
            (6.0, 5.9),
        ];
        seen.iter()
            .map(|&(at, published)| {
                scrape(at, with_timestamps.then_some(published), 1000.0 * published)
            })
            .collect()
    }

    #[test]
    fn rates_follow_publications_not_scrapes() {
        let scrapes = drifting(true);
        let rates = alloc_rates(&scrapes.iter().collect::<Vec<_>>());
        assert_eq!(rates[0], 0.0, "no rate before a second publication");
        for rate in &rates[2..] {
            assert!((rate - 1000.0).abs() < 1e-6, "{rates:?}");
        }
        assert_eq!(rates[1], 0.0, "held, not a dip");
    }

    #[test]
    fn without_heartbeat_timestamps_rates_use_the_scrapes_where_the_counter_moved() {
        let scrapes = drifting(false);
        let rates = alloc_rates(&scrapes.iter().collect::<Vec<_>>());
        // No zero after the first change, no doubled spike.
        for rate in &rates[2..] {
            assert!((700.0..1400.0).contains(rate), "{rates:?}");
        }
    }
}
