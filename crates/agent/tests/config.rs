//! Config files, good and bad: every error names the file, line, column and what to fix.

use std::time::Duration;

use heapscape::{Config, ExporterConfig};

/// Writes `text` to `<tempdir>/<name>` and loads it.
fn load(name: &str, text: &str) -> (tempfile::TempDir, Result<Config, heapscape::ConfigError>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write config");
    let result = Config::from_file(&path);
    (dir, result)
}

#[test]
fn full_example_file_parses() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/heapscape.yaml");
    let config = Config::from_file(path).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(config.service.as_deref(), Some("tts-demo"));
    assert_eq!(config.labels.get("pooling").map(String::as_str), Some("on"));
    let pcm = &config.pools["pcm"];
    assert_eq!(pcm.initial_capacity, 256 << 10);
    assert_eq!(pcm.max_buffer_size, 4 << 20);
    assert_eq!(pcm.max_idle_buffers, 64);
    assert_eq!(pcm.max_idle_bytes, 128 << 20);
    assert_eq!(pcm.idle_timeout, Duration::from_secs(60));
    assert_eq!(config.heartbeat.interval, Duration::from_secs(10));
    match &config.exporter {
        ExporterConfig::Prometheus(prometheus) => {
            assert_eq!(prometheus.listen, "127.0.0.1:9000".parse().unwrap());
            assert_eq!(prometheus.allow, vec!["127.0.0.1/32".parse().unwrap()]);
        }
        other => panic!("expected prometheus, got {other:?}"),
    }
}

#[test]
fn jemalloc_decay_settings_parse() {
    let (_dir, result) = load(
        "jemalloc.yaml",
        "exporter: { prometheus: {} }\n\
         jemalloc: { dirty_decay: 1s, muzzy_decay: 0s, background_thread: true }\n",
    );
    let jemalloc = result.unwrap().jemalloc;
    assert_eq!(jemalloc.dirty_decay, Some(Duration::from_secs(1)));
    assert_eq!(jemalloc.muzzy_decay, Some(Duration::ZERO));
    assert_eq!(jemalloc.background_thread, Some(true));
}

#[test]
fn defaults_fill_omitted_keys() {
    let (_dir, result) = load("min.yaml", "exporter: { prometheus: {} }\n");
    let config = result.unwrap();
    assert_eq!(config, Config::default());
    match config.exporter {
        ExporterConfig::Prometheus(prometheus) => {
            // Loopback, not the exporter crate's 0.0.0.0.
            assert_eq!(prometheus.listen, heapscape::DEFAULT_PROMETHEUS_LISTEN);
            assert!(prometheus.listen.ip().is_loopback());
        }
        other => panic!("expected prometheus, got {other:?}"),
    }

    let (_dir, result) = load("statsd.yaml", "exporter:\n  statsd:\n");
    match result.unwrap().exporter {
        ExporterConfig::Statsd(statsd) => {
            assert_eq!((statsd.host.as_str(), statsd.port), ("127.0.0.1", 8125));
            assert_eq!(statsd.queue_size, 5000);
        }
        other => panic!("expected statsd, got {other:?}"),
    }
}

#[test]
fn sizes_take_plain_integers_and_units() {
    let (_dir, result) = load(
        "sizes.yaml",
        "exporter: { statsd: { queue_size: 100, buffer_size: 1KiB } }\n\
         heartbeat: { interval: 500ms }\n\
         pools:\n  a: { initial_capacity: 4096, max_buffer_size: 1MB, max_idle_bytes: 1GiB, idle_timeout: 1m, over_max: drop, recommend_percentile: 0.9, recommendation_window: 15m }\n",
    );
    let config = result.unwrap_or_else(|error| panic!("{error}"));
    let a = &config.pools["a"];
    assert_eq!(
        (a.initial_capacity, a.max_buffer_size, a.max_idle_bytes),
        (4096, 1_000_000, 1 << 30)
    );
    assert_eq!(a.idle_timeout, Duration::from_secs(60));
    assert_eq!(a.recommendation_window, Duration::from_secs(15 * 60));
    assert_eq!(a.over_max, heapscape_pool::config::OverMaxPolicy::Drop);
    assert_eq!(config.heartbeat.interval, Duration::from_millis(500));
    match config.exporter {
        ExporterConfig::Statsd(statsd) => {
            assert_eq!((statsd.queue_size, statsd.buffer_size), (100, 1024))
        }
        other => panic!("expected statsd, got {other:?}"),
    }
}

/// A service that publishes through its own recorder needs no `exporter:`; the agent checks
/// for one only when it is to install it (tests/startup.rs).
#[test]
fn the_exporter_may_be_left_out() {
    for text in ["", "# only a comment\n", "service: x\npools: { pcm: {} }\n"] {
        let config = Config::from_yaml_str(text, "own_recorder.yaml")
            .unwrap_or_else(|error| panic!("{text:?}: {error}"));
        assert_eq!(config.exporter, ExporterConfig::Unset, "{text:?}");
    }
}

/// File text, line, column, key, and words of the message that say what is wrong and what to do.
type BadFile = (
    &'static str,
    usize,
    usize,
    Option<&'static str>,
    &'static [&'static str],
);

const BAD_FILES: &[BadFile] = &[
    // Syntax.
    (
        "exporter: { prometheus: {} }\npools:\n  a: [1\n",
        3,
        6,
        None,
        &["expected a mapping", "type the config reference"],
    ),
    (
        "exporter:\n\tprometheus: {}\n",
        2,
        2,
        None,
        &["tabs", "fix the YAML"],
    ),
    (
        "exporter: { prometheus: {} }\nexporter: { statsd: {} }\n",
        2,
        1,
        None,
        &["duplicate", "keep only one"],
    ),
    ("[1, 2]\n", 1, 1, None, &["expected a mapping"]),
    // Unknown keys, at every level.
    (
        "exporter: { prometheus: {} }\nservise: x\n",
        2,
        1,
        None,
        &[
            "unknown field `servise`",
            "remove the key or correct its spelling",
        ],
    ),
    (
        "exporter: { prometheus: {} }\npools:\n  pcm:\n    max_size: 4MiB\n",
        4,
        5,
        None,
        &[
            "unknown field `max_size`",
            "max_buffer_size",
            "correct its spelling",
        ],
    ),
    (
        "exporter: { prometheus: { port: 9000 } }\n",
        1,
        27,
        None,
        &["unknown field `port`", "listen"],
    ),
    (
        "exporter: { graphite: {} }\n",
        1,
        13,
        None,
        &["unknown field `graphite`", "prometheus", "statsd"],
    ),
    // Types and units.
    (
        "exporter: { prometheus: {} }\npools:\n  pcm: { max_buffer_size: 4Mb }\n",
        3,
        27,
        None,
        &["`4Mb` is not a size", "MiB"],
    ),
    (
        "exporter: { prometheus: {} }\npools:\n  pcm: { max_buffer_size: -1 }\n",
        3,
        27,
        None,
        &["negative", "write"],
    ),
    (
        "exporter: { prometheus: {} }\npools:\n  pcm: { max_buffer_size: 1.5 }\n",
        3,
        27,
        None,
        &["whole number", "write"],
    ),
    (
        "exporter: { prometheus: {} }\nheartbeat: { interval: 10 }\n",
        2,
        24,
        None,
        &["no unit", "10s"],
    ),
    (
        "exporter: { prometheus: {} }\nheartbeat: { interval: 10 sec }\n",
        2,
        24,
        None,
        &["not a duration", "500ms"],
    ),
    (
        "exporter: { prometheus: {} }\npools:\n  pcm: { over_max: keep }\n",
        3,
        20,
        None,
        &["unknown variant `keep`", "shrink", "drop"],
    ),
    (
        "exporter: { statsd: { port: http } }\n",
        1,
        29,
        None,
        &["whole number from 0 to 65535", "type the config reference"],
    ),
    (
        "exporter: { prometheus: {} }\npools:\n  pcm: { max_idle_buffers: lots }\n",
        3,
        28,
        None,
        &["expected a whole number", "type the config reference"],
    ),
    // Validation, with the key path.
    (
        "exporter: { prometheus: {} }\nheartbeat:\n  interval: 0s\n",
        3,
        13,
        Some("heartbeat.interval"),
        &["0ns is outside 100ms..1h", "e.g. 10s"],
    ),
    // Bounds: each of these, if accepted, would run the process out of memory, burn CPU or be
    // silently clamped.
    (
        "exporter: { prometheus: {} }\nheartbeat: { interval: 1ms }\n",
        2,
        24,
        Some("heartbeat.interval"),
        &["1ms is outside 100ms..1h", "e.g. 10s"],
    ),
    (
        "exporter: { prometheus: {} }\nheartbeat: { interval: 1000000000h }\n",
        2,
        24,
        Some("heartbeat.interval"),
        &["outside 100ms..1h"],
    ),
    (
        "exporter: { prometheus: {} }\npools:\n  pcm: { initial_capacity: 1000000GiB, \
         max_buffer_size: 1000000GiB, max_idle_bytes: 1000000GiB }\n",
        3,
        28,
        Some("pools.pcm.initial_capacity"),
        &[
            "1073741824000000 bytes",
            "above the 1 GiB limit",
            "write at most 1GiB",
        ],
    ),
    (
        "exporter: { prometheus: {} }\npools:\n  pcm: { max_buffer_size: 100GiB, \
         max_idle_bytes: 200GiB }\n",
        3,
        27,
        Some("pools.pcm.max_buffer_size"),
        &["above the 1 GiB limit"],
    ),
    (
        "exporter: { prometheus: {} }\npools:\n  pcm: { max_idle_bytes: 1000000GiB }\n",
        3,
        26,
        Some("pools.pcm.max_idle_bytes"),
        &[
            "more than half this machine's memory",
            "write a smaller cap",
        ],
    ),
    (
        "exporter: { prometheus: {} }\nlimits: { max_pools: 0 }\n",
        2,
        22,
        Some("limits.max_pools"),
        &["max_pools is 0", "from 1 to 1024"],
    ),
    (
        "exporter: { prometheus: {} }\nlimits: { max_pools: 5000 }\n",
        2,
        22,
        Some("limits.max_pools"),
        &["from 1 to 1024"],
    ),
    (
        "exporter: { prometheus: {} }\nlimits: { max_pools: 2 }\n\
         pools:\n  a: {}\n  b: {}\n  c: {}\n",
        6,
        6,
        Some("pools.c"),
        &[
            "3 pools are configured but limits.max_pools is 2",
            "remove pools",
        ],
    ),
    // The first pool over the cap in the file's order, not the map's alphabetical one.
    (
        "exporter: { prometheus: {} }\nlimits: { max_pools: 2 }\n\
         pools:\n  c: {}\n  b: {}\n  a: {}\n",
        6,
        6,
        Some("pools.a"),
        &["3 pools are configured but limits.max_pools is 2"],
    ),
    (
        "exporter:\n  prometheus: {}\n  statsd: {}\n",
        3,
        11,
        Some("exporter"),
        &["exactly one exporter"],
    ),
    (
        "exporter: {}\n",
        1,
        11,
        Some("exporter"),
        &["no exporter", "prometheus: {}"],
    ),
    (
        "exporter:\n  prometheus:\n    listen: localhost:9000\n",
        3,
        13,
        Some("exporter.prometheus.listen"),
        &["not an IP address with a port", "127.0.0.1:9000"],
    ),
    (
        "exporter:\n  prometheus:\n    listen: 127.0.0.1\n",
        3,
        13,
        Some("exporter.prometheus.listen"),
        &["with a port"],
    ),
    (
        "exporter:\n  prometheus:\n    allow: [127.0.0.1/8, 10.0.0.0/33]\n",
        3,
        26,
        Some("exporter.prometheus.allow[1]"),
        &["not a network", "CIDR"],
    ),
    (
        "exporter: { statsd: { port: 0 } }\n",
        1,
        29,
        Some("exporter.statsd.port"),
        &["8125"],
    ),
    (
        "exporter: { statsd: { queue_size: 0 } }\n",
        1,
        35,
        Some("exporter.statsd.queue_size"),
        &["positive size"],
    ),
    (
        "exporter: { statsd: { tags: { env: \"a,b\" } } }\n",
        1,
        29,
        Some("exporter.statsd.tags.env"),
        &["StatsD tag value", "without `,`"],
    ),
    (
        "exporter: { prometheus: {} }\nlabels: { 1abc: x }\n",
        2,
        9,
        Some("labels.1abc"),
        &["not a valid label name"],
    ),
    (
        "exporter: { prometheus: {} }\nlabels: { service: x }\n",
        2,
        9,
        Some("labels.service"),
        &["heapscape sets itself"],
    ),
    (
        "exporter: { prometheus: {} }\npools:\n  pcm:\n    initial_capacity: 8MiB\n    max_buffer_size: 4MiB\n",
        4,
        23,
        Some("pools.pcm.initial_capacity"),
        &["lower initial_capacity or raise max_buffer_size"],
    ),
    (
        "exporter: { prometheus: {} }\npools:\n  pcm:\n    max_buffer_size: 1GiB\n",
        4,
        22,
        Some("pools.pcm.max_buffer_size"),
        &["raise max_idle_bytes"],
    ),
    (
        "exporter: { prometheus: {} }\npools:\n  pcm:\n    max_idle_buffers: 0\n",
        4,
        23,
        Some("pools.pcm.max_idle_buffers"),
        &["zero", "positive"],
    ),
    (
        "exporter: { prometheus: {} }\npools:\n  pcm:\n    recommendation_window: 0s\n",
        4,
        28,
        Some("pools.pcm.recommendation_window"),
        &["zero"],
    ),
    (
        "exporter: { prometheus: {} }\npools:\n  pcm:\n    recommend_percentile: 95\n",
        4,
        27,
        Some("pools.pcm.recommend_percentile"),
        &["0.95"],
    ),
    (
        "exporter: { prometheus: {} }\njemalloc:\n  muzzy_decay: 25h\n",
        3,
        16,
        Some("jemalloc.muzzy_decay"),
        &["at most 24h"],
    ),
    // Auto-tuning.
    (
        "exporter: { prometheus: {} }\npools:\n  pcm:\n    auto_tune: { lowest_max_buffer_size: 8MiB, highest_max_buffer_size: 1MiB }\n",
        4,
        42,
        Some("pools.pcm.auto_tune.lowest_max_buffer_size"),
        &["must not exceed the upper bound"],
    ),
    (
        "exporter: { prometheus: {} }\npools:\n  pcm:\n    max_buffer_size: 4MiB\n    auto_tune: { enabled: true, highest_max_buffer_size: 1MiB }\n",
        4,
        22,
        Some("pools.pcm.max_buffer_size"),
        &["is where auto-tuning starts", "set it within"],
    ),
    (
        "exporter: { prometheus: {} }\npools:\n  pcm:\n    auto_tune: { hysteresis: 25 }\n",
        4,
        30,
        Some("pools.pcm.auto_tune.hysteresis"),
        &["[0.2, 1)", "0.25"],
    ),
    // Issue 25: a 1 ms window with no cooldown and no band moved the max about 7 times a
    // second. Each has a floor, checked whether auto-tuning is on or not.
    (
        "exporter: { prometheus: {} }\npools:\n  pcm:\n    recommendation_window: 1ms\n",
        4,
        28,
        Some("pools.pcm.recommendation_window"),
        &["1ms, below the minimum of 1s", "write at least 1s"],
    ),
    (
        "exporter: { prometheus: {} }\npools:\n  pcm:\n    auto_tune: { cooldown: 0s }\n",
        4,
        28,
        Some("pools.pcm.auto_tune.cooldown"),
        &["0ns, below the minimum of 1s", "at most once per cooldown"],
    ),
    (
        "exporter: { prometheus: {} }\npools:\n  pcm:\n    auto_tune: { hysteresis: 0 }\n",
        4,
        30,
        Some("pools.pcm.auto_tune.hysteresis"),
        &["[0.2, 1)", "neighbouring buckets"],
    ),
    (
        "exporter: { prometheus: {} }\npools:\n  pcm:\n    auto_tune: { cooldown: 48h }\n",
        4,
        28,
        Some("pools.pcm.auto_tune.cooldown"),
        &["at most 24h"],
    ),
    (
        "exporter: { prometheus: {} }\npools:\n  pcm:\n    auto_tune: { highest_max_buffer_size: 2GiB }\n",
        4,
        43,
        Some("pools.pcm.auto_tune.highest_max_buffer_size"),
        &["at most 1GiB"],
    ),
    (
        "exporter: { prometheus: {} }\npools:\n  \"p cm\": {}\n",
        3,
        11,
        Some("pools.p cm"),
        &["not a valid pool name"],
    ),
];

#[test]
fn auto_tuning_keys_parse() {
    let (_dir, config) = load(
        "auto.yaml",
        "exporter: { prometheus: {} }\n\
         pools:\n  \
           pcm:\n    \
             max_buffer_size: 1MiB\n    \
             auto_tune:\n      \
               enabled: true\n      \
               lowest_max_buffer_size: 64KiB\n      \
               highest_max_buffer_size: 16MiB\n      \
               cooldown: 5m\n      \
               hysteresis: 0.3\n  \
           json: {}\n",
    );
    let config = config.unwrap();
    let tune = &config.pools["pcm"].auto_tune;
    assert!(tune.enabled);
    assert_eq!(
        (tune.lowest_max_buffer_size, tune.highest_max_buffer_size),
        (64 << 10, 16 << 20)
    );
    assert_eq!(tune.cooldown, Duration::from_secs(300));
    assert_eq!(tune.hysteresis, 0.3);
    assert_eq!(
        config.pools["json"].auto_tune,
        heapscape_pool::config::AutoTuneConfig::default()
    );
    assert!(!config.pools["json"].auto_tune.enabled, "off by default");
}

#[test]
fn bad_files_say_where_and_what_to_fix() {
    let failures: Vec<String> = BAD_FILES
        .iter()
        .enumerate()
        .filter_map(|(index, &(text, line, column, key, words))| {
            check_bad_file(&format!("bad-{index}"), text, (line, column), key, words)
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Loads `text` as `<label>.yaml`; what is wrong with its error (or that it was accepted), if
/// anything: the file name, `at` (line, column), `key` and `words` must all be in it.
fn check_bad_file(
    label: &str,
    text: &str,
    at: (usize, usize),
    key: Option<&str>,
    words: &[&str],
) -> Option<String> {
    let name = format!("{label}.yaml");
    let (_dir, result) = load(&name, text);
    let shown_text = if text.len() > 300 {
        let start: String = text.chars().take(300).collect();
        format!("{start:?}... ({} bytes)", text.len())
    } else {
        format!("{text:?}")
    };
    let error = match result {
        Ok(_) => return Some(format!("{label} {shown_text}: accepted")),
        Err(error) => error,
    };
    let shown = error.to_string();
    let (line, column) = at;
    let mut problems = Vec::new();
    if !error.file().ends_with(&name) || !shown.contains(&name) {
        problems.push("file name");
    }
    if (error.line(), error.column()) != (Some(line), Some(column))
        || !shown.contains(&format!("{name}:{line}:{column}: "))
    {
        problems.push("line:column");
    }
    if error.key() != key || key.is_some_and(|key| !shown.contains(key)) {
        problems.push("key");
    }
    if words.iter().any(|word| !shown.contains(word)) {
        problems.push("message words");
    }
    (!problems.is_empty()).then(|| {
        format!(
            "{label} {shown_text}: wrong {problems:?}: {shown} (line {:?} column {:?} key {:?})",
            error.line(),
            error.column(),
            error.key()
        )
    })
}

/// As [`BadFile`], for text made at run time: text, (line, column), key, words.
type GeneratedBadFile = (String, (usize, usize), String, Vec<&'static str>);

/// Issue 25: 64 pools with 64 KiB names made a 356 MB page, 8 labels of 131,000 characters a
/// 131 MB one. Names, values and the labels on every series together are capped; an error
/// says the cap, where and which key, and shows only the start of a name over the cap.
#[test]
fn names_and_label_values_are_capped() {
    let prometheus = "exporter: { prometheus: {} }\n";
    let name_129 = format!("p{}", "x".repeat(128));
    let shown = format!("{}…", &name_129[..32]);
    let value_257 = "v".repeat(257);
    let value_250 = "v".repeat(250);
    let cases: Vec<GeneratedBadFile> = vec![
        (
            format!("{prometheus}pools:\n  {name_129}: {{}}\n"),
            (3, 134),
            format!("pools.{shown}"),
            vec!["pool name of 129 bytes", "limit of 128 bytes"],
        ),
        (
            format!("{prometheus}labels: {{ {name_129}: x }}\n"),
            (2, 9),
            format!("labels.{shown}"),
            vec!["label name of 129 bytes", "limit of 128 bytes"],
        ),
        (
            format!("{prometheus}labels: {{ env: {value_257} }}\n"),
            (2, 9),
            "labels.env".to_owned(),
            vec!["257 bytes", "limit of 256 bytes"],
        ),
        (
            format!("service: {value_257}\n{prometheus}"),
            (1, 10),
            "service".to_owned(),
            vec!["257 bytes", "limit of 256 bytes"],
        ),
        (
            format!("exporter: {{ statsd: {{ tags: {{ env: {value_257} }} }} }}\n"),
            (1, 29),
            "exporter.statsd.tags.env".to_owned(),
            vec!["257 bytes", "limit of 256 bytes"],
        ),
        // Each within its cap, too many together: four fit in 1 KiB, the fifth does not.
        (
            format!(
                "{prometheus}labels: {{ a: {value_250}, b: {value_250}, c: {value_250}, \
                 d: {value_250}, e: {value_250} }}\n"
            ),
            (2, 9),
            "labels.e".to_owned(),
            vec!["add up to 1255 bytes", "limit of 1024 bytes"],
        ),
        // StatsD tags count too, after `service` and `labels`.
        (
            format!(
                "service: {value_250}\nlabels: {{ a: {value_250}, b: {value_250} }}\n\
                 exporter: {{ statsd: {{ tags: {{ c: {value_250}, d: {value_250} }} }} }}\n"
            ),
            (3, 29),
            "exporter.statsd.tags.d".to_owned(),
            vec!["add up to 1261 bytes", "limit of 1024 bytes"],
        ),
    ];
    let failures: Vec<String> = cases
        .iter()
        .enumerate()
        .filter_map(|(index, (text, at, key, words))| {
            check_bad_file(&format!("long-{index}"), text, *at, Some(key), words)
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // At the caps, accepted.
    let name_128 = &name_129[..128];
    let value_256 = &value_257[..256];
    let (_dir, result) = load(
        "at-the-caps.yaml",
        &format!(
            "service: s\nlabels: {{ env: {value_256}, zone: {value_250}, a: {value_250} }}\n\
             {prometheus}pools:\n  {name_128}: {{}}\n"
        ),
    );
    let config = result.unwrap_or_else(|error| panic!("{error}"));
    assert!(config.pools.contains_key(name_128));
    assert_eq!(config.labels["env"].len(), 256);
}

/// Issue 25: a path that pointed at `/dev/zero` (a wrong symlink) was read until memory ran
/// out, and a FIFO without a writer blocked the reader forever. Only regular files are read,
/// opened without waiting, up to 1 MiB; the error names the path and says why.
#[test]
fn only_regular_files_within_the_size_limit_are_read() {
    let dir = tempfile::tempdir().unwrap();

    // A symlink to a character device: `/dev/null` here, read as an empty file before;
    // `/dev/zero` takes the same path (the reader's unit test opens it).
    let device = dir.path().join("device.yaml");
    std::os::unix::fs::symlink("/dev/null", &device).unwrap();
    let shown = Config::from_file(&device).unwrap_err().to_string();
    assert!(shown.starts_with(&device.display().to_string()), "{shown}");
    assert!(
        shown.contains("a character device, not a regular file"),
        "{shown}"
    );

    // A FIFO with no writer: refused at once (before, `from_file` never returned). Read on a
    // thread so that a regression fails after the wait instead of hanging the test.
    let fifo = dir.path().join("fifo.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo: {made}");
    let (sender, receiver) = std::sync::mpsc::channel();
    let path = fifo.clone();
    std::thread::spawn(move || {
        let _ = sender.send(Config::from_file(&path).map_err(|error| error.to_string()));
    });
    let shown = receiver
        .recv_timeout(heapscape_testkit::WAIT)
        .expect("reading a FIFO returns")
        .unwrap_err();
    assert!(shown.starts_with(&fifo.display().to_string()), "{shown}");
    assert!(
        shown.contains("a FIFO (named pipe), not a regular file"),
        "{shown}"
    );

    // A valid config with more than 1 MiB of comments: over the limit.
    let large = dir.path().join("large.yaml");
    let comment = format!("# {}\n", "c".repeat(1000));
    std::fs::write(
        &large,
        format!("exporter: {{ prometheus: {{}} }}\n{}", comment.repeat(1100)),
    )
    .unwrap();
    let error = Config::from_file(&large).unwrap_err();
    let shown = error.to_string();
    assert!(shown.starts_with(&large.display().to_string()), "{shown}");
    assert!(
        shown.contains("over the limit of 1048576 bytes (1 MiB)"),
        "{shown}"
    );
    assert_eq!((error.line(), error.column()), (None, None));
}

/// The size limit leaves room: the largest config the other limits allow (1024 pools, 128-byte
/// names, every key written) is about half of it.
#[test]
fn the_largest_config_fits_the_file_limit() {
    let mut text = "service: tts\nlabels: { env: production, region: eu-west-1 }\n\
                    exporter: { prometheus: { listen: 127.0.0.1:9000, allow: [127.0.0.1] } }\n\
                    heartbeat: { interval: 10s }\nlimits: { max_pools: 1024 }\npools:\n"
        .to_owned();
    for index in 0..1024 {
        text.push_str(&format!(
            "  p{index:04}{}:\n    initial_capacity: 256KiB\n    max_buffer_size: 4MiB\n    \
             max_idle_buffers: 64\n    max_idle_bytes: 128MiB\n    idle_timeout: 60s\n    \
             over_max: shrink\n    recommend_percentile: 0.95\n    \
             recommendation_window: 1h\n    recommendation_min_returns: 400\n    \
             auto_tune:\n      enabled: true\n      lowest_max_buffer_size: 64KiB\n      \
             highest_max_buffer_size: 16MiB\n      cooldown: 10m\n      hysteresis: 0.25\n",
            "x".repeat(123)
        ));
    }
    assert!(text.len() < 600_000, "{} bytes", text.len());
    let (_dir, result) = load("largest.yaml", &text);
    let config = result.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(config.pools.len(), 1024);
}

#[test]
fn unreadable_files_name_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let error = Config::from_file(&missing).unwrap_err();
    let shown = error.to_string();
    assert!(shown.starts_with(&missing.display().to_string()), "{shown}");
    assert!(shown.contains("cannot read the config file"), "{shown}");
    assert!(shown.contains("check the path"), "{shown}");
    assert_eq!((error.line(), error.column()), (None, None));

    let binary = dir.path().join("binary.yaml");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x41]).unwrap();
    let shown = Config::from_file(&binary).unwrap_err().to_string();
    assert!(
        shown.contains("binary.yaml") && shown.contains("UTF-8"),
        "{shown}"
    );

    // A directory is not a file either.
    let shown = Config::from_file(dir.path()).unwrap_err().to_string();
    assert!(shown.contains("cannot read the config file"), "{shown}");
}
