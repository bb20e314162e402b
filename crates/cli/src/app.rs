//! `heapscape recommend`'s arguments and what it does with them: gather, recommend, render,
//! write.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use crate::{Error, Format, Recommendation, Report, Settings, exit};
use crate::{change, config_edit, http, instance, prometheus, recommend, report};

/// `heapscape`: ops tools for heapscape's buffer pools.
#[derive(Debug, clap::Parser)]
#[command(name = "heapscape", version, about)]
pub enum Cli {
    /// Recommend each pool's settings from its metrics, and optionally write them.
    Recommend(RecommendArgs),
}

/// The arguments of `heapscape recommend`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["prometheus", "metrics"])))]
pub struct RecommendArgs {
    /// A Prometheus-compatible HTTP API to read the fleet from, e.g. http://prometheus:9090.
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,
    /// One instance's /metrics page, for a service without Prometheus (its pools' own
    /// windowed recommendations are shown).
    #[arg(long, value_name = "URL")]
    pub metrics: Option<String>,
    /// Label matchers the series must have, e.g. 'job="tts",cluster="eu"'.
    #[arg(long, default_value = "", value_name = "MATCHERS")]
    pub selector: String,
    /// How far back to look (the pools' recommendation_window by default).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub window: Duration,
    /// The percentile of returned lengths the max is read at (the pools' recommend_percentile).
    #[arg(long, default_value_t = 0.95)]
    pub percentile: f64,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Write the recommended settings of each pool into this heapscape config (the rest of the
    /// file is kept as written).
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// With --write: print the change instead of writing it.
    #[arg(long, requires = "write")]
    pub dry_run: bool,
    /// With --write: the service whose pools to write, when several matched: its name as
    /// shown (the `service` label, or the job without one), or its job.
    #[arg(long, value_name = "SERVICE")]
    pub service: Option<String>,
    /// Read every instance's series even where the kit's recording rule holds the fleet's
    /// summed buckets (by default it is read for a 1 h window, when the selector allows).
    #[arg(long)]
    pub no_recording_rules: bool,
    /// How long to wait for each answer.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// What `run` printed and whether it found anything to recommend.
#[derive(Debug)]
pub struct Outcome {
    /// The report, in the format asked for (already printed to stdout by the binary).
    pub output: String,
    /// The exit code: [`exit::OK`], or [`exit::NOT_ENOUGH_DATA`] when no pool had enough.
    pub code: u8,
}

/// Runs `heapscape recommend`: gathers, recommends, renders and (with `--write`) writes.
///
/// # Errors
///
/// Each [`Error`] says what went wrong and what to do; [`Error::exit_code`] maps it.
pub fn run(args: &RecommendArgs) -> Result<Outcome, Error> {
    if !(args.percentile > 0.0 && args.percentile <= 1.0) {
        return Err(Error::Usage(format!(
            "--percentile {} is outside (0, 1]: write e.g. 0.95",
            args.percentile
        )));
    }
    let http = http::Http::new(args.timeout);
    let (source, recommendations) = match (&args.prometheus, &args.metrics) {
        (Some(url), _) => {
            check_url(url)?;
            let selector = args
                .selector
                .trim()
                .trim_start_matches('{')
                .trim_end_matches('}')
                .trim();
            let progress = progress(prometheus::QUERIES + change::QUERIES);
            let mut tick = |what: &str| {
                progress.set_message(what.to_owned());
                progress.inc(1);
            };
            let prometheus = prometheus::Prometheus::new(&http, url);
            let recorded = !args.no_recording_rules;
            let pools = prometheus::gather(&prometheus, selector, args.window, recorded, &mut tick)
                .and_then(|mut pools| {
                    change::gather(&prometheus, selector, args.window, &mut pools, &mut tick)?;
                    Ok(pools)
                });
            progress.finish_and_clear();
            let recommendations = pools?
                .iter()
                .map(|pool| recommend::recommend(pool, args.percentile))
                .collect::<Vec<_>>();
            let source = if selector.is_empty() {
                format!("{url} over {}", humantime::format_duration(args.window))
            } else {
                format!(
                    "{url} {{{selector}}} over {}",
                    humantime::format_duration(args.window)
                )
            };
            (source, recommendations)
        }
        (None, Some(url)) => {
            check_url(url)?;
            let (status, body) = http.get(url, &[])?;
            if status != 200 {
                return Err(Error::Unreachable {
                    url: url.clone(),
                    reason: format!(
                        "HTTP {status}: {}",
                        body.chars().take(200).collect::<String>()
                    ),
                });
            }
            (format!("{url} (one instance)"), instance::read(url, &body)?)
        }
        (None, None) => {
            return Err(Error::Usage(
                "give --prometheus URL or --metrics URL".into(),
            ));
        }
    };
    let report = Report {
        source: &source,
        percentile: args.percentile,
        recommendations: &recommendations,
    };
    let mut output = report::render(&report, args.output);
    if let Some(path) = &args.write {
        output.push_str(&write(path, args, &recommendations)?);
    }
    let code = if recommendations.iter().any(Recommendation::is_confident) {
        exit::OK
    } else {
        exit::NOT_ENOUGH_DATA
    };
    Ok(Outcome { output, code })
}

fn check_url(url: &str) -> Result<(), Error> {
    if url.starts_with("http://") {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "`{url}` is not an http:// URL: write e.g. http://prometheus:9090 (https is not \
         supported: reach it through a local proxy or port-forward)"
    )))
}

/// A progress bar on stderr while querying, shown only on a terminal.
fn progress(steps: u64) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(steps);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:20} {pos}/{len} {msg}") {
        bar.set_style(style);
    }
    bar
}

/// Writes the confident recommendations of one service into `path` (or, with `--dry-run`,
/// returns the diff); returns what to print.
fn write(path: &PathBuf, args: &RecommendArgs, all: &[Recommendation]) -> Result<String, Error> {
    let config_error = |reason: String| Error::Config {
        path: path.clone(),
        reason,
    };
    // Each service of the answer once, as (job, name): on the StatsD path several services
    // share the exporter's job, and on two paths two services may share a name.
    let mut services: Vec<(Option<&str>, &str)> = all
        .iter()
        .map(|r| (r.job.as_deref(), r.service.as_str()))
        .collect();
    services.sort_unstable();
    services.dedup();
    let list = |services: &[(Option<&str>, &str)]| {
        services
            .iter()
            .map(|(job, service)| report::service_shown(service, *job))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chosen = match &args.service {
        // Either name picks a service: the one shown, or the job its series were scraped as
        // (what an operator on the Prometheus path knows it by, and what --selector matched).
        Some(name) => {
            let matching: Vec<(Option<&str>, &str)> = services
                .iter()
                .copied()
                .filter(|&(job, service)| service == name || job == Some(name.as_str()))
                .collect();
            match matching.as_slice() {
                [one] => *one,
                [] => {
                    return Err(Error::Usage(format!(
                        "--service {name} is none of the services in the answer: {}",
                        list(&services)
                    )));
                }
                many => {
                    return Err(Error::Usage(format!(
                        "--service {name} matches several services: {}; name one of them, or \
                         narrow --selector (e.g. service=\"...\")",
                        list(many)
                    )));
                }
            }
        }
        None => match services.as_slice() {
            [one] => *one,
            many => {
                return Err(Error::Usage(format!(
                    "--write needs --service: the answer covers {}",
                    list(many)
                )));
            }
        },
    };
    let service = report::service_shown(chosen.1, chosen.0);
    let changes: Vec<(String, Settings)> = all
        .iter()
        .filter(|r| (r.job.as_deref(), r.service.as_str()) == chosen)
        .filter_map(|r| Some((r.pool.clone(), r.recommended?)))
        .collect();
    if changes.is_empty() {
        return Err(Error::NotEnoughData(format!(
            "no pool of {service} has a recommendation to write"
        )));
    }
    let before =
        std::fs::read_to_string(path).map_err(|e| config_error(format!("cannot read it: {e}")))?;
    let after = config_edit::apply(&before, &changes).map_err(config_error)?;
    let shown = path.display().to_string();
    if args.dry_run {
        return Ok(format!(
            "\n{}(dry run: nothing written)\n",
            config_edit::diff(&shown, &before, &after)
        ));
    }
    // Written next to it and renamed over it: a service reloading the file never reads half.
    let temporary = path.with_extension("heapscape-recommend.tmp");
    std::fs::write(&temporary, &after)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|e| config_error(format!("cannot write it: {e}")))?;
    Ok(format!(
        "\nwrote {} pool(s) of {service} to {shown}; a running service reloads it\n",
        changes.len()
    ))
}
