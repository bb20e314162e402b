//! `heapscape-demo compare`: the heap of the service unpooled, pooled with the default settings,
//! pooled with the defaults and tuned jemalloc decay, pooled with the settings the pooled
//! service recommended (and that decay), and pooled with auto-tuning on, side by side: one
//! lever at a time, since pooled+decay against pooled shows what the decay did and tuned
//! against pooled+decay what the caps did.
//!
//! Starts five `serve` children of this same binary on free loopback ports (pooling off, on,
//! on with a `--config` file of the defaults and decay settings, on with a `--config` file, and
//! on with a `--config` file that turns auto-tuning on; 1 s heartbeat; with `--quick` the
//! pooled service gets a file too, see [`QUICK_MIN_RETURNS`]).
//! A warm-up gives each the same seeded load in turn; the pooled service's recommendation
//! (max buffer size, initial capacity, and the idle caps where the pool publishes them) is
//! then written into the tuned service's config file with jemalloc decay settings, as ops
//! would, and the service hot-reloads it. The auto service started from the
//! pooled defaults and tuned itself on its heartbeat ticks during its warm-up; once its moves
//! under way are done, its settings in force are read and set beside the tuned ones. Then the
//! modes take turns in short slices of the same seeded requests, one slice each per round, the
//! order rotating every round (unpooled, pooled, pooled+decay, tuned, auto; then pooled,
//! pooled+decay, tuned, auto, unpooled; ...): the children stay up and only the load moves, so a busy machine weighs on
//! every mode alike and no mode always follows the same one. All five metric endpoints are
//! scraped every half second; each scrape belongs to a slice by the heartbeat's publication
//! time (see `slice`).
//!
//! The summary (throughput and latency from the load generator; allocation rate, jemalloc heap
//! gauges, page faults and pool behaviour from the services' own metrics; the spread of each
//! slice's numbers; the targets judged on them; the returned lengths and each candidate max's
//! cost) is printed as a table and written as a self-contained HTML report with charts (and as
//! JSON beside it). With the `profiling` feature, each mode's heap flame graph is saved beside
//! the report.
//!
//! - `summary`: what was measured, plain data;
//! - `slice`: one mode's slices, summarized from the heartbeat's publications;
//! - `stats`: medians, percentiles and the bootstrap interval;
//! - `verdict`: the targets, judged met, not met or inconclusive on the slices;
//! - `tuned`: the recommendation read, written to the tuned service's file and confirmed;
//! - `auto`: the auto service's file, the wait for its moves, its settings read back;
//! - `config_file`: where the services' config files go, their pool section, the write;
//! - `sizes`: the distribution of returned lengths;
//! - `candidates`: the pool's own candidate max buffer sizes, their costs, the modes that ran
//!   them;
//! - `report`: the table and the HTML page, read from the summary;
//! - `heap_profile` (feature `profiling`): each mode's heap flame graph, beside the report.
//!
//! The children are `crate::child`'s, the scrapes `crate::scrape`'s.

mod auto;
mod candidates;
mod config_file;
#[cfg(feature = "profiling")]
mod heap_profile;
mod report;
mod sizes;
mod slice;
mod stats;
mod summary;
mod tuned;
mod verdict;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use self::slice::{ModeRun, Scrape, Slice};
pub use self::summary::{
    Auto, Candidate, CandidateRun, Comparison, Goal, ModeMedian, ModeSummary, OverTime, Point,
    Sizes, Spread, State, Tuned, Verdict,
};
pub use self::tuned::TunedDecay;
use crate::Error;
use crate::child::{PROFILING_ARGS, ServeChild};
use crate::load::{self, LoadOptions, LoadReport};
use crate::scrape;
use crate::server::Pooling;
use crate::sync::lock;

/// Load time per mode of a default run, all slices together.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(32);

/// Load time per mode with `--quick`.
pub const QUICK_DURATION: Duration = Duration::from_secs(6);

/// Slice length of a default run: four heartbeat publications, three once the first after the
/// idle gap is left out. Some 3,000 requests on a 2-core machine: the tuned service's
/// allocation rate comes from its returns above the max, about 1 % of them, and with a few
/// hundred requests a slice (a slower speech engine) its ratio to unpooled's spread too wide
/// to decide within 8 rounds.
pub const DEFAULT_SLICE: Duration = Duration::from_secs(4);

/// Slice length with `--quick`: two heartbeat publications, so that a slice has a sample
/// once the first after its idle gap is left out, and a rate between two of its own.
pub const QUICK_SLICE: Duration = Duration::from_secs(2);

/// Warm-up load per mode of a default run.
pub const DEFAULT_WARMUP: Duration = Duration::from_secs(3);

/// Warm-up load per mode with `--quick`.
pub const QUICK_WARMUP: Duration = Duration::from_secs(1);

/// The most warm-up rounds. A busy machine serves fewer requests in a round than the pooled
/// service's recommendation rests on, so the warm-up goes on, a round of every mode at a time,
/// until that service recommends, up to this many rounds.
pub const MOST_WARMUP_ROUNDS: u32 = 8;

/// The fewest rounds a run stops after, once every verdict is decided (unless
/// `--all-rounds`): a verdict decides on 3, and one more keeps a single odd round from
/// deciding a run that looked at its verdicts after every round.
pub const EARLY_STOP_ROUNDS: usize = 4;

/// The fewest returns the pooled, tuned and auto services' recommendations rest on with
/// `--quick` (`recommendation_min_returns`), where the pool's default is 400 at p95: a 1 s
/// warm-up holds tens of returns, not hundreds, and would leave the tuned service nothing to
/// run and the auto service nothing to follow. A quick run shows the workflow; its
/// recommendation is a percentile of few returns, close to their largest.
pub const QUICK_MIN_RETURNS: u64 = 20;

/// Scrape period: half the children's 1 s heartbeat, so every publication is seen at least
/// once.
const SCRAPE_EVERY: Duration = Duration::from_millis(500);

/// Wait after the warm-up and after the last slice: two heartbeat ticks, so every counter and
/// gauge of the load is published.
const SETTLE: Duration = Duration::from_millis(2500);

/// A mode of the comparison: one `serve` child, one column of the report.
struct Mode {
    /// Its name, by which the report and the verdicts find it.
    name: &'static str,
    /// The child's `--pooling`.
    pooling: Pooling,
    /// What it runs, in a few words.
    label: &'static str,
    /// The mode the report sets it against.
    baseline: Option<&'static str>,
}

/// The modes, in the order of their children (the first round's order).
const MODES: [Mode; 5] = [
    Mode {
        name: "unpooled",
        pooling: Pooling::Off,
        label: "",
        baseline: None,
    },
    Mode {
        name: "pooled",
        pooling: Pooling::On,
        label: "defaults",
        baseline: Some("unpooled"),
    },
    // The default pool with tuned's jemalloc decay: against pooled, what the decay alone did.
    Mode {
        name: "pooled+decay",
        pooling: Pooling::On,
        label: "tuned decay",
        baseline: Some("pooled"),
    },
    // Against pooled+decay, which runs the same decay: what the recommended caps alone did.
    Mode {
        name: "tuned",
        pooling: Pooling::On,
        label: "recommended",
        baseline: Some("pooled+decay"),
    },
    // Against pooled: auto differs from pooled only in auto-tuning (jemalloc's default decay).
    Mode {
        name: "auto",
        pooling: Pooling::On,
        label: "auto-tuned",
        baseline: Some("pooled"),
    },
];

/// The position of the mode named `name` in [`MODES`] (and among the children).
fn position(name: &str) -> usize {
    MODES
        .iter()
        .position(|mode| mode.name == name)
        .unwrap_or_else(|| unreachable!("no mode {name}"))
}

/// The modes' positions in round `round`: the order rotates by one every round.
fn round_order(round: usize) -> impl Iterator<Item = usize> {
    (0..MODES.len()).map(move |offset| (round + offset) % MODES.len())
}

/// What `heapscape-demo compare` does.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareOptions {
    /// A few-second run (1 s warm-up, 6 s of load per mode in 2 s slices; recommendations
    /// from 20 returns rather than the pool's default 400).
    #[arg(long)]
    pub quick: bool,
    /// Load time per mode, all slices together, instead of 32 s (or 6 s with --quick): the
    /// most a run takes, since it stops after 4 rounds or more once every target's verdict is
    /// decided.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Run every round of --duration, even once every verdict is decided.
    #[arg(long)]
    pub all_rounds: bool,
    /// Length of one slice, instead of 4 s (or 2 s with --quick).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub slice: Option<Duration>,
    /// Warm-up load per mode before the recommendation is read, instead of 3 s (or 1 s with
    /// --quick); repeated, up to 8 rounds, until the pooled service recommends.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub warmup: Option<Duration>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: u32,
    /// Seed of the request texts; every mode gets the same requests.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where to write the HTML report (a JSON summary goes beside it, `.json`, and the tuned
    /// and auto services' config files, `-tuned.yaml` and `-auto.yaml`).
    #[arg(long, default_value = "reports/heapscape-compare.html")]
    pub report: PathBuf,
    /// jemalloc settings of the tuned mode.
    #[command(flatten)]
    pub decay: TunedDecay,
}

impl CompareOptions {
    fn pick(&self, set: Option<Duration>, default: Duration, quick: Duration) -> Duration {
        set.unwrap_or(if self.quick { quick } else { default })
    }
}

/// Runs the comparison, writes the report and returns the summary.
///
/// Ctrl-C stops the load, shuts the children down and returns [`Error::Interrupted`].
///
/// # Errors
///
/// A child that does not start, rejects the tuned config or exits with an error, a report that
/// cannot be written, or Ctrl-C. Failed requests are not errors here: see
/// [`Comparison::failed_requests`].
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

fn create_parent(path: &Path) -> Result<(), Error> {
    match path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir).map_err(|error| Error::Write {
            path: dir.to_owned(),
            error,
        }),
        None => Ok(()),
    }
}

async fn compare(
    options: &CompareOptions,
    exe: &Path,
    children: &mut Vec<ServeChild>,
) -> Result<Comparison, Error> {
    let duration = options.pick(options.duration, DEFAULT_DURATION, QUICK_DURATION);
    let slice = options
        .pick(options.slice, DEFAULT_SLICE, QUICK_SLICE)
        .min(duration);
    let warmup = options.pick(options.warmup, DEFAULT_WARMUP, QUICK_WARMUP);
    let rounds = (duration.as_secs_f64() / slice.as_secs_f64().max(1e-3))
        .ceil()
        .max(1.0) as usize;
    let mut defaults = tuned::pooled_defaults()?;
    let config_file = config_file::beside(&options.report, "tuned");
    create_parent(&config_file)?;
    config_file::write(&config_file, &tuned::baseline_yaml())?;
    // `serve`'s default pool but for the minimum of returns, in a file since no flag sets it;
    // tuned and auto inherit the minimum from `defaults`.
    let pooled_file = if options.quick {
        let default_min = defaults.min_returns();
        defaults.recommendation_min_returns = Some(QUICK_MIN_RETURNS);
        let file = config_file::beside(&options.report, "pooled");
        config_file::write(&file, &tuned::quick_pooled_yaml(&defaults))?;
        eprintln!(
            "--quick: recommendations rest on {QUICK_MIN_RETURNS} returns \
             (recommendation_min_returns) rather than the pool's default {default_min}"
        );
        Some(file)
    } else {
        None
    };
    let decay_file = config_file::beside(&options.report, "pooled+decay");
    config_file::write(&decay_file, &tuned::decay_yaml(&defaults, &options.decay))?;
    let auto_pool = auto::pool_config(&defaults);
    let auto_file = config_file::beside(&options.report, "auto");
    config_file::write(&auto_file, &auto::yaml(&auto_pool))?;

    eprintln!(
        "starting {} services ({}); {} of warm-up each, then up to {rounds} rounds of {} slices \
         in turn (the order rotating every round), so a busy machine weighs on every mode \
         alike",
        MODES.len(),
        MODES.map(|mode| mode.name).join(", "),
        humantime::format_duration(warmup),
        humantime::format_duration(slice)
    );
    for mode in &MODES {
        let pooling = mode.pooling;
        let file = match mode.name {
            "pooled" => pooled_file.as_ref(),
            "pooled+decay" => Some(&decay_file),
            "tuned" => Some(&config_file),
            "auto" => Some(&auto_file),
            _ => None,
        };
        let child = match file {
            Some(file) => {
                let file = file.to_string_lossy();
                let args = [&["--config", file.as_ref()], PROFILING_ARGS].concat();
                ServeChild::spawn_with(exe, pooling, &args).await?
            }
            None => ServeChild::spawn(exe, pooling).await?,
        };
        children.push(child);
    }
    let targets: Vec<SocketAddr> = children.iter().map(|child| child.metrics).collect();

    let start = Instant::now();
    let unix_start = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let timelines: Arc<Mutex<Vec<Vec<Scrape>>>> =
        Arc::new(Mutex::new(vec![Vec::new(); MODES.len()]));
    let scraper = tokio::spawn(scrape_every_tick(targets, timelines.clone(), unix_start));

    eprintln!("warm-up; then the pooled service's recommendation goes to the tuned service");
    let pooled = &children[position("pooled")];
    let mut warmup_rounds = 0;
    let (warm_after, pool, recommendation) = loop {
        // Every mode warms alike, so that none starts the slices with more history.
        for child in children.iter() {
            load(child.http, options, warmup, options.seed).await?;
        }
        warmup_rounds += 1;
        tokio::time::sleep(SETTLE).await;
        let warm_after = scrape::fetch(pooled.metrics)
            .await
            .map_err(|reason| pooled.failed(reason))?;
        match tuned::recommend(&defaults, &warm_after) {
            Ok((pool, recommendation)) => break (warm_after, pool, recommendation),
            Err(_) if warmup_rounds < MOST_WARMUP_ROUNDS => {
                let read = |name| warm_after.get(name).copied().unwrap_or(0.0);
                eprintln!(
                    "the pooled service's window holds {} returns of the {} its recommendation \
                     rests on: another {} of warm-up (round {} of at most {MOST_WARMUP_ROUNDS})",
                    read(scrape::RECOMMENDATION_RETURNS),
                    read(scrape::RECOMMENDATION_MIN_RETURNS),
                    humantime::format_duration(warmup),
                    warmup_rounds + 1
                );
            }
            Err(reason) => return Err(pooled.failed(reason)),
        }
    };
    let warmup = warmup * warmup_rounds;
    let sizes = sizes::read(&warm_after);
    let mut candidates = candidates::read(&warm_after, pool.max_buffer_size as f64);
    let applied = tuned::apply(
        &children[position("tuned")],
        &config_file,
        &pool,
        &options.decay,
    )
    .await?;
    let tuned = tuned::describe(
        recommendation,
        &defaults,
        &pool,
        &options.decay,
        applied,
        &config_file,
    );
    eprintln!(
        "tuned: max buffer size {} B, initial capacity {} B (reloaded)",
        pool.max_buffer_size, pool.initial_capacity
    );
    let auto_child = &children[position("auto")];
    let (auto_warm, auto_settled) = auto::settle(auto_child, &auto_pool).await?;
    let auto_max = auto_warm
        .get(scrape::MAX_BUFFER_SIZE)
        .copied()
        .unwrap_or(0.0);
    if auto_max == auto_pool.max_buffer_size as f64 {
        eprintln!(
            "auto: has NOT moved its max buffer size off the default {} B by the end of the \
             warm-up; interleaving",
            auto_pool.max_buffer_size
        );
    } else {
        eprintln!(
            "auto: max buffer size {auto_max} B (tuned itself from {} B); interleaving",
            auto_pool.max_buffer_size
        );
    }

    let origin = start.elapsed().as_secs_f64();
    let mut runs: Vec<ModeRun> = MODES
        .iter()
        .map(|mode| ModeRun {
            mode: mode.name,
            label: mode.label,
            baseline: mode.baseline,
            pooling: mode.pooling,
            slices: Vec::new(),
        })
        .collect();
    let mut rounds_run = 0;
    for round in 0..rounds {
        if !options.all_rounds
            && round >= EARLY_STOP_ROUNDS
            && decided(&runs, &lock(&timelines), origin)
        {
            eprintln!(
                "every verdict is decided after {round} rounds: stopping (--all-rounds runs \
                 all {rounds})"
            );
            break;
        }
        rounds_run = round + 1;
        let seed = options.seed.wrapping_add(1 + round as u64);
        for index in round_order(round) {
            let (child, run) = (&mut children[index], &mut runs[index]);
            let before = scrape::fetch(child.metrics)
                .await
                .map_err(|reason| child.failed(reason))?;
            if let Some(previous) = run.slices.last_mut() {
                previous.after = before.clone();
            }
            let load_start = start.elapsed().as_secs_f64();
            let report = load(child.http, options, slice, seed).await?;
            child.check_running()?;
            run.slices.push(Slice {
                load: report,
                before,
                after: BTreeMap::new(),
                window: (load_start, start.elapsed().as_secs_f64()),
            });
        }
    }
    tokio::time::sleep(SETTLE).await;
    #[cfg_attr(not(feature = "profiling"), expect(unused_mut))]
    let mut heap_profiles = Vec::new();
    for (child, run) in children.iter_mut().zip(&mut runs) {
        let after = scrape::fetch(child.metrics)
            .await
            .map_err(|reason| child.failed(reason))?;
        if let Some(last) = run.slices.last_mut() {
            last.after = after;
        }
        child.check_running()?;
        #[cfg(feature = "profiling")]
        heap_profiles.push(
            heap_profile::save(child.metrics, run.mode, &options.report)
                .await
                .map_err(|reason| child.failed(reason))?,
        );
    }
    scraper.abort();
    let timelines = std::mem::take(&mut *lock(&timelines));

    let summaries: Vec<ModeSummary> = runs
        .iter()
        .zip(&timelines)
        .filter_map(|(run, timeline)| run.summarize(timeline, origin))
        .collect();
    if summaries.len() < MODES.len() {
        return Err(Error::Child {
            mode: "all".to_owned(),
            reason: "a mode ran no slice".to_owned(),
        });
    }
    candidates::add_runs(&mut candidates, &summaries);
    let auto_end = runs[position("auto")]
        .slices
        .last()
        .map(|slice| slice.after.clone())
        .unwrap_or_default();
    let auto = auto::describe(
        &auto_pool,
        &auto_file,
        (&auto_warm, auto_settled),
        &auto_end,
        &tuned,
    );
    let json = options.report.with_extension("json");
    let comparison = Comparison {
        concurrency: options.concurrency,
        seed: options.seed,
        warmup_seconds: warmup.as_secs_f64(),
        slices: rounds_run,
        slice_seconds: slice.as_secs_f64(),
        verdicts: verdict::judge_all(&summaries),
        modes: summaries,
        tuned,
        auto,
        sizes,
        candidates,
        report: options.report.clone(),
        json: json.clone(),
        heap_profiles,
    };
    report::write_html(&comparison, &options.report)?;
    let text = serde_json::to_string_pretty(&comparison).unwrap_or_default();
    create_parent(&json)?;
    std::fs::write(&json, text).map_err(|error| Error::Write { path: json, error })?;
    Ok(comparison)
}

/// Whether every target's verdict is decided on the slices run so far, each on at least
/// [`EARLY_STOP_ROUNDS`] rounds. The last slice's final publication may not be scraped yet;
/// the report judges again once every publication is in.
fn decided(runs: &[ModeRun], timelines: &[Vec<Scrape>], origin: f64) -> bool {
    let summaries: Vec<ModeSummary> = runs
        .iter()
        .zip(timelines)
        .filter_map(|(run, timeline)| run.summarize(timeline, origin))
        .collect();
    verdict::all_decided(&verdict::judge_all(&summaries), EARLY_STOP_ROUNDS)
}

/// One stretch of the seeded load against `http`.
async fn load(
    http: SocketAddr,
    options: &CompareOptions,
    duration: Duration,
    seed: u64,
) -> Result<LoadReport, Error> {
    load::run(&LoadOptions {
        url: format!("http://{http}"),
        concurrency: options.concurrency,
        duration: Some(duration),
        seed,
        ..LoadOptions::default()
    })
    .await
}

/// Scrapes every target every [`SCRAPE_EVERY`] into its timeline, each scrape's publication
/// time read against `unix_start` (the Unix time at which the comparison started).
async fn scrape_every_tick(
    targets: Vec<SocketAddr>,
    timelines: Arc<Mutex<Vec<Vec<Scrape>>>>,
    unix_start: f64,
) {
    let mut ticker = tokio::time::interval(SCRAPE_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        for (index, target) in targets.iter().enumerate() {
            // A failed scrape leaves a gap; a child that died is reported by its slice.
            if let Ok(series) = scrape::fetch(*target).await {
                lock(&timelines)[index].push(Scrape::new(series, unix_start));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_rotates_every_round_and_runs_each_mode_once() {
        let order = |round| {
            round_order(round)
                .map(|i| MODES[i].name)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            order(0),
            ["unpooled", "pooled", "pooled+decay", "tuned", "auto"]
        );
        assert_eq!(
            order(1),
            ["pooled", "pooled+decay", "tuned", "auto", "unpooled"]
        );
        assert_eq!(order(6), order(1));
        assert_eq!(MODES[position("tuned")].name, "tuned");
    }

    #[test]
    fn every_baseline_is_a_mode() {
        for mode in &MODES {
            if let Some(baseline) = mode.baseline {
                assert_eq!(MODES[position(baseline)].name, baseline);
            }
        }
    }
}
