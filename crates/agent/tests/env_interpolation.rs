//! `${NAME}` and `${NAME:-default}` in config string values, from the real process
//! environment. The environment is process-wide, so every test uses variables of its own.

use std::net::SocketAddr;

use heapscape::{Config, ExporterConfig};
use heapscape_testkit::ConfigFile;

fn set(name: &str, value: &str) {
    // SAFETY: std serialises its own reads and writes of the environment, and nothing in this
    // test binary reads it around std (libc `getenv` from C code) while tests run; each test
    // uses variables no other test touches.
    unsafe { std::env::set_var(name, value) };
}

fn unset(name: &str) {
    // SAFETY: as in `set`.
    unsafe { std::env::remove_var(name) };
}

fn load(text: &str) -> Result<Config, heapscape::ConfigError> {
    let file = ConfigFile::new("heapscape.yaml", text);
    Config::from_file(file.path())
}

#[test]
fn set_variables_fill_every_string_value() {
    set("HS_IT_SET_SERVICE", "tts");
    set("HS_IT_SET_POD", "tts-7f9c");
    set("HS_IT_SET_HOST", "statsd.monitoring");
    let config = load(
        "service: ${HS_IT_SET_SERVICE}\n\
         labels:\n  pod: \"${HS_IT_SET_POD}\"\n  zone: eu-${HS_IT_SET_SERVICE}\n\
         exporter:\n  statsd:\n    host: ${HS_IT_SET_HOST}\n    tags: { replica: '${HS_IT_SET_POD}' }\n",
    )
    .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(config.service.as_deref(), Some("tts"));
    assert_eq!(config.labels["pod"], "tts-7f9c");
    assert_eq!(config.labels["zone"], "eu-tts");
    match config.exporter {
        ExporterConfig::Statsd(statsd) => {
            assert_eq!(statsd.host, "statsd.monitoring");
            assert_eq!(statsd.tags["replica"], "tts-7f9c");
        }
        other => panic!("expected statsd, got {other:?}"),
    }
}

#[test]
fn unset_or_empty_variables_take_their_default() {
    unset("HS_IT_DEFAULT_UNSET");
    set("HS_IT_DEFAULT_EMPTY", "");
    let config = load(
        "service: ${HS_IT_DEFAULT_UNSET:-tts-demo}\n\
         labels: { pod: \"${HS_IT_DEFAULT_EMPTY:-unknown}\" }\n\
         exporter:\n  prometheus:\n    listen: ${HS_IT_DEFAULT_UNSET:-127.0.0.1:9464}\n    \
         allow: [\"${HS_IT_DEFAULT_UNSET:-10.0.0.0/8}\"]\n",
    )
    .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(config.service.as_deref(), Some("tts-demo"));
    assert_eq!(config.labels["pod"], "unknown");
    match config.exporter {
        ExporterConfig::Prometheus(prometheus) => {
            assert_eq!(
                prometheus.listen,
                "127.0.0.1:9464".parse::<SocketAddr>().unwrap()
            );
            assert_eq!(prometheus.allow, vec!["10.0.0.0/8".parse().unwrap()]);
        }
        other => panic!("expected prometheus, got {other:?}"),
    }
}

#[test]
fn an_escaped_reference_is_literal() {
    unset("HS_IT_ESCAPED");
    let config = load("service: \"cost-$${HS_IT_ESCAPED}\"\nexporter: { prometheus: {} }\n")
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(config.service.as_deref(), Some("cost-${HS_IT_ESCAPED}"));
}

#[test]
fn an_unset_variable_without_default_names_file_line_column_and_variable() {
    unset("HS_IT_MISSING_POD");
    set("HS_IT_MISSING_SET", "x");
    for (text, line, column, key) in [
        (
            "exporter: { prometheus: {} }\nservice: \"tts-${HS_IT_MISSING_POD}\"\n",
            2,
            15,
            "service",
        ),
        (
            "exporter: { prometheus: {} }\nlabels:\n  zone: eu\n  pod: a-${HS_IT_MISSING_SET}-${HS_IT_MISSING_POD}\n",
            4,
            31,
            "labels.pod",
        ),
        (
            "exporter:\n  statsd:\n    tags: { replica: \"${HS_IT_MISSING_POD}\" }\n",
            3,
            23,
            "exporter.statsd.tags.replica",
        ),
    ] {
        let file = ConfigFile::new("replicas.yaml", text);
        let error = Config::from_file(file.path()).expect_err(text);
        let shown = error.to_string();
        assert_eq!(
            (error.line(), error.column(), error.key()),
            (Some(line), Some(column), Some(key)),
            "{shown}"
        );
        assert!(
            shown.starts_with(&format!(
                "{}:{line}:{column}: {key}: ",
                file.path().display()
            )),
            "{shown}"
        );
        for words in [
            "`HS_IT_MISSING_POD` is not set",
            "set it in the service's environment",
            "${HS_IT_MISSING_POD:-default}",
        ] {
            assert!(shown.contains(words), "{words:?} missing from: {shown}");
        }
    }
}

/// Issue 25: a variable could fill a label with any number of bytes. A value is refused at
/// the reference that takes it over 256 bytes, before it grows further.
#[test]
fn a_variable_cannot_make_a_value_longer_than_the_cap() {
    set("HS_IT_LONG_POD", &"p".repeat(300));
    set("HS_IT_LONG_HALF", &"h".repeat(200));
    for (text, line, column, key, words) in [
        (
            "exporter: { prometheus: {} }\nlabels:\n  zone: eu\n  pod: \"${HS_IT_LONG_POD}\"\n",
            4,
            9,
            "labels.pod",
            "with `HS_IT_LONG_POD` filled in (300 bytes) the value would be 300 bytes",
        ),
        // Each reference within the cap, together over it (the error points at the
        // variable's first reference, as for an unset one).
        (
            "exporter: { prometheus: {} }\nservice: ${HS_IT_LONG_HALF}-${HS_IT_LONG_HALF}\n",
            2,
            10,
            "service",
            "the value would be 401 bytes",
        ),
        (
            "exporter:\n  statsd:\n    host: ${HS_IT_LONG_POD}\n",
            3,
            11,
            "exporter.statsd.host",
            "over the limit of 256 bytes",
        ),
    ] {
        let file = ConfigFile::new("long.yaml", text);
        let error = Config::from_file(file.path()).expect_err(text);
        let shown = error.to_string();
        assert_eq!(
            (error.line(), error.column(), error.key()),
            (Some(line), Some(column), Some(key)),
            "{shown}"
        );
        assert!(shown.contains(words), "{words:?} missing from: {shown}");
        assert!(shown.contains("over the limit of 256 bytes"), "{shown}");
    }
}

#[test]
fn a_malformed_reference_is_an_error_that_shows_the_escape() {
    let error = load("exporter: { prometheus: {} }\nservice: tts-${HS IT}\n").unwrap_err();
    assert_eq!(
        (error.line(), error.column()),
        (Some(2), Some(14)),
        "{error}"
    );
    assert!(error.message().contains("`${HS IT}`"), "{error}");
    assert!(error.message().contains("$${"), "{error}");
}

#[test]
fn every_read_of_the_file_interpolates_again() {
    let file = ConfigFile::new(
        "heapscape.yaml",
        "service: ${HS_IT_REREAD}\nexporter: { prometheus: {} }\n",
    );
    set("HS_IT_REREAD", "first");
    let first = Config::from_file(file.path()).unwrap_or_else(|error| panic!("{error}"));
    set("HS_IT_REREAD", "second");
    let second = Config::from_file(file.path()).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(first.service.as_deref(), Some("first"));
    assert_eq!(second.service.as_deref(), Some("second"));
}

// On the Prometheus listener, which needs the `tokio` feature.
#[cfg(feature = "tokio")]
#[test]
fn a_reload_resolves_the_variables_again() {
    use heapscape::Agent;
    use heapscape_testkit::{WAIT, wait_for, write_atomically};

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _entered = runtime.enter();
    // A comment that changes with each write: the watcher reloads on a change of the content.
    let text = |edit: u32| {
        format!(
            "# edit {edit}\nservice: it-env\nlabels: {{ pod: \"${{HS_IT_RELOAD_POD}}\" }}\n\
             exporter: {{ prometheus: {{ listen: 127.0.0.1:0 }} }}\n"
        )
    };
    set("HS_IT_RELOAD_POD", "pod-a");
    let file = ConfigFile::new("heapscape.yaml", &text(0));
    let path = file.path().to_owned();
    let agent = Agent::builder()
        .config_file(&path)
        .start()
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(agent.config().labels["pod"], "pod-a");

    // Unset now: the reload reads the variable again and is rejected.
    unset("HS_IT_RELOAD_POD");
    write_atomically(&path, &text(1));
    wait_for(WAIT, "the reload without the variable to fail", || {
        (agent.stats().config_reload_failures == 1).then_some(())
    });

    // Set again: the next reload resolves it and succeeds.
    set("HS_IT_RELOAD_POD", "pod-b");
    let reloads = agent.stats().config_reloads;
    write_atomically(&path, &text(2));
    wait_for(WAIT, "the reload with the variable back to start", || {
        (agent.stats().config_reloads > reloads).then_some(())
    });
    // The watcher counts a check once the reload it started has finished.
    let checks = agent.stats().config_checks;
    wait_for(WAIT, "the reload with the variable back to finish", || {
        (agent.stats().config_checks > checks).then_some(())
    });
    assert_eq!(agent.stats().config_reload_failures, 1);
    agent.shutdown();
}
