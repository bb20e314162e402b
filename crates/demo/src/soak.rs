//! `heapscape-demo soak`: the service under sustained load, checked for errors, bounded
//! resident memory and complete metric scrapes.
//!
//! For each mode asked for (pooling on, off, or both one after the other), starts a `serve`
//! child of this same binary on free loopback ports with the default `pcm` pool, measures its
//! resident memory (`VmRSS` of `/proc/<pid>/status`) before the load as the baseline, then runs
//! the seeded load generator at `--concurrency` connections for `--duration` while sampling the
//! resident memory every 500 ms and firing `--scrapers` concurrent Prometheus scrapes every
//! second (each parsed with [`heapscape_cli::exposition`]). A mode passes when:
//!
//! - no request failed;
//! - every scrape answered 200, parsed, and had the heap and request series;
//! - the resident memory never exceeded the bound computed from the configuration:
//!   `baseline + max_idle_bytes + concurrency × largest in-flight buffer`, where the largest
//!   in-flight buffer is the capacity a `Vec` reaches for the largest stream (4 MiB of PCM plus
//!   the 44-byte header, grown by doubling: 8 MiB);
//! - it does not trend upward: the mean of the last third of the samples is at most 25 % +
//!   32 MiB over the mean of the middle third (the first third is the warm-up).
//!
//! Exits non-zero if any check fails. Prints one `soak-result` line per mode with the numbers
//! (for scripts and the tests) and a readable summary.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::Error;
use crate::child::ServeChild;
use crate::load::{self, LoadOptions, StreamSizes};
use crate::scrape::{self, ALLOCATED, CONFIG_RELOADS, HEARTBEAT_UP};
use crate::server::Pooling;
use crate::sync::lock;

/// Resident-memory sampling period.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);

/// The `pcm` pool's idle-bytes cap when `serve` runs without a config file.
pub const DEFAULT_MAX_IDLE_BYTES: u64 = 128 << 20;

/// Series every scrape must contain to count as complete.
const REQUIRED_SERIES: [&str; 3] = [ALLOCATED, HEARTBEAT_UP, CONFIG_RELOADS];

/// Which modes `soak` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Modes {
    /// Pooling on only.
    On,
    /// Pooling off only.
    Off,
    /// Pooling off, then on, with the same seed.
    Both,
}

/// What `heapscape-demo soak` does.
#[derive(Debug, Clone, clap::Args)]
pub struct SoakOptions {
    /// Load time per mode (e.g. `20s`, `5m`).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Connections (requests in flight) of the load generator.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: u32,
    /// Modes to run.
    #[arg(long, value_enum, default_value_t = Modes::Both)]
    pub pooling: Modes,
    /// Concurrent Prometheus scrapes fired every second during the load (0: none).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub scrapers: u32,
    /// Seed of the request texts.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The `serve` child's request timeout (generous: a debug build on a busy machine is slow).
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
}

/// What one mode measured.
#[derive(Debug, Clone)]
pub struct SoakSummary {
    /// `"on"` or `"off"`.
    pub pooling: &'static str,
    /// Successful requests.
    pub ok: u64,
    /// Failed requests (all kinds).
    pub errors: u64,
    /// Successful requests per second.
    pub requests_per_second: f64,
    /// Latency p50 and p99, milliseconds.
    pub p50_ms: f64,
    /// Latency p99, milliseconds.
    pub p99_ms: f64,
    /// Scrapes that were complete and parsed.
    pub scrapes_ok: u64,
    /// Scrapes that failed, with the first reason.
    pub scrapes_failed: u64,
    /// Reason of the first failed scrape.
    pub first_scrape_failure: Option<String>,
    /// Resident bytes before the load.
    pub baseline: u64,
    /// Resident bytes during the load: min, mean, max.
    pub resident: (u64, u64, u64),
    /// Mean resident bytes of the middle and of the last third of the samples.
    pub thirds: (u64, u64),
    /// The resident bound computed from the configuration.
    pub bound: u64,
}

impl SoakSummary {
    /// Whether the last third's mean stays within 25 % + 32 MiB of the middle third's.
    pub fn trend_ok(&self) -> bool {
        let (middle, last) = self.thirds;
        last as f64 <= middle as f64 * 1.25 + f64::from(32u32 << 20)
    }

    /// Every check of the mode passed.
    pub fn passed(&self) -> bool {
        self.errors == 0
            && self.scrapes_failed == 0
            && self.resident.2 <= self.bound
            && self.trend_ok()
    }
}

impl fmt::Display for SoakSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
        writeln!(
            f,
            "soak-result pooling={} ok={} errors={} rps={:.1} p50_ms={:.1} p99_ms={:.1} \
             scrapes_ok={} scrapes_failed={} baseline={} rss_min={} rss_mean={} rss_max={} \
             middle_third={} last_third={} bound={} trend_ok={} passed={}",
            self.pooling,
            self.ok,
            self.errors,
            self.requests_per_second,
            self.p50_ms,
            self.p99_ms,
            self.scrapes_ok,
            self.scrapes_failed,
            self.baseline,
            self.resident.0,
            self.resident.1,
            self.resident.2,
            self.thirds.0,
            self.thirds.1,
            self.bound,
            self.trend_ok(),
            self.passed()
        )?;
        writeln!(
            f,
            "pooling {}: {} ok, {} failed, {:.1} req/s, p50 {:.1} ms, p99 {:.1} ms; scrapes {} ok, \
             {} failed; resident baseline {:.1} MiB, min {:.1}, mean {:.1}, max {:.1} MiB \
             (bound {:.1} MiB); middle third {:.1} MiB, last third {:.1} MiB",
            self.pooling,
            self.ok,
            self.errors,
            self.requests_per_second,
            self.p50_ms,
            self.p99_ms,
            self.scrapes_ok,
            self.scrapes_failed,
            mib(self.baseline),
            mib(self.resident.0),
            mib(self.resident.1),
            mib(self.resident.2),
            mib(self.bound),
            mib(self.thirds.0),
            mib(self.thirds.1),
        )?;
        if let Some(reason) = &self.first_scrape_failure {
            writeln!(f, "first failed scrape: {reason}")?;
        }
        Ok(())
    }
}

/// The largest buffer one in-flight request can hold: the largest stream plus the WAV header,
/// rounded up to the power of two a doubling `Vec` reaches.
pub fn largest_in_flight_buffer() -> u64 {
    (StreamSizes::BENCH.max + crate::wav::HEADER_LEN as u64).next_power_of_two()
}

/// The resident bound of a mode: `baseline + max_idle_bytes (pooled only) + concurrency ×`
/// [`largest_in_flight_buffer`].
pub fn resident_bound(baseline: u64, pooled: bool, concurrency: u32) -> u64 {
    let idle = if pooled { DEFAULT_MAX_IDLE_BYTES } else { 0 };
    baseline + idle + u64::from(concurrency) * largest_in_flight_buffer()
}

/// Runs the modes asked for, one after the other.
///
/// # Errors
///
/// When a child does not start or dies, or `/proc` cannot be read; failed checks are in the
/// summaries ([`SoakSummary::passed`]).
pub async fn run(options: &SoakOptions) -> Result<Vec<SoakSummary>, Error> {
    let exe = std::env::current_exe().map_err(Error::io("finding this program's path"))?;
    let modes: &[Pooling] = match options.pooling {
        Modes::On => &[Pooling::On],
        Modes::Off => &[Pooling::Off],
        Modes::Both => &[Pooling::Off, Pooling::On],
    };
    let mut summaries = Vec::new();
    for &pooling in modes {
        summaries.push(soak_one(&exe, pooling, options).await?);
    }
    Ok(summaries)
}

async fn soak_one(
    exe: &Path,
    pooling: Pooling,
    options: &SoakOptions,
) -> Result<SoakSummary, Error> {
    let timeout = humantime::format_duration(options.request_timeout).to_string();
    let max_in_flight = options.concurrency.to_string();
    let mut child = ServeChild::spawn_with(
        exe,
        pooling,
        &[
            "--request-timeout",
            &timeout,
            "--max-in-flight",
            &max_in_flight,
        ],
    )
    .await?;
    let pid = child
        .process
        .id()
        .ok_or_else(|| Error::InvalidOptions("the serve child has no pid".to_owned()))?;
    // Baseline: after start-up, before any request.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline = resident_bytes(pid)?;

    let samples = Arc::new(Mutex::new(Vec::<u64>::new()));
    let sampler = tokio::spawn({
        let samples = samples.clone();
        async move {
            let mut ticker = tokio::time::interval(SAMPLE_EVERY);
            loop {
                ticker.tick().await;
                match resident_bytes(pid) {
                    Ok(bytes) => lock(&samples).push(bytes),
                    Err(_) => break,
                }
            }
        }
    });
    let scrapes = Arc::new(ScrapeTally::default());
    let scraper = tokio::spawn(scrape_rounds(
        child.metrics,
        options.scrapers,
        scrapes.clone(),
    ));

    let load_options = LoadOptions {
        url: format!("http://{}", child.http),
        concurrency: options.concurrency,
        duration: Some(options.duration),
        seed: options.seed,
        request_timeout: options.request_timeout + Duration::from_secs(60),
        no_progress: true,
        ..LoadOptions::default()
    };
    let report = load::run(&load_options).await;
    sampler.abort();
    scraper.abort();
    let report = report?;
    child.check_running()?;
    child.shutdown().await?;

    let samples = lock(&samples).clone();
    let n = samples.len().max(1);
    let mean = |part: &[u64]| part.iter().sum::<u64>() / part.len().max(1) as u64;
    let thirds = (
        mean(&samples[n / 3..(2 * n / 3).min(samples.len())]),
        mean(&samples[(2 * n / 3).min(samples.len())..]),
    );
    Ok(SoakSummary {
        pooling: pooling.as_str(),
        ok: report.ok,
        errors: report.error_count(),
        requests_per_second: report.requests_per_second(),
        p50_ms: load::ms(report.latency(0.5)),
        p99_ms: load::ms(report.latency(0.99)),
        scrapes_ok: scrapes.ok.load(Ordering::Relaxed),
        scrapes_failed: scrapes.failed.load(Ordering::Relaxed),
        first_scrape_failure: lock(&scrapes.first_failure).clone(),
        baseline,
        resident: (
            samples.iter().copied().min().unwrap_or(0),
            mean(&samples),
            samples.iter().copied().max().unwrap_or(0),
        ),
        thirds,
        bound: resident_bound(baseline, pooling == Pooling::On, options.concurrency),
    })
}

#[derive(Default)]
struct ScrapeTally {
    ok: AtomicU64,
    failed: AtomicU64,
    first_failure: Mutex<Option<String>>,
}

/// Every second, `scrapers` scrapes at once; each must parse and have [`REQUIRED_SERIES`].
async fn scrape_rounds(target: std::net::SocketAddr, scrapers: u32, tally: Arc<ScrapeTally>) {
    if scrapers == 0 {
        return;
    }
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let mut round = tokio::task::JoinSet::new();
        for _ in 0..scrapers {
            round.spawn(async move {
                let series = scrape::fetch(target).await?;
                match REQUIRED_SERIES
                    .iter()
                    .find(|name| !series.keys().any(|key| key.starts_with(*name)))
                {
                    Some(missing) => Err(format!("incomplete scrape: no {missing}")),
                    None => Ok(()),
                }
            });
        }
        while let Some(result) = round.join_next().await {
            match result {
                Ok(Ok(())) => {
                    tally.ok.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Err(reason)) => {
                    tally.failed.fetch_add(1, Ordering::Relaxed);
                    lock(&tally.first_failure).get_or_insert(reason);
                }
                // Aborted at the end of the run: not a failed scrape.
                Err(_) => {}
            }
        }
    }
}

/// `VmRSS` of process `pid`, in bytes.
///
/// # Errors
///
/// [`Error::Io`] when `/proc/<pid>/status` cannot be read (the process is gone) or has no
/// `VmRSS` line.
pub fn resident_bytes(pid: u32) -> Result<u64, Error> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(Error::io(format!("reading {path}")))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| Error::Io {
            context: format!("reading {path}"),
            error: std::io::Error::other("no VmRSS line"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_follows_the_config() {
        assert_eq!(largest_in_flight_buffer(), 8 << 20);
        assert_eq!(resident_bound(10, false, 2), 10 + (16 << 20));
        assert_eq!(resident_bound(10, true, 2), 10 + (144 << 20));
        let own = resident_bytes(std::process::id()).unwrap();
        assert!(own > 0);
    }
}
