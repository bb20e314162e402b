//! The `serve` command: its options, the agent it starts (config file, flags layered over it,
//! live reload), the ready line, and the shutdown signals.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use heapscape_pool::PoolConfig;
use tokio::io::AsyncReadExt;

use super::api::{Buffers, ServiceConfig, router};
use super::connections::{Connections, serve_connections_until};
use super::ready::ReadyLine;
use crate::Error;
use crate::service_metrics;

/// `--pooling on|off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Pooling {
    /// Buffer into pooled buffers (pool `pcm`).
    On,
    /// Buffer into a fresh `Vec::new()` per request, as in the story before the pool.
    Off,
}

impl Pooling {
    /// `"on"` or `"off"`, the value of the `pooling` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Pooling::On => "on",
            Pooling::Off => "off",
        }
    }
}

/// The name of the pool the service buffers PCM in.
pub const POOL_NAME: &str = "pcm";

/// What `heapscape-demo serve` does.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeOptions {
    /// The agent's YAML config (exporter, heartbeat, pools). Without it: Prometheus on
    /// 127.0.0.1:9000, a 10 s heartbeat and the default `pcm` pool.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address of the speech service (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Buffer PCM in pooled buffers or in a fresh Vec per request; also the `pooling` label.
    #[arg(long, value_enum, default_value_t = Pooling::On)]
    pub pooling: Pooling,
    /// Address of the Prometheus scrape listener, instead of the config's (port 0: a free port).
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// Heartbeat interval, instead of the config's (e.g. `1s`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Option<Duration>,
    /// Longest accepted text, in characters (longer: 413).
    #[arg(long, default_value_t = 3000)]
    pub max_text_chars: usize,
    /// Largest accepted request body, in bytes (larger: 413; a larger Content-Length is refused
    /// before the body is read).
    #[arg(long, default_value_t = 64 << 10)]
    pub body_limit: usize,
    /// Time allowed from a request to its response head, reading the body included (longer:
    /// 503).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Time a connection may take to send a request's headers; also how long an idle
    /// keep-alive connection is kept. The connection is closed after it.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,
    /// On SIGTERM, Ctrl-C or end of stdin: time in-flight requests have to finish before their
    /// connections are closed.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
    /// Responses synthesized or being sent at once; more requests wait. A response holds its
    /// slot until its last byte is sent or its client is gone.
    #[arg(long, default_value_t = 64)]
    pub max_in_flight: usize,
    /// Sample the heap for `/debug/pprof/heap` from the start, as `profiling.enabled: true`
    /// would (needs the `profiling` feature).
    #[arg(long)]
    pub heap_profiling: bool,
    /// Bytes of WAV files synthesized or being sent at once (bounds memory); a request that
    /// finds no room within 2 s is refused (503), a single larger file too (413). Held until
    /// the last byte is sent.
    #[arg(long, default_value = "256MiB", value_parser = parse_bytes)]
    pub max_buffered_bytes: usize,
    /// Longest a response may make no progress towards a client that stopped reading; its
    /// connection is closed and its memory freed after it.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub send_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog.
    #[arg(long, default_value_t = 512)]
    pub max_connections: usize,
    /// Let texts containing `#fault` make the engine fail mid-stream (for tests).
    #[arg(long)]
    pub fault_injection: bool,
    /// Shut down gracefully when standard input closes (how `compare` stops its children, and
    /// why they stop if `compare` dies).
    #[arg(long, hide = true)]
    pub exit_on_stdin_close: bool,
}
/// The agent configuration `serve` runs with: the `--config` file or the built-in default, with
/// the command-line overrides applied and a `pcm` pool added if the file has none.
///
/// # Errors
///
/// [`Error::Agent`] if the file cannot be read or is invalid, and [`Error::InvalidOptions`] for
/// `--metrics-listen` with a StatsD exporter.
pub fn agent_config(options: &ServeOptions) -> Result<heapscape::Config, Error> {
    let mut config = match &options.config {
        Some(path) => heapscape::Config::from_file(path).map_err(|e| Error::Agent(Box::new(e)))?,
        None => heapscape::Config::default(),
    };
    apply_overrides(options, &mut config)?;
    Ok(config)
}

/// Applies the command-line flags to a config (read from the file or the default): the
/// `pooling` label, `--metrics-listen`, `--heartbeat-interval`, `--heap-profiling`, and the
/// `pcm` pool if missing.
/// `serve --config` runs this after every reload of the file as well.
///
/// # Errors
///
/// [`Error::InvalidOptions`] for `--metrics-listen` with a StatsD exporter (the other flags are
/// applied).
pub fn apply_overrides(
    options: &ServeOptions,
    config: &mut heapscape::Config,
) -> Result<(), Error> {
    config
        .labels
        .insert("pooling".to_owned(), options.pooling.as_str().to_owned());
    if let Some(interval) = options.heartbeat_interval {
        config.heartbeat.interval = interval;
    }
    if options.heap_profiling {
        config.profiling.enabled = true;
    }
    config
        .pools
        .entry(POOL_NAME.to_owned())
        .or_insert_with(default_pool_config);
    if let Some(listen) = options.metrics_listen {
        match &mut config.exporter {
            heapscape::ExporterConfig::Prometheus(prometheus) => prometheus.listen = listen,
            _ => {
                return Err(Error::InvalidOptions(
                    "--metrics-listen needs the Prometheus exporter, but the config uses another"
                        .to_owned(),
                ));
            }
        }
    }
    Ok(())
}

/// Starts the agent: from `--config` with the flags layered over it and live reload (SIGHUP
/// and file change, the flags re-applied each time), or from the flags alone.
fn start_agent(options: &ServeOptions) -> Result<heapscape::Agent, Error> {
    // Checks the file and the flags together first, so a bad combination fails the start.
    let config = agent_config(options)?;
    let agent = match &options.config {
        Some(path) => {
            let flags = options.clone();
            heapscape::Agent::builder()
                .config_file(path)
                .overrides(move |config| {
                    if let Err(error) = apply_overrides(&flags, config) {
                        // Only a changed exporter, which a reload cannot apply anyway.
                        tracing::warn!(%error, "reloaded config: flag not applied");
                    }
                })
                .start()
        }
        None => heapscape::Agent::builder().config(config).start(),
    };
    agent.map_err(|e| Error::Agent(Box::new(e)))
}

/// Reads a byte count for a flag, spelled as in the heapscape config (`256MiB`, `65536`).
fn parse_bytes(text: &str) -> Result<usize, String> {
    let bytes = heapscape::parse_size(text)?;
    usize::try_from(bytes)
        .map_err(|_| format!("`{text}` is more bytes than this machine addresses"))
}

/// The `pcm` pool when the config names none: sized for the story's clips (median 256 KiB,
/// p99 about 4 MiB).
fn default_pool_config() -> PoolConfig {
    let mut config = PoolConfig::default();
    config.initial_capacity = 256 << 10;
    config.max_buffer_size = 4 << 20;
    config.max_idle_buffers = 64;
    config.max_idle_bytes = 128 << 20;
    config.idle_timeout = Duration::from_secs(60);
    config
}

/// Runs the service until Ctrl-C, SIGTERM or (with `--exit-on-stdin-close`) the end of
/// standard input, then drains requests and stops the agent. SIGHUP and a change of the file
/// re-read `--config` (the flags still win).
///
/// # Errors
///
/// When the agent does not start, the address cannot be bound, or serving fails.
pub async fn serve(options: &ServeOptions) -> Result<(), Error> {
    let agent = start_agent(options)?;
    service_metrics::describe_metrics();
    let buffers = match options.pooling {
        Pooling::On => Buffers::Pooled(agent.pool(POOL_NAME).ok_or_else(|| {
            Error::InvalidOptions(format!("the agent has no pool named {POOL_NAME:?}"))
        })?),
        Pooling::Off => Buffers::Fresh,
    };
    let config = ServiceConfig {
        max_text_chars: options.max_text_chars,
        body_limit: options.body_limit,
        request_timeout: options.request_timeout,
        max_in_flight: options.max_in_flight,
        max_buffered_bytes: options.max_buffered_bytes,
        fault_injection: options.fault_injection,
    };
    let listener = match tokio::net::TcpListener::bind(options.listen).await {
        Ok(listener) => listener,
        Err(source) => {
            // The agent binds its metrics listener first; the bare "address in use" would not
            // say that it is the one holding the port.
            if let Some(metrics) = agent
                .metrics_addr()
                .filter(|metrics| metrics.port() == options.listen.port())
            {
                return Err(Error::InvalidOptions(format!(
                    "cannot listen on {}: the agent's metrics listener took that port \
                     ({metrics}, from --metrics-listen or the config's exporter); give the \
                     service and the metrics listener different ports",
                    options.listen
                )));
            }
            if source.kind() == std::io::ErrorKind::AddrInUse {
                return Err(Error::InvalidOptions(format!(
                    "cannot listen on {}: {source}: another process holds that address; stop \
                     it, or give the service another address with --listen (e.g. --listen \
                     127.0.0.1:0 for any free port)",
                    options.listen
                )));
            }
            return Err(Error::io(format!("binding {}", options.listen))(source));
        }
    };
    let http = listener
        .local_addr()
        .map_err(Error::io("reading the bound address"))?;
    let ready = ReadyLine {
        http,
        metrics: agent.metrics_addr(),
        pooling: options.pooling.as_str().to_owned(),
    };
    let metrics = ready.metrics_field();
    tracing::info!(%http, %metrics, pooling = options.pooling.as_str(), "serving");
    let requests = shutdown_requests(options.exit_on_stdin_close);
    print_ready_line(&ready);

    let connections = Connections {
        header_read_timeout: options.header_read_timeout,
        shutdown_grace: options.shutdown_grace,
        send_timeout: options.send_timeout,
        max_connections: options.max_connections,
    };
    let requested = |count: u32| {
        let mut requests = requests.clone();
        async move {
            // An error: the listening task is gone and no request will come.
            if requests.wait_for(|made| *made >= count).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    serve_connections_until(
        listener,
        router(buffers, config),
        connections,
        requested(1),
        requested(2),
    )
    .await;
    // The final heap sample and publish (and the StatsD flush) block; keep them off the async
    // workers.
    let _ = tokio::task::spawn_blocking(move || agent.shutdown()).await;
    tracing::info!("metrics flushed; stopped");
    Ok(())
}
/// Prints the ready line on standard output. A closed standard output loses it (with a warning)
/// instead of panicking like `println!`: the service runs on, only a parent that waits for the
/// line misses it.
fn print_ready_line(ready: &ReadyLine) {
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = writeln!(stdout, "{ready}").and_then(|()| stdout.flush()) {
        tracing::warn!(%error, "the ready line could not be written to standard output");
    }
}

/// Counts shutdown requests: Ctrl-C, SIGTERM, and the end of standard input if `stdin_close`
/// is set. The first starts the graceful shutdown; a second during the grace period closes
/// the remaining connections at once.
fn shutdown_requests(stdin_close: bool) -> tokio::sync::watch::Receiver<u32> {
    use tokio::signal::unix::{SignalKind, signal};
    let (made, requests) = tokio::sync::watch::channel(0u32);
    // Installed before the ready line is printed, so that no signal finds the default action.
    // A handler that cannot be installed leaves the other ways to stop the server.
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    let mut terminate = signal(SignalKind::terminate()).ok();
    let mut stdin = stdin_close.then(tokio::io::stdin);
    tokio::spawn(async move {
        loop {
            let what = tokio::select! {
                Some(()) = next_signal(&mut interrupt) => "Ctrl-C",
                Some(()) = next_signal(&mut terminate) => "SIGTERM",
                () = end_of(&mut stdin) => {
                    // Once: a closed standard input stays closed.
                    stdin = None;
                    "standard input closed"
                }
            };
            made.send_modify(|made| *made += 1);
            if *made.borrow() == 1 {
                tracing::info!("{what}: shutting down");
            } else {
                tracing::info!("{what} again: not waiting for the grace period");
            }
        }
    });
    requests
}

/// The next delivery of `signal`; never, without a handler or once it cannot deliver more.
async fn next_signal(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

/// Resolves when `stdin` reaches its end or fails (the parent is gone); never without one.
async fn end_of(stdin: &mut Option<tokio::io::Stdin>) {
    let Some(stdin) = stdin else {
        return std::future::pending().await;
    };
    let mut sink = [0u8; 64];
    while let Ok(n) = stdin.read(&mut sink).await {
        if n == 0 {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn byte_counts_read_with_their_units() {
        assert_eq!(parse_bytes("65536"), Ok(65536));
        assert_eq!(parse_bytes("256MiB"), Ok(256 << 20));
        assert_eq!(parse_bytes("4 KiB"), Ok(4 << 10));
        assert!(parse_bytes("1TB").is_err());
        assert!(parse_bytes("MiB").is_err());
        assert!(parse_bytes(&format!("{}GiB", usize::MAX)).is_err());
    }
}
