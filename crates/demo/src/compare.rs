//! `heapscape-demo compare`: the heap of the service without and with pooling, side by side.
//!
//! Starts two `serve` children of this same binary on free loopback ports (pooling off and on,
//! 1 s heartbeat), runs the same seeded load against one and then the other (one after the other,
//! so they do not compete for the CPU), scrapes both metric endpoints every second, and
//! summarizes: throughput and latency from the load generator; allocation rate, jemalloc heap
//! gauges, page faults and pool behaviour from the services' own metrics. The summary is printed
//! as a table and written as a self-contained HTML report with charts (and as JSON beside it).
//!
//! - `summary`: what was measured ([`Comparison`], [`ModeSummary`]), plain data;
//! - `phase`: one mode's load phase and its scrapes, summarized;
//! - `report`: the table and the HTML page, read from the summary;
//! - `heap_profile` (feature `profiling`): each mode's heap flame graph, beside the report.
//!
//! The children are `crate::child`'s, the scrapes `crate::scrape`'s.

#[cfg(feature = "profiling")]
mod heap_profile;
mod phase;
mod report;
mod summary;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use self::phase::{Phase, Scrape};
pub use self::summary::{Comparison, ModeSummary, OverTime, Point};
use crate::Error;
use crate::child::ServeChild;
use crate::load::{self, LoadOptions};
use crate::scrape;
use crate::server::Pooling;
use crate::sync::lock;

/// Load time per mode of a default run (the whole run stays under 2 minutes).
pub const DEFAULT_DURATION: Duration = Duration::from_secs(40);

/// Load time per mode with `--quick`.
pub const QUICK_DURATION: Duration = Duration::from_secs(3);

/// Scrape and heartbeat period.
const TICK: Duration = Duration::from_secs(1);

/// Wait after a load phase: two heartbeat ticks, so every counter of the phase is published.
const SETTLE: Duration = Duration::from_millis(2500);

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
    #[cfg_attr(not(feature = "profiling"), expect(unused_mut))]
    let mut heap_profiles = Vec::new();
    for child in children.iter_mut() {
        eprintln!(
            "loading the service with pooling {}",
            child.pooling.as_str()
        );
        let before = scrape::fetch(child.metrics)
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
        let after = scrape::fetch(child.metrics)
            .await
            .map_err(|reason| child.failed(reason))?;
        child.check_running()?;
        #[cfg(feature = "profiling")]
        heap_profiles.push(
            heap_profile::save(child.metrics, child.pooling, &options.report)
                .await
                .map_err(|reason| child.failed(reason))?,
        );
        phases.push(Phase {
            pooling: child.pooling,
            load,
            before,
            after,
            window: (load_start.as_secs_f64(), start.elapsed().as_secs_f64()),
        });
    }
    scraper.abort();
    let timelines = std::mem::take(&mut *lock(&timelines));

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
        heap_profiles,
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
            if let Ok(series) = scrape::fetch(*target).await {
                let at = start.elapsed().as_secs_f64();
                lock(&timelines)[index].push(Scrape { at, series });
            }
        }
    }
}
