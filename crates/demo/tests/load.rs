//! The load generator against the in-process service: counts, bytes, errors by kind.

mod common;

use common::{spawn_server, test_pool};
use heapscape_demo::Error;
use heapscape_demo::engine::pcm_len;
use heapscape_demo::load::{self, LoadOptions, StreamSizes, request_text};
use heapscape_demo::server::{Buffers, ServiceConfig};

fn options(addr: std::net::SocketAddr, requests: u64) -> LoadOptions {
    LoadOptions {
        url: format!("http://{addr}"),
        concurrency: 3,
        requests: Some(requests),
        seed: 42,
        no_progress: true,
        ..LoadOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_run_checks_every_response() {
    let pool = test_pool();
    let addr = spawn_server(Buffers::Pooled(pool.clone()), ServiceConfig::default()).await;
    let report = load::run(&options(addr, 12)).await.unwrap();
    assert_eq!(
        (report.requests, report.ok, report.error_count()),
        (12, 12, 0),
        "{report}"
    );
    let expected: u64 = (0..12)
        .map(|i| {
            let text = request_text(42, i, &StreamSizes::BENCH, 16_000);
            44 + pcm_len(text.chars().count() as u64, 16_000)
        })
        .sum();
    assert_eq!(report.bytes_received, expected);
    assert_eq!(report.latency_us.len(), 12);
    assert!(report.latency(0.5) <= report.max_latency());
    assert_eq!(pool.stats().gets(), 12);
    let printed = report.to_string();
    assert!(
        printed.contains("12 ok, 0 failed") && printed.contains("errors:     none"),
        "{printed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_are_counted_by_kind() {
    let config = ServiceConfig {
        max_text_chars: 10,
        ..ServiceConfig::default()
    };
    let addr = spawn_server(Buffers::Fresh, config).await;
    let report = load::run(&options(addr, 5)).await.unwrap();
    assert_eq!(report.ok, 0);
    assert_eq!(report.errors.get("http 413"), Some(&5), "{report}");
    assert!(report.to_string().contains("5 x http 413"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_a_connect_error_and_remote_targets_are_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let report = load::run(&options(addr, 2)).await.unwrap();
    assert_eq!(report.errors.get("connect"), Some(&2), "{report}");

    let remote = LoadOptions {
        url: "http://192.0.2.1:8080".to_owned(),
        ..options(addr, 1)
    };
    assert!(matches!(
        load::run(&remote).await,
        Err(Error::RemoteTarget { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_starts_requests_on_its_schedule_whatever_the_concurrency() {
    let addr = spawn_server(Buffers::Fresh, ServiceConfig::default()).await;
    // Eight workers for one second: unpaced, each starts at least one request at once.
    let unpaced = LoadOptions {
        concurrency: 8,
        requests: None,
        duration: Some(std::time::Duration::from_secs(1)),
        ..options(addr, 0)
    };
    let report = load::run(&unpaced).await.unwrap();
    assert!(report.requests >= 8, "{report}");
    // Two a second: requests are due at 0 s and 0.5 s; the next, at 1 s, is past the end.
    let paced = LoadOptions {
        rate: Some(2.0),
        ..unpaced
    };
    let report = load::run(&paced).await.unwrap();
    assert_eq!((report.requests, report.ok), (2, 2), "{report}");
}

#[test]
fn a_rate_that_is_not_a_positive_number_is_refused_with_a_reason() {
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        load: LoadOptions,
    }
    for bad in ["0", "-1", "inf", "fast"] {
        let error = Cli::try_parse_from(["load".to_owned(), format!("--rate={bad}")]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("requests a second as a number above 0"),
            "{bad}: {error}"
        );
    }
    let cli = Cli::try_parse_from(["load", "--rate", "0.5"]).unwrap();
    assert_eq!(cli.load.rate, Some(0.5));
}
