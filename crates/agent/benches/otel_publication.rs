//! One pool's publication into OpenTelemetry after `n` returns: into metrics-exporter-otel's
//! recorder bare (`histogram`: the pool's histograms as OpenTelemetry histograms, one
//! measurement per return) and wrapped in `heapscape::otel::BucketCounters`
//! (`bucket_counters`: one addition per non-empty bucket). Prints the fastest, median and
//! slowest of five publications per case. Run:
//! `cargo bench -p heapscape --bench otel_publication`.
//!
//! Timed by hand, not with criterion: each publication needs a pool refilled with `n` returns
//! first, which takes far longer than a publication into `BucketCounters`, and criterion would
//! refill it for every one of the many iterations it runs of a cheap routine.

use std::hint::black_box;
use std::time::{Duration, Instant};

use heapscape::Pool;
use heapscape::otel::BucketCounters;
use metrics::Recorder;
use metrics_exporter_otel::OpenTelemetryRecorder;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const PUBLICATIONS: usize = 5;

/// A pool that `n` returns of 1 B to 4 KB (short, so that millions fill quickly) have passed
/// through since its last publication.
fn pool_after(n: usize) -> Pool {
    let pool = Pool::builder("pcm")
        .initial_capacity(1 << 10)
        .max_buffer_size(64 << 10)
        .build()
        .expect("valid pool");
    let bytes = vec![0; 4096];
    for i in 0..n {
        pool.get()
            .extend_from_slice(&bytes[..1 + (i * 7919) % 4096]);
    }
    pool
}

fn main() {
    // An hour between exports: none runs beside the timed publications.
    let provider = SdkMeterProvider::builder()
        .with_reader(
            PeriodicReader::builder(InMemoryMetricExporter::default())
                .with_interval(Duration::from_secs(3600))
                .build(),
        )
        .build();
    let bare = OpenTelemetryRecorder::new(provider.meter("bench"));
    heapscape::otel::set_histogram_bounds(&bare);
    let meter = provider.meter("bench");
    let wrapped = BucketCounters::new(OpenTelemetryRecorder::new(meter.clone()), &meter);
    let recorders: [(&str, &dyn Recorder); 2] =
        [("histogram", &bare), ("bucket_counters", &wrapped)];
    for returns in [1_000, 1_000_000, 4_000_000] {
        for (name, recorder) in recorders {
            let mut times: Vec<Duration> = (0..PUBLICATIONS)
                .map(|_| {
                    let pool = pool_after(returns);
                    let started = Instant::now();
                    metrics::with_local_recorder(recorder, || black_box(&pool).publish());
                    started.elapsed()
                })
                .collect();
            times.sort();
            println!(
                "{name}/{returns}: fastest {:?}, median {:?}, slowest {:?}",
                times[0],
                times[PUBLICATIONS / 2],
                times[PUBLICATIONS - 1]
            );
        }
    }
}
