//! `heapscape-demo`: the speech service of the story, its load generator and the before/after
//! heap comparison.

use std::fmt::Display;
use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use heapscape_demo::{Error, compare, load, logging, server, soak};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

// Counting jemalloc: the heartbeat reads jemalloc's heap statistics and publishes the
// allocation rate (`heapscape_alloc_*_total`) that `compare` reports per request.
#[global_allocator]
static GLOBAL: heapscape::CountingJemalloc = heapscape::CountingJemalloc;

// jemalloc reads this at startup: the heap profiler built in with sampling off; the agent's
// `profiling:` config turns sampling on and off while the service runs.
#[cfg(feature = "profiling")]
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &[u8] = heapscape::PROFILING_MALLOC_CONF;

#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the speech service: POST /v1/speech answers audio/wav.
    Serve(server::ServeOptions),
    /// Send a bounded, seeded load to a running service and report latency and errors.
    Load(load::LoadOptions),
    /// Run the service unpooled, pooled with the defaults, pooled with the settings the pooled
    /// run recommends (applied through a config file), and pooled with auto-tuning on, in
    /// interleaved slices of the same load; print a table and write an HTML report.
    Compare(compare::CompareOptions),
    /// Sustained load (default 5 minutes at 64 connections) against a `serve` child with
    /// concurrent scrapes: fails on any error, an incomplete scrape, or resident memory over
    /// its bound or trending upward.
    Soak(soak::SoakOptions),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(logging::LossyStderr)
        .log_internal_errors(false)
        .finish()
        .with(logging::filter_from_env())
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            // Not `eprintln!`: it panics when standard error is closed; the exit code tells.
            let _ = writeln!(std::io::stderr(), "heapscape-demo: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Writes a command's output: an error, not a panic like `print!`, when standard output is
/// closed.
fn output(text: impl Display) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    write!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .context("writing to standard output")
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    match cli.command {
        Command::Serve(options) => {
            runtime.block_on(server::serve(&options))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Load(options) => {
            let report = runtime.block_on(load::run(&options))?;
            output(&report)?;
            Ok(if report.error_count() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Soak(options) => {
            let summaries = runtime.block_on(soak::run(&options))?;
            for summary in &summaries {
                output(summary)?;
            }
            Ok(if summaries.iter().all(soak::SoakSummary::passed) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Compare(options) => {
            let comparison = runtime.block_on(compare::run(&options))?;
            output(comparison.table())?;
            output(format_args!(
                "report: {}\nsummary: {}\n",
                comparison.report.display(),
                comparison.json.display()
            ))?;
            match comparison.failed_requests() {
                0 => Ok(ExitCode::SUCCESS),
                count => Err(Error::RequestsFailed { count }.into()),
            }
        }
    }
}
