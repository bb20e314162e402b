//! Startup errors say what to do; a StatsD daemon that is not there is not an error.

use heapscape::{Agent, Config, Error};

fn prometheus_on(listen: &str) -> Config {
    Config::from_yaml_str(
        &format!("exporter: {{ prometheus: {{ listen: \"{listen}\" }} }}\n"),
        "startup.yaml",
    )
    .expect("config")
}

#[cfg(feature = "tokio")]
#[test]
fn port_in_use_names_the_port_and_the_fix() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _entered = runtime.enter();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().unwrap();
    let error = Agent::builder()
        .config(prometheus_on(&addr.to_string()))
        .start()
        .unwrap_err();
    assert!(matches!(error, Error::PortInUse { .. }), "{error:?}");
    let shown = error.to_string();
    assert!(
        shown.contains(&format!("port {} is already in use", addr.port())),
        "{shown}"
    );
    assert!(shown.contains("exporter.prometheus.listen"), "{shown}");
}

#[cfg(feature = "tokio")]
#[test]
fn an_address_of_another_machine_cannot_be_bound() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _entered = runtime.enter();
    // TEST-NET-1 (RFC 5737) is never assigned to this machine; binding fails at once.
    let error = Agent::builder()
        .config(prometheus_on("192.0.2.1:9000"))
        .start()
        .unwrap_err();
    assert!(matches!(error, Error::Listen { .. }), "{error:?}");
    assert!(
        error.to_string().contains("an address of this machine"),
        "{error}"
    );
    // The operating system's words once, also when a binary prints the whole chain.
    let chain = chain(&error);
    assert_eq!(chain.matches("(os error").count(), 1, "{chain}");
}

/// The error and its sources, as `anyhow` prints them with `{:#}`.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[test]
fn a_config_error_is_printed_once_in_the_chain() {
    let error = Error::from(
        Config::from_yaml_str("exporter: {}\n", "startup.yaml").expect_err("no exporter"),
    );
    let chain = chain(&error);
    assert_eq!(chain.matches("startup.yaml").count(), 1, "{chain}");
    assert_eq!(chain, error.to_string());
}

#[test]
fn a_pool_error_is_printed_once_in_the_chain() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _entered = runtime.enter();
    let mut config = prometheus_on("127.0.0.1:0");
    let mut pool = heapscape::PoolConfig::default();
    pool.max_idle_buffers = 0;
    config.pools.insert("pcm".to_owned(), pool);
    let error = Agent::builder().config(config).start().unwrap_err();
    assert!(matches!(error, Error::Pool { .. }), "{error:?}");
    let chain = chain(&error);
    assert_eq!(chain.matches("is zero").count(), 1, "{chain}");
}

#[test]
fn a_config_out_of_bounds_from_code_is_refused_with_its_key() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _entered = runtime.enter();
    let mut config = prometheus_on("127.0.0.1:0");
    config.heartbeat.interval = std::time::Duration::from_millis(1);
    let error = Agent::builder().config(config).start().unwrap_err();
    assert!(matches!(error, Error::Limit { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("heartbeat.interval: an interval of 1ms is outside 100ms..1h"),
        "{error}"
    );
}

/// The exporter may be left out of the file only for an agent that publishes through the
/// service's recorder: one that is to install it says, at the file's start, what to add.
#[test]
fn an_agent_installing_the_exporter_needs_one_in_the_config() {
    let file = heapscape_testkit::ConfigFile::new("no_exporter.yaml", "pools: { pcm: {} }\n");
    let error = Agent::builder()
        .config_file(file.path())
        .start()
        .unwrap_err();
    assert!(matches!(error, Error::Config(_)), "{error:?}");
    let expected = format!(
        "{}:1:1: exporter: no exporter is configured: add `exporter: {{ prometheus: {{}} }}`",
        file.path().display()
    );
    let shown = error.to_string();
    assert!(shown.starts_with(&expected), "{shown}");
    assert!(shown.contains("`.service_recorder()`"), "{shown}");

    let config = Config::from_yaml_str("pools: { pcm: {} }\n", "in code").expect("config");
    let error = Agent::builder().config(config).start().unwrap_err();
    assert!(matches!(error, Error::NoExporter), "{error:?}");
    assert!(
        error.to_string().contains("`.service_recorder()`"),
        "{error}"
    );
}

#[test]
fn unreadable_file_is_a_config_error() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _entered = runtime.enter();
    let error = Agent::builder()
        .config_file("/nonexistent/heapscape.yaml")
        .start()
        .unwrap_err();
    assert!(matches!(error, Error::Config(_)), "{error:?}");
    let shown = error.to_string();
    assert!(
        shown.starts_with("/nonexistent/heapscape.yaml: cannot read"),
        "{shown}"
    );
}

/// The only test in this binary that installs the global recorder. StatsD needs no tokio
/// runtime and no `tokio` feature: its flush runs on a thread, which shutdown ends.
#[test]
fn statsd_without_a_daemon_starts_and_runs() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _entered = runtime.enter();
    let port = heapscape_testkit::free_udp_port(); // nothing listens there
    let config = Config::from_yaml_str(
        &format!(
            "exporter: {{ statsd: {{ port: {port} }} }}\nheartbeat: {{ interval: 200ms }}\n\
             pools: {{ pcm: {{}} }}\n"
        ),
        "statsd.yaml",
    )
    .expect("config");
    let agent = Agent::builder()
        .config(config)
        .start()
        .expect("a missing StatsD daemon is not an error");
    let pcm = agent.pool("pcm").expect("pool");
    heapscape_testkit::wait_for(heapscape_testkit::WAIT, "heartbeat ticks", || {
        pcm.get().extend_from_slice(b"data");
        (agent.stats().heartbeat_ticks >= 3).then_some(())
    });
    assert!(agent.metrics_addr().is_none());

    // Once installed, the recorder is taken for good (without the `tokio` feature a
    // Prometheus exporter is refused before that: see below).
    #[cfg(feature = "tokio")]
    {
        let error = Agent::builder()
            .config(prometheus_on("127.0.0.1:0"))
            .start()
            .unwrap_err();
        assert!(
            matches!(error, Error::RecorderAlreadyInstalled),
            "{error:?}"
        );
    }
    // The kernel keeps 15 bytes of a thread's name: `heapscape-statsd` reads `heapscape-stats`.
    let flush_thread = || {
        std::fs::read_dir("/proc/self/task")
            .expect("/proc/self/task")
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .any(|name| name.trim() == "heapscape-stats")
    };
    assert!(flush_thread(), "StatsD is flushed from a thread of its own");
    agent.shutdown();
    assert!(!flush_thread(), "shutdown joins the flush thread");
}

/// Built without tokio, the agent refuses the Prometheus exporter before it builds anything,
/// naming the feature and what runs without it.
#[cfg(not(feature = "tokio"))]
#[test]
fn the_prometheus_exporter_needs_the_tokio_feature() {
    let error = Agent::builder()
        .config(prometheus_on("127.0.0.1:0"))
        .start()
        .unwrap_err();
    assert!(matches!(error, Error::TokioFeatureOff { .. }), "{error:?}");
    let shown = error.to_string();
    for expected in [
        "exporter.prometheus",
        "heapscape's `tokio` feature",
        "features = [\"tokio\"]",
        "statsd",
        "`.service_recorder()`",
    ] {
        assert!(shown.contains(expected), "{expected} in {shown}");
    }
}
