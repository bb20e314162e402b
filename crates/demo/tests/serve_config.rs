//! The agent configuration `serve` builds from its flags and the optional `--config` file.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use heapscape::ExporterConfig;
use heapscape_demo::server::{POOL_NAME, ServeOptions, agent_config};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    serve: ServeOptions,
}

fn options(args: &[&str]) -> ServeOptions {
    Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
        .unwrap()
        .serve
}

#[test]
fn defaults_are_prometheus_on_9000_with_a_pcm_pool_and_the_pooling_label() {
    let config = agent_config(&options(&[])).unwrap();
    assert_eq!(config.labels["pooling"], "on");
    let ExporterConfig::Prometheus(prometheus) = &config.exporter else {
        panic!("default exporter is Prometheus");
    };
    assert_eq!(
        prometheus.listen,
        "127.0.0.1:9000".parse::<SocketAddr>().unwrap()
    );
    let pool = &config.pools[POOL_NAME];
    assert_eq!(
        (pool.initial_capacity, pool.max_buffer_size),
        (256 << 10, 4 << 20)
    );
}

#[test]
fn flags_override_the_file() {
    let path = std::env::temp_dir().join(format!("heapscape-demo-{}.yaml", std::process::id()));
    std::fs::write(
        &path,
        "service: tts-demo\nlabels: { pooling: \"on\", env: dev }\n\
         exporter:\n  prometheus: { listen: 127.0.0.1:9100 }\nheartbeat: { interval: 10s }\n\
         pools:\n  pcm: { initial_capacity: 64KiB, max_buffer_size: 1MiB }\n",
    )
    .unwrap();
    let file = path.to_str().unwrap();
    let config = agent_config(&options(&[
        "--config",
        file,
        "--pooling",
        "off",
        "--metrics-listen",
        "127.0.0.1:0",
        "--heartbeat-interval",
        "1s",
    ]));
    std::fs::remove_file(&path).unwrap();
    let config = config.unwrap();
    assert_eq!(config.labels["pooling"], "off");
    assert_eq!(config.labels["env"], "dev");
    assert_eq!(config.heartbeat.interval, Duration::from_secs(1));
    let ExporterConfig::Prometheus(prometheus) = &config.exporter else {
        panic!("the file's exporter is Prometheus");
    };
    assert_eq!(prometheus.listen.port(), 0);
    assert_eq!(
        config.pools[POOL_NAME].max_buffer_size,
        1 << 20,
        "the file's pool is kept"
    );
}

#[test]
fn metrics_listen_needs_prometheus_and_bad_files_are_errors() {
    let path =
        std::env::temp_dir().join(format!("heapscape-demo-statsd-{}.yaml", std::process::id()));
    std::fs::write(
        &path,
        "exporter:\n  statsd: { host: 127.0.0.1, port: 8125 }\n",
    )
    .unwrap();
    let file = path.to_str().unwrap().to_owned();
    let with_listen = agent_config(&options(&[
        "--config",
        &file,
        "--metrics-listen",
        "127.0.0.1:0",
    ]));
    let without = agent_config(&options(&["--config", &file]));
    std::fs::remove_file(&path).unwrap();
    let error = with_listen.unwrap_err().to_string();
    assert!(
        error.contains("--metrics-listen needs the Prometheus exporter"),
        "{error}"
    );
    assert!(without.is_ok());

    let missing = agent_config(&options(&["--config", "/nonexistent/heapscape.yaml"]));
    let error = missing.unwrap_err().to_string();
    assert!(error.contains("/nonexistent/heapscape.yaml"), "{error}");
}
