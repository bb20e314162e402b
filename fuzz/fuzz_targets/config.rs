//! Arbitrary bytes -> UTF-8 (lossy) -> `Config::from_yaml_str`: never panics; a config that
//! parses satisfies every invariant validation promises, and an error is located in the source.

#![no_main]

use heapscape::{Config, ExporterConfig};
use libfuzzer_sys::fuzz_target;

const SOURCE: &str = "fuzz.yaml";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Config::from_yaml_str(&text, SOURCE) {
        Ok(config) => check_config(&config),
        Err(error) => {
            assert_eq!(error.file(), SOURCE);
            assert_eq!(error.line().is_some(), error.column().is_some(), "{error}");
            if let Some(line) = error.line() {
                assert!(line >= 1, "{error}");
            }
            assert!(!error.message().is_empty(), "{error:?}");
            let shown = error.to_string();
            assert!(shown.starts_with(SOURCE), "{shown}");
        }
    }
});

fn check_config(config: &Config) {
    assert!(!config.heartbeat.interval.is_zero());
    if let Some(service) = &config.service {
        assert!(!service.trim().is_empty());
    }
    for name in config.labels.keys() {
        check_label_name(name);
    }
    match &config.exporter {
        ExporterConfig::Prometheus(prometheus) => {
            // Re-parsing the validated values gives the same values.
            let listen: std::net::SocketAddr = prometheus.listen.to_string().parse().unwrap();
            assert_eq!(listen, prometheus.listen);
            for network in &prometheus.allow {
                let again: ipnet_like::Net = network.to_string().parse().unwrap();
                assert_eq!(again.0, network.to_string());
            }
        }
        ExporterConfig::Statsd(statsd) => {
            assert!(!statsd.host.trim().is_empty());
            assert_ne!(statsd.port, 0);
            assert_ne!(statsd.queue_size, 0);
            assert!((64..=65_000).contains(&statsd.buffer_size));
            for (name, value) in &statsd.tags {
                check_label_name(name);
                check_tag_value(value);
            }
            for value in config.labels.values().chain(&config.service) {
                check_tag_value(value);
            }
        }
        _ => {}
    }
    for (name, pool) in &config.pools {
        assert!(!name.is_empty());
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')),
            "{name:?}"
        );
        pool.validate()
            .unwrap_or_else(|error| panic!("pool {name:?} passed validation: {error}"));
        assert!(pool.initial_capacity <= pool.max_buffer_size, "{pool:?}");
        assert!(pool.max_buffer_size <= pool.max_idle_bytes, "{pool:?}");
        assert!(
            pool.recommend_percentile > 0.0 && pool.recommend_percentile <= 1.0,
            "{pool:?}"
        );
        // A validated config is accepted by a live pool.
        let live = heapscape::Pool::builder(name.clone()).build().unwrap();
        live.reconfigure(pool.clone())
            .unwrap_or_else(|error| panic!("pool {name:?} {pool:?} refused: {error}"));
    }
}

fn check_label_name(name: &str) {
    let mut chars = name.chars();
    assert!(
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_'),
        "{name:?}"
    );
    assert!(
        chars.all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "{name:?}"
    );
    assert!(!name.starts_with("__"), "{name:?}");
    assert!(!matches!(name, "service" | "pool" | "reason"), "{name:?}");
}

fn check_tag_value(value: &str) {
    assert!(!value.is_empty());
    assert!(!value.contains([',', '|', '#', ';', '\n']), "{value:?}");
}

/// The allowlist entries are `ipnet::IpNet`s; their display form parses back to itself.
mod ipnet_like {
    pub struct Net(pub String);

    impl std::str::FromStr for Net {
        type Err = String;

        fn from_str(text: &str) -> Result<Self, String> {
            let (addr, prefix) = text.split_once('/').ok_or_else(|| text.to_owned())?;
            let addr: std::net::IpAddr = addr.parse().map_err(|_| text.to_owned())?;
            let prefix: u8 = prefix.parse().map_err(|_| text.to_owned())?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            if prefix > max {
                return Err(text.to_owned());
            }
            Ok(Net(format!("{addr}/{prefix}")))
        }
    }
}
