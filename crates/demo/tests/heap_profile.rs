//! Heap profiles of the demo (feature `profiling`): `/debug/pprof/heap` of a `serve` child,
//! decoded as pprof, shows where the service's heap is; the route is refused outside the
//! allowlist and while profiling is off; concurrent requests are all answered.
//!
//! Run with `cargo test -p heapscape-demo --features profiling --test heap_profile`.

#![cfg(feature = "profiling")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use common::{ServeProcess, send, speak};
use heapscape_testkit::ConfigFile;
use hyper::StatusCode;
use prost::Message;

/// The messages of pprof's `profile.proto` (google/pprof) that the checks read; prost skips
/// the fields left out.
mod pprof {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Profile {
        #[prost(message, repeated, tag = "1")]
        pub sample_type: Vec<ValueType>,
        #[prost(message, repeated, tag = "2")]
        pub sample: Vec<Sample>,
        #[prost(message, repeated, tag = "4")]
        pub location: Vec<Location>,
        #[prost(message, repeated, tag = "5")]
        pub function: Vec<Function>,
        #[prost(string, repeated, tag = "6")]
        pub string_table: Vec<String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueType {
        #[prost(int64, tag = "1")]
        pub r#type: i64,
        #[prost(int64, tag = "2")]
        pub unit: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(uint64, repeated, tag = "1")]
        pub location_id: Vec<u64>,
        #[prost(int64, repeated, tag = "2")]
        pub value: Vec<i64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Location {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(message, repeated, tag = "4")]
        pub line: Vec<Line>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Line {
        #[prost(uint64, tag = "1")]
        pub function_id: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Function {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(int64, tag = "2")]
        pub name: i64,
    }
}

const HEAP: &str = "/debug/pprof/heap";

fn serve(profiling: &str, allow: &str) -> (ServeProcess, ConfigFile) {
    let config = ConfigFile::new(
        "heapscape.yaml",
        &format!(
            "exporter: {{ prometheus: {{ listen: 127.0.0.1:0{allow} }} }}\n\
             heartbeat: {{ interval: 1s }}\n\
             profiling: {profiling}\n"
        ),
    );
    let path = config.path().to_str().expect("a UTF-8 path").to_owned();
    (ServeProcess::start(&["--config", &path]), config)
}

/// Speech long enough that every clip's buffer is several sample periods (64 KiB) big.
async fn build_up_heap(service: &ServeProcess) {
    let text = "the pool keeps the buffers that synthesis filled ".repeat(40);
    for round in 0..6 {
        let requests = (0..4).map(|_| speak(service.http, serde_json::json!({ "text": text })));
        for reply in futures_util::future::join_all(requests).await {
            assert_eq!(reply.status, StatusCode::OK, "round {round}");
        }
    }
}

fn decode(gzipped: &[u8]) -> pprof::Profile {
    let mut encoded = Vec::new();
    flate2::read::GzDecoder::new(gzipped)
        .read_to_end(&mut encoded)
        .expect("the profile is gzipped");
    pprof::Profile::decode(encoded.as_slice()).expect("the profile is a pprof Profile")
}

/// In-use bytes under each function (every function on a sample's stack counts the sample
/// once), largest first.
fn top_functions(profile: &pprof::Profile) -> Vec<(String, i64)> {
    let names: BTreeMap<u64, &str> = profile
        .function
        .iter()
        .map(|function| {
            (
                function.id,
                profile.string_table[function.name as usize].as_str(),
            )
        })
        .collect();
    let locations: BTreeMap<u64, &pprof::Location> = profile
        .location
        .iter()
        .map(|location| (location.id, location))
        .collect();
    let mut bytes: BTreeMap<&str, i64> = BTreeMap::new();
    for sample in &profile.sample {
        let on_stack: BTreeSet<&str> = sample
            .location_id
            .iter()
            .flat_map(|id| &locations[id].line)
            .map(|line| names[&line.function_id])
            .collect();
        for name in on_stack {
            *bytes.entry(name).or_default() += sample.value[0];
        }
    }
    let mut top: Vec<(String, i64)> = bytes
        .into_iter()
        .map(|(name, bytes)| (name.to_owned(), bytes))
        .collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_profile_shows_the_wav_buffering_and_the_pools_growth_holding_the_heap() {
    let (service, _config) = serve("{ enabled: true, sample_rate: 64KiB }", "");
    build_up_heap(&service).await;
    let metrics = service.metrics.expect("a Prometheus listener");

    let reply = send(metrics, "GET", HEAP, None, Vec::new()).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let profile = decode(&reply.body);
    let [sample_type] = profile.sample_type.as_slice() else {
        panic!("one sample type: {:?}", profile.sample_type);
    };
    assert_eq!(
        (
            profile.string_table[sample_type.r#type as usize].as_str(),
            profile.string_table[sample_type.unit as usize].as_str()
        ),
        ("inuse_space", "bytes")
    );
    // The service's own functions, ranked by the bytes allocated under them and still held
    // (the pool keeps the buffers): allocator, runtime and std frames are left out.
    let top: Vec<(String, i64)> = top_functions(&profile)
        .into_iter()
        .filter(|(name, _)| name.starts_with("heapscape"))
        .take(10)
        .collect();
    // The speech handler makes room for each chunk through the pooled buffer's guard, so the
    // growth of a stream's buffer is allocated under the pool's `reserve`, within `buffer_wav`.
    for site in [
        "heapscape_demo::server::api::buffer_wav",
        "heapscape_pool::guard::PooledBuf::reserve",
    ] {
        assert!(
            top.iter().any(|(name, _)| name.starts_with(site)),
            "{site} is not among the top sites: {top:#?}"
        );
    }

    let reply = send(
        metrics,
        "GET",
        "/debug/pprof/heap?format=svg",
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["content-type"], "image/svg+xml");
    let svg = String::from_utf8_lossy(&reply.body);
    assert!(
        svg.contains("<svg") && svg.contains("buffer_wav"),
        "{svg:.300}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_dumps_are_all_answered() {
    let (service, _config) = serve("{ enabled: true }", "");
    build_up_heap(&service).await;
    let metrics = service.metrics.expect("a Prometheus listener");
    let dumps = (0..4).map(|_| send(metrics, "GET", HEAP, None, Vec::new()));
    for reply in futures_util::future::join_all(dumps).await {
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        assert!(!decode(&reply.body).sample.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_profile_is_refused_while_profiling_is_off() {
    let (service, _config) = serve("{ enabled: false }", "");
    let metrics = service.metrics.expect("a Prometheus listener");
    let reply = send(metrics, "GET", HEAP, None, Vec::new()).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    let reason = String::from_utf8_lossy(&reply.body);
    assert!(reason.contains("profiling is off"), "{reason}");
    assert!(reason.contains("enabled: true"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_profile_is_refused_outside_the_allowlist() {
    let (service, _config) = serve("{ enabled: true }", ", allow: [10.0.0.0/8]");
    let metrics = service.metrics.expect("a Prometheus listener");
    for path in [HEAP, "/debug/pprof/heap?format=svg"] {
        let reply = send(metrics, "GET", path, None, Vec::new()).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}");
    }
}
