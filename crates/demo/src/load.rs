//! A bounded, seeded load generator for the speech service.
//!
//! Request `i` of a run with seed `s` is always the same text (a function of `s` and `i`), so two
//! runs with the same seed and request count send the same requests whatever the concurrency.
//! Text lengths are drawn so that the PCM sizes follow the stream-size distribution of the
//! benchmarks ([`StreamSizes::BENCH`]): log-normal, median 256 KiB, sigma 1.0, truncated to
//! [8 KiB, 4 MiB].
//!
//! Every response is checked: status 200, a WAV header that parses, and exactly as much PCM as
//! the text asks for. Anything else is an error, counted by kind.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use tokio::time::Instant;

use crate::Error;
use crate::engine;
use crate::server::SpeechRequest;
use crate::wav;

/// How long a run without `--requests` or `--duration` lasts.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(30);

/// The time cap of a run bounded by `--requests` alone.
pub const MAX_DURATION: Duration = Duration::from_secs(600);

/// What `heapscape-demo load` does.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadOptions {
    /// Base URL of the service (its `/v1/speech` is loaded).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// Stop starting requests after this long (e.g. `30s`, `2m`). Default 30s without
    /// `--requests`, at most 10 minutes with it.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many requests.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Start at most this many requests a second, evenly spaced (e.g. `5`, `0.5`), within
    /// `--concurrency` in flight: a steady load for dashboards and alerts rather than the most
    /// the service can take. Default: as fast as the service answers.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Seed of the request texts: the same seed sends the same requests.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Voice of every request.
    #[arg(long, default_value = crate::server::DEFAULT_VOICE)]
    pub voice: String,
    /// Sample rate of every request, in Hz.
    #[arg(long, default_value_t = crate::server::DEFAULT_SAMPLE_RATE)]
    pub sample_rate: u32,
    /// Time allowed for one request, response body included.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Allow a target that is not on this machine (loopback). Only load servers you run.
    #[arg(long)]
    pub allow_remote: bool,
    /// Do not draw a progress bar (it is hidden anyway when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8080".to_owned(),
            concurrency: 4,
            duration: None,
            requests: None,
            rate: None,
            seed: 1,
            voice: crate::server::DEFAULT_VOICE.to_owned(),
            sample_rate: crate::server::DEFAULT_SAMPLE_RATE,
            request_timeout: Duration::from_secs(60),
            allow_remote: false,
            no_progress: false,
        }
    }
}

/// `--rate`: a positive, finite number of requests a second.
fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a rate: give requests a second as a number above 0, e.g. 5 or 0.5"
        )),
    }
}

/// The distribution of PCM stream sizes, in bytes: a log-normal truncated to `[min, max]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamSizes {
    /// Median of the untruncated log-normal (e^mu).
    pub median: f64,
    /// Standard deviation of the log.
    pub sigma: f64,
    /// Smallest size drawn.
    pub min: u64,
    /// Largest size drawn.
    pub max: u64,
}

impl StreamSizes {
    /// The benchmarks' stream sizes (shared/bench/stream-sizes.txt): median 256 KiB, sigma 1.0,
    /// truncated to [8 KiB, 4 MiB]; mean about 410 KiB, p90 about 0.9 MiB.
    pub const BENCH: StreamSizes = StreamSizes {
        median: 262_144.0,
        sigma: 1.0,
        min: 8 << 10,
        max: 4 << 20,
    };

    /// Draws one size. Redraws outside `[min, max]` (0.3% of draws for [`Self::BENCH`]); after
    /// 64 misses in a row, clamps.
    pub fn sample(&self, rng: &mut impl Rng) -> u64 {
        let Ok(log_normal) = LogNormal::new(self.median.ln(), self.sigma) else {
            return self.min;
        };
        let mut size = self.min as f64;
        for _ in 0..64 {
            size = log_normal.sample(rng);
            if (self.min as f64..=self.max as f64).contains(&size) {
                break;
            }
        }
        (size as u64).clamp(self.min, self.max)
    }
}

/// Words the request texts are made of.
const WORDS: [&str; 24] = [
    "the", "heap", "looked", "like", "a", "city", "scape", "until", "buffers", "came", "back",
    "to", "pool", "speech", "arrives", "as", "raw", "audio", "of", "unknown", "length", "so", "we",
    "wait",
];

/// Request `index` of a run with `seed`: a text whose speech at `sample_rate` is a size drawn
/// from `sizes`.
pub fn request_text(seed: u64, index: u64, sizes: &StreamSizes, sample_rate: u32) -> String {
    // Mixing the index into the seed (SplitMix64's constant) gives independent streams per request.
    let mut rng = StdRng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let pcm_len = sizes.sample(&mut rng);
    let chars = engine::chars_for_pcm_len(pcm_len, sample_rate) as usize;
    let mut text = String::with_capacity(chars + 16);
    while text.len() < chars {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(WORDS[rng.random_range(0..WORDS.len())]);
    }
    text.truncate(chars - 1);
    text.push('.');
    text
}

/// What a load run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Requests that finished (well or not).
    pub requests: u64,
    /// Requests answered with a valid WAV of the expected length.
    pub ok: u64,
    /// Failed requests by kind (`http 502`, `timeout`, `connect`, `bad wav`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Response body bytes received (headers excluded).
    pub bytes_received: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Latency of successful requests, request sent to last body byte, in microseconds.
    pub latency_us: Histogram<u64>,
}

impl LoadReport {
    /// Failed requests, all kinds.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Successful requests per second of wall time.
    pub fn requests_per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency at quantile `q` (0..=1) of the successful requests; zero if there were none.
    pub fn latency(&self, q: f64) -> Duration {
        Duration::from_micros(self.latency_us.value_at_quantile(q))
    }

    /// The slowest successful request.
    pub fn max_latency(&self) -> Duration {
        Duration::from_micros(self.latency_us.max())
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        writeln!(
            f,
            "requests:   {} in {:.1} s ({} ok, {} failed), {:.1} req/s",
            self.requests,
            secs,
            self.ok,
            self.error_count(),
            self.requests_per_second()
        )?;
        writeln!(
            f,
            "received:   {:.1} MiB, {:.1} MiB/s",
            self.bytes_received as f64 / f64::from(1 << 20),
            self.bytes_received as f64 / f64::from(1 << 20) / secs
        )?;
        writeln!(
            f,
            "latency:    p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            ms(self.latency(0.5)),
            ms(self.latency(0.9)),
            ms(self.latency(0.99)),
            ms(self.max_latency())
        )?;
        if self.errors.is_empty() {
            writeln!(f, "errors:     none")
        } else {
            for (kind, count) in &self.errors {
                writeln!(f, "errors:     {count} x {kind}")?;
            }
            Ok(())
        }
    }
}

pub(crate) fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// Checks the target and returns the URI of its speech endpoint.
///
/// # Errors
///
/// [`Error::InvalidUrl`] for anything but an `http://host[:port][/]` URL, and
/// [`Error::RemoteTarget`] for a host that is not loopback unless `allow_remote`.
pub fn speech_uri(url: &str, allow_remote: bool) -> Result<Uri, Error> {
    let invalid = |reason: &str| Error::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = url
        .parse()
        .map_err(|_| invalid("it does not parse as a URL"))?;
    if uri.scheme_str() != Some("http") {
        return Err(invalid(
            "only http:// is supported (the load generator speaks no TLS)",
        ));
    }
    let host = uri.host().ok_or_else(|| invalid("it has no host"))?;
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback =
        bare_host == "localhost" || bare_host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback && !allow_remote {
        return Err(Error::RemoteTarget {
            host: host.to_owned(),
        });
    }
    if !matches!(uri.path(), "" | "/") {
        return Err(invalid("give the service's base URL, without a path"));
    }
    let authority = uri.authority().ok_or_else(|| invalid("it has no host"))?;
    Uri::builder()
        .scheme("http")
        .authority(authority.as_str())
        .path_and_query("/v1/speech")
        .build()
        .map_err(|_| invalid("it does not make a valid speech URL"))
}

/// Runs the load described by `options` and reports what it measured.
///
/// # Errors
///
/// Only for options that cannot run (bad URL, remote target, unknown voice or rate); failed
/// requests are counted in the report, not returned as errors.
pub async fn run(options: &LoadOptions) -> Result<LoadReport, Error> {
    let uri = speech_uri(&options.url, options.allow_remote)?;
    if engine::Voice::by_name(&options.voice).is_none() {
        return Err(Error::InvalidOptions(format!(
            "unknown voice {:?}",
            options.voice
        )));
    }
    if !engine::SAMPLE_RATES.contains(&options.sample_rate) {
        return Err(Error::InvalidOptions(format!(
            "unsupported sample rate {}; use one of {:?}",
            options.sample_rate,
            engine::SAMPLE_RATES
        )));
    }
    let duration = match (options.duration, options.requests) {
        (Some(duration), _) => duration,
        (None, Some(_)) => MAX_DURATION,
        (None, None) => DEFAULT_DURATION,
    };

    let progress = progress_bar(options, duration);
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(options.concurrency as usize)
        .build(connector);
    let shared = Arc::new(Shared {
        uri,
        client,
        options: options.clone(),
        next_index: AtomicU64::new(0),
        progress: progress.clone(),
    });

    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..options.concurrency {
        workers.spawn(shared.clone().worker(start, deadline));
    }
    let mut report = LoadReport {
        requests: 0,
        ok: 0,
        errors: BTreeMap::new(),
        bytes_received: 0,
        elapsed: Duration::ZERO,
        latency_us: new_histogram(),
    };
    while let Some(result) = workers.join_next().await {
        let tally = result
            .map_err(|error| Error::InvalidOptions(format!("a load worker failed: {error}")))?;
        report.requests += tally.requests;
        report.ok += tally.ok;
        report.bytes_received += tally.bytes_received;
        for (kind, count) in tally.errors {
            *report.errors.entry(kind).or_default() += count;
        }
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = report.latency_us.add(&tally.latency_us);
    }
    report.elapsed = start.elapsed();
    progress.finish_and_clear();
    Ok(report)
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 1 hour at 3 significant digits; these bounds are valid, so this cannot fail.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

fn progress_bar(options: &LoadOptions, duration: Duration) -> ProgressBar {
    if options.no_progress {
        return ProgressBar::hidden();
    }
    // Counts requests when the run is bounded by count, else seconds.
    let (len, template) = match options.requests {
        Some(requests) => (
            requests,
            "{spinner} {bar:40} {pos}/{len} requests, {elapsed} {msg}",
        ),
        None => (
            duration.as_secs().max(1),
            "{spinner} {bar:40} {pos}/{len} s {msg}",
        ),
    };
    // A fresh ProgressBar draws to stderr and stays hidden when it is not a terminal.
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

struct Shared {
    uri: Uri,
    client: Client<HttpConnector, Full<Bytes>>,
    options: LoadOptions,
    next_index: AtomicU64,
    progress: ProgressBar,
}

/// One worker's counts, merged into the report at the end.
struct Tally {
    requests: u64,
    ok: u64,
    bytes_received: u64,
    errors: BTreeMap<String, u64>,
    latency_us: Histogram<u64>,
}

impl Shared {
    async fn worker(self: Arc<Self>, start: Instant, deadline: Instant) -> Tally {
        let mut tally = Tally {
            requests: 0,
            ok: 0,
            bytes_received: 0,
            errors: BTreeMap::new(),
            latency_us: new_histogram(),
        };
        loop {
            if Instant::now() >= deadline {
                break;
            }
            // Relaxed: the counter only hands out distinct indexes; nothing else is ordered by it.
            let index = self.next_index.fetch_add(1, Ordering::Relaxed);
            if self.options.requests.is_some_and(|limit| index >= limit) {
                break;
            }
            // Request `index` starts at `index / rate` seconds into the run (never before): the
            // schedule holds the rate whatever the latency, up to the concurrency.
            if let Some(rate) = self.options.rate {
                let due = start + Duration::from_secs_f64(index as f64 / rate);
                if due >= deadline {
                    break;
                }
                tokio::time::sleep_until(due).await;
            }
            let sent = Instant::now();
            let outcome = tokio::time::timeout(self.options.request_timeout, self.one(index)).await;
            tally.requests += 1;
            match outcome {
                Ok(Ok(received)) => {
                    tally.ok += 1;
                    tally.bytes_received += received;
                    tally
                        .latency_us
                        .saturating_record(sent.elapsed().as_micros() as u64);
                }
                Ok(Err(failure)) => {
                    tally.bytes_received += failure.received;
                    *tally.errors.entry(failure.kind).or_default() += 1;
                }
                Err(_) => *tally.errors.entry("timeout".to_owned()).or_default() += 1,
            }
            match self.options.requests {
                Some(_) => self.progress.inc(1),
                None => self.progress.set_position(start.elapsed().as_secs()),
            }
        }
        tally
    }

    /// Sends request `index`; returns the body bytes received.
    async fn one(&self, index: u64) -> Result<u64, Failure> {
        let options = &self.options;
        let text = request_text(
            options.seed,
            index,
            &StreamSizes::BENCH,
            options.sample_rate,
        );
        let expected_pcm = engine::pcm_len(text.chars().count() as u64, options.sample_rate);
        let body = SpeechRequest {
            text,
            voice: options.voice.clone(),
            sample_rate: options.sample_rate,
        };
        let body = serde_json::to_vec(&body).map_err(|e| Failure::new("encode", e))?;
        let request = hyper::Request::post(self.uri.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Failure::new("encode", e))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| Failure::new(if e.is_connect() { "connect" } else { "send" }, e))?;
        let status = response.status();
        let mut body = response.into_body();
        let mut head = Vec::with_capacity(wav::HEADER_LEN);
        let mut received = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Failure::new("body", e).received(received))?;
            if let Some(data) = frame.data_ref() {
                received += data.len() as u64;
                let wanted = wav::HEADER_LEN.saturating_sub(head.len()).min(data.len());
                head.extend_from_slice(&data[..wanted]);
            }
        }
        if !status.is_success() {
            return Err(Failure::kind(format!("http {}", status.as_u16())).received(received));
        }
        match wav::parse_header(&head) {
            Ok((_, data_len))
                if u64::from(data_len) == expected_pcm
                    && received == wav::HEADER_LEN as u64 + expected_pcm =>
            {
                Ok(received)
            }
            _ => Err(Failure::kind("bad wav".to_owned()).received(received)),
        }
    }
}

/// A failed request: its error kind and the body bytes received before it failed.
struct Failure {
    kind: String,
    received: u64,
}

impl Failure {
    fn kind(kind: String) -> Self {
        Self { kind, received: 0 }
    }

    fn new(kind: &str, error: impl fmt::Display) -> Self {
        tracing::debug!(%error, kind, "request failed");
        Self::kind(kind.to_owned())
    }

    fn received(mut self, received: u64) -> Self {
        self.received = received;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_bench_distribution() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut sizes: Vec<u64> = (0..20_000)
            .map(|_| StreamSizes::BENCH.sample(&mut rng))
            .collect();
        sizes.sort_unstable();
        let median = sizes[sizes.len() / 2] as f64;
        let p90 = sizes[sizes.len() * 9 / 10] as f64;
        let mean = sizes.iter().sum::<u64>() as f64 / sizes.len() as f64;
        assert!((median / 262_144.0 - 1.0).abs() < 0.05, "median {median}");
        assert!((p90 / f64::from(1 << 20) - 0.94).abs() < 0.1, "p90 {p90}");
        // The truncated log-normal's mean is about 418 KiB (the 1,000-size bench file: 431 KiB).
        assert!((mean / 418_000.0 - 1.0).abs() < 0.05, "mean {mean}");
        assert!(sizes[0] >= 8 << 10 && *sizes.last().unwrap() <= 4 << 20);
    }

    #[test]
    fn texts_are_seeded_and_sized() {
        let a = request_text(1, 5, &StreamSizes::BENCH, 16_000);
        assert_eq!(a, request_text(1, 5, &StreamSizes::BENCH, 16_000));
        assert_ne!(a, request_text(2, 5, &StreamSizes::BENCH, 16_000));
        assert_ne!(a, request_text(1, 6, &StreamSizes::BENCH, 16_000));
        for index in 0..200 {
            let text = request_text(3, index, &StreamSizes::BENCH, 16_000);
            let pcm = engine::pcm_len(text.chars().count() as u64, 16_000);
            assert!(
                ((8 << 10) - 2200..=(4 << 20) + 2200).contains(&pcm),
                "{pcm}"
            );
            assert!(text.ends_with('.') && !text.starts_with(' '));
        }
    }

    #[test]
    fn only_loopback_targets_unless_allowed() {
        for url in [
            "http://127.0.0.1:8080",
            "http://localhost:1/",
            "http://[::1]:80",
            "http://127.9.9.9",
        ] {
            let uri = speech_uri(url, false).unwrap();
            assert_eq!(uri.path(), "/v1/speech", "{url}");
        }
        for url in [
            "http://10.0.0.1:8080",
            "http://example.com",
            "http://0.0.0.0:8080",
        ] {
            assert!(
                matches!(speech_uri(url, false), Err(Error::RemoteTarget { .. })),
                "{url}"
            );
            assert!(speech_uri(url, true).is_ok(), "{url}");
        }
        for url in [
            "https://127.0.0.1",
            "127.0.0.1:8080",
            "http://127.0.0.1/v1/speech",
            "::",
        ] {
            assert!(
                matches!(speech_uri(url, false), Err(Error::InvalidUrl { .. })),
                "{url}"
            );
        }
    }
}
