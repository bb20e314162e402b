//! Reading a fleet's pools from any Prometheus-compatible HTTP API: a fixed, small set of
//! instant queries (one range query for the history span), whatever the fleet's size.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use heapscape_pool::metrics::{
    DISCARDS, INITIAL_CAPACITY, MAX_BUFFER_SIZE, MAX_IDLE_BUFFERS, MAX_IDLE_BYTES, PEAK_HELD,
    PEAK_IDLE_BYTES, RECOMMENDATION_MIN_RETURNS, RETURNED_LENGTH, SHRINKS,
};
use heapscape_pool::stats::FineSizeHistogram;
use serde_json::Value;

use crate::error::Error;
use crate::fleet::{PoolData, PoolKey};
use crate::http::Http;

/// The labels every query sums or takes the peak by: those of a [`PoolKey`]. Without
/// `service`, the StatsD path's services, all scraped as statsd_exporter's job, would be read
/// as one when they name a pool alike. The kit's recording rules keep the same labels.
pub(crate) const BY_POOL: &str = "job, service, pool";

/// The queries [`gather`] sends, for the progress indicator.
pub(crate) const QUERIES: u64 = 10;

/// One series of a query's answer: its labels and value (one sample's, or a range query's
/// `(time, value)` points).
pub(crate) struct Series<T = f64> {
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) value: T,
}

impl<T> Series<T> {
    pub(crate) fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }

    /// The service's pool a series belongs to.
    pub(crate) fn key(&self) -> PoolKey {
        PoolKey {
            job: self.label("job").to_owned(),
            service: self.label("service").to_owned(),
            pool: self.label("pool").to_owned(),
        }
    }
}

/// A range query's answer for one series: `(Unix seconds, value)`, oldest first.
pub(crate) type Points = Vec<(f64, f64)>;

/// A pool's returns across its instances.
#[derive(Default)]
struct Returns {
    total: f64,
    instances: u64,
    /// The instance with the most, and how many.
    top: Option<(String, f64)>,
}

/// A Prometheus HTTP API at `base` (e.g. `http://prometheus:9090`).
pub(crate) struct Prometheus<'a> {
    http: &'a Http,
    base: String,
}

impl<'a> Prometheus<'a> {
    pub(crate) fn new(http: &'a Http, base: &str) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    fn api(&self, path: &str, params: &[(&str, &str)], query: &str) -> Result<Value, Error> {
        let url = format!("{}{path}", self.base);
        let (status, body) = self.http.get(&url, params)?;
        let json: Value = serde_json::from_str(&body).map_err(|_| Error::Unreachable {
            url: url.clone(),
            reason: format!(
                "HTTP {status}, not a Prometheus API answer (is this Prometheus's address?): {}",
                body.chars().take(200).collect::<String>()
            ),
        })?;
        if json["status"] == "success" {
            return Ok(json["data"].clone());
        }
        let reason = json["error"]
            .as_str()
            .unwrap_or("no reason given")
            .to_owned();
        if json["errorType"] == "bad_data" {
            return Err(Error::BadQuery {
                query: query.to_owned(),
                reason,
            });
        }
        Err(Error::Unreachable {
            url,
            reason: format!("HTTP {status}: {reason}"),
        })
    }

    /// `promql` evaluated at `at` (Unix seconds), or at the server's now.
    pub(crate) fn query(&self, promql: &str, at: Option<f64>) -> Result<Vec<Series>, Error> {
        let time = at.map(|at| format!("{at:.3}"));
        let mut params = vec![("query", promql)];
        params.extend(time.as_deref().map(|time| ("time", time)));
        let data = self.api("/api/v1/query", &params, promql)?;
        Ok(vector(&data["result"], |value| {
            sample_value(&value["value"])
        }))
    }

    /// Each series of `promql` over `[end - range, end]` (Unix seconds) in `steps` steps (of
    /// at least a second): its `(time, value)` points, oldest first, where it had data.
    pub(crate) fn query_range(
        &self,
        promql: &str,
        end: f64,
        range: Duration,
        steps: u32,
    ) -> Result<Vec<Series<Points>>, Error> {
        let (start, end, step) = (
            format!("{:.3}", end - range.as_secs_f64()),
            format!("{end:.3}"),
            format!("{:.3}", (range.as_secs_f64() / f64::from(steps)).max(1.0)),
        );
        let data = self.api(
            "/api/v1/query_range",
            &[
                ("query", promql),
                ("start", &start),
                ("end", &end),
                ("step", &step),
            ],
            promql,
        )?;
        Ok(vector(&data["result"], |series| {
            series["values"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|sample| (sample[0].as_f64().unwrap_or(f64::NAN), sample_value(sample)))
                .collect()
        }))
    }
}

/// Now, in Unix seconds.
pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// The series of a `vector` or `matrix` answer, with `value` read from each.
fn vector<T>(result: &Value, value: impl Fn(&Value) -> T) -> Vec<Series<T>> {
    result
        .as_array()
        .into_iter()
        .flatten()
        .map(|series| Series {
            labels: series["metric"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect(),
            value: value(series),
        })
        .collect()
}

/// A sample's value: `[timestamp, "value"]`, with Prometheus's spelling of NaN and infinities.
fn sample_value(sample: &Value) -> f64 {
    sample[1]
        .as_str()
        .and_then(|text| text.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Each service's pool's histogram from the cumulative `le` buckets of `series` (e.g. the
/// `increase` of `..._bucket` summed by [`BY_POOL`] and `le`).
pub(crate) fn histograms<'a>(
    series: impl IntoIterator<Item = &'a Series>,
) -> BTreeMap<PoolKey, FineSizeHistogram> {
    let mut cumulative: BTreeMap<PoolKey, Vec<(f64, f64)>> = BTreeMap::new();
    for series in series {
        let bound = match series.label("le") {
            "+Inf" => f64::INFINITY,
            le => le.parse().unwrap_or(f64::NAN),
        };
        if bound.is_nan() || series.value.is_nan() {
            continue;
        }
        cumulative
            .entry(series.key())
            .or_default()
            .push((bound, series.value));
    }
    cumulative
        .into_iter()
        .map(|(key, mut buckets)| {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut below = 0.0;
            let counts = buckets.into_iter().map(|(bound, total)| {
                // Cumulative to per-bucket; `increase` extrapolates, so counts are rounded, and
                // a bucket can only add.
                let count = (total - below).max(0.0);
                below = below.max(total);
                let bound = if bound.is_finite() {
                    bound as u64
                } else {
                    u64::MAX
                };
                (bound, count.round() as u64)
            });
            (key, FineSizeHistogram::from_buckets(counts))
        })
        .collect()
}

/// `{matchers}` for a metric: the user's selector plus `extra`.
pub(crate) fn select(metric: &str, selector: &str, extra: &str) -> String {
    let matchers: Vec<&str> = [selector, extra]
        .into_iter()
        .filter(|m| !m.is_empty())
        .collect();
    format!("{metric}{{{}}}", matchers.join(","))
}

/// A PromQL range: whole seconds.
fn range(window: Duration) -> String {
    format!("{}s", window.as_secs().max(1))
}

/// Whether the recording rule's answer `record` keeps apart the services that `per_instance`
/// (the instances' own series, by [`BY_POOL`] and instance) tells apart. The record of an
/// older kit sums by job and pool only: where the instances' series of a job and pool carry a
/// `service`, its series have none, and read by service it would give one pool for several
/// services (on the StatsD path, every service behind the exporter), keyed unlike every
/// other query. Then the instances' series are read instead.
fn keeps_services(record: &[Series], per_instance: &[Series]) -> bool {
    let with_service: BTreeSet<(&str, &str)> = per_instance
        .iter()
        .filter(|s| !s.label("service").is_empty())
        .map(|s| (s.label("job"), s.label("pool")))
        .collect();
    record.iter().all(|series| {
        !series.label("service").is_empty()
            || !with_service.contains(&(series.label("job"), series.label("pool")))
    })
}

/// The recording rule of the kit (`heapscape.recommend.rules`) that holds each service's
/// buckets summed across its instances over [`RECORDED_WINDOW`], and that window.
pub(crate) const RECORDED_BUCKETS: &str =
    "job:heapscape_pool_returned_length_bytes_bucket:increase1h";
/// The window [`RECORDED_BUCKETS`] covers.
pub(crate) const RECORDED_WINDOW: Duration = Duration::from_secs(3600);

/// Every service's pools matching `selector` over the last `window`, by the queries below;
/// `tick` is called after each. `recorded` allows reading the fleet's buckets from the kit's
/// recording rule where it answers for this window and selector.
pub(crate) fn gather(
    prometheus: &Prometheus<'_>,
    selector: &str,
    window: Duration,
    recorded: bool,
    mut tick: impl FnMut(&str),
) -> Result<Vec<PoolData>, Error> {
    let w = range(window);
    let mut pools: BTreeMap<PoolKey, PoolData> = BTreeMap::new();

    // Returns per instance: how many instances, and whether one of them drives the answer;
    // read first, as they also tell whether the recording rule below keeps services apart.
    tick("returns per instance");
    let per_instance = prometheus.query(
        &format!(
            "sum by ({BY_POOL}, instance) (increase({}[{w}]))",
            select(&format!("{}_count", RETURNED_LENGTH.name), selector, "")
        ),
        None,
    )?;

    // The fleet's lengths: every instance's buckets summed. The recording rule holds exactly
    // that for a one-hour window, as a few hundred series where the instances' own are
    // hundreds of thousands in a large fleet (94 M samples to read at 500 instances x 8
    // pools: 10 s, against 1 s from the record); it answers only when the selector's labels
    // are on it (job, service, pool, cluster), else every instance's series are read.
    tick("returned lengths");
    let from_record = if recorded && window == RECORDED_WINDOW {
        prometheus.query(
            &format!(
                "sum by ({BY_POOL}, le) ({})",
                select(RECORDED_BUCKETS, selector, "")
            ),
            None,
        )?
    } else {
        Vec::new()
    };
    let used_record = !from_record.is_empty() && keeps_services(&from_record, &per_instance);
    let buckets = if used_record {
        from_record
    } else {
        prometheus.query(
            &format!(
                "sum by ({BY_POOL}, le) (increase({}[{w}]))",
                select(&format!("{}_bucket", RETURNED_LENGTH.name), selector, "")
            ),
            None,
        )?
    };
    for (key, lengths) in histograms(&buckets) {
        let data = pools.entry(key.clone()).or_default();
        data.key = key;
        data.lengths = lengths;
        data.window = window;
        data.lengths_recorded = used_record;
    }
    let mut step = |what: &str, promql: String| -> Result<Vec<Series>, Error> {
        tick(what);
        prometheus.query(&promql, None)
    };
    if pools.is_empty() {
        return Err(Error::NoSeries {
            what: select(RETURNED_LENGTH.name, selector, ""),
        });
    }

    // The settings in force: the largest across instances, and whether they differ.
    let settings = format!(
        "{{__name__=~\"{}|{}|{}|{}\"{}{selector}}}",
        MAX_BUFFER_SIZE.name,
        INITIAL_CAPACITY.name,
        MAX_IDLE_BUFFERS.name,
        MAX_IDLE_BYTES.name,
        if selector.is_empty() { "" } else { "," },
    );
    let largest = step(
        "settings in force",
        format!("max by ({BY_POOL}, __name__) ({settings})"),
    )?;
    let smallest = step(
        "settings in force",
        format!("min by ({BY_POOL}, __name__) ({settings})"),
    )?;
    for series in &largest {
        let Some(data) = pools.get_mut(&series.key()) else {
            continue;
        };
        let value = series.value as u64;
        let field = match series.label("__name__") {
            name if name == MAX_BUFFER_SIZE.name => &mut data.current.max_buffer_size,
            name if name == INITIAL_CAPACITY.name => &mut data.current.initial_capacity,
            name if name == MAX_IDLE_BUFFERS.name => &mut data.current.max_idle_buffers,
            _ => &mut data.current.max_idle_bytes,
        };
        *field = value;
        let differs = smallest.iter().any(|other| {
            other.key() == series.key()
                && other.label("__name__") == series.label("__name__")
                && other.value != series.value
        });
        data.settings_differ |= differs;
    }

    let mut totals: BTreeMap<PoolKey, Returns> = BTreeMap::new();
    for series in per_instance.iter().filter(|s| s.value > 0.0) {
        let entry = totals.entry(series.key()).or_default();
        entry.total += series.value;
        entry.instances += 1;
        if entry
            .top
            .as_ref()
            .is_none_or(|(_, most)| series.value > *most)
        {
            entry.top = Some((series.label("instance").to_owned(), series.value));
        }
    }
    for (key, returns) in totals {
        if let Some(data) = pools.get_mut(&key) {
            data.instances = returns.instances;
            data.top_instance = returns
                .top
                .map(|(instance, most)| (instance, most / returns.total));
        }
    }

    // Peaks per instance over the window: what one instance's idle caps must hold.
    for (what, metric, field) in [
        (
            "peak of buffers held",
            PEAK_HELD.name,
            (|d: &mut PoolData| &mut d.peak_held) as fn(&mut PoolData) -> &mut u64,
        ),
        ("peak of idle bytes", PEAK_IDLE_BYTES.name, |d| {
            &mut d.peak_idle_bytes
        }),
    ] {
        for series in step(
            what,
            format!(
                "max by ({BY_POOL}) (max_over_time({}[{w}]))",
                select(metric, selector, "")
            ),
        )? {
            if let Some(data) = pools.get_mut(&series.key()) {
                *field(data) = series.value as u64;
            }
        }
    }

    for series in step(
        "idle-cap discards",
        format!(
            "sum by ({BY_POOL}) (increase({}[{w}]))",
            select(
                DISCARDS.name,
                selector,
                "reason=~\"idle_buffers_cap|idle_bytes_cap\""
            )
        ),
    )? {
        if let Some(data) = pools.get_mut(&series.key()) {
            data.idle_cap_discards = series.value.round() as u64;
        }
    }

    // What the max in force costs now, observed: the returns shrunk to it (each regrows on its
    // next long request), beside the regrowth the rule predicts from the lengths.
    for series in step(
        "shrinks",
        format!(
            "sum by ({BY_POOL}) (rate({}[{w}]))",
            select(SHRINKS.name, selector, "")
        ),
    )? {
        if let Some(data) = pools.get_mut(&series.key()) {
            data.shrinks_per_second = series.value;
        }
    }

    for series in step(
        "minimum of returns",
        format!(
            "max by ({BY_POOL}) ({})",
            select(RECOMMENDATION_MIN_RETURNS.name, selector, "")
        ),
    )? {
        if let Some(data) = pools.get_mut(&series.key()) {
            data.min_returns = Some(series.value as u64);
        }
    }

    // The history the window holds: from the first step with a series, in 60 steps.
    tick("history span");
    let now = now();
    let history = prometheus.query_range(
        &format!(
            "count by ({BY_POOL}) ({})",
            select(&format!("{}_count", RETURNED_LENGTH.name), selector, "")
        ),
        now,
        window,
        60,
    )?;
    for series in history {
        let Some(&(earliest, _)) = series.value.first() else {
            continue;
        };
        if let Some(data) = pools.get_mut(&series.key()) {
            let seconds = (now - earliest).clamp(0.0, window.as_secs_f64());
            data.span = Duration::from_secs_f64(seconds);
        }
    }
    Ok(pools.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(labels: &[(&str, &str)]) -> Series {
        Series {
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            value: 1.0,
        }
    }

    #[test]
    fn series_are_keyed_by_job_service_and_pool() {
        let statsd = |service| {
            series(&[
                ("job", "statsd-exporter"),
                ("service", service),
                ("pool", "pcm"),
                ("le", "+Inf"),
            ])
        };
        let both = histograms(&[statsd("tts"), statsd("asr")]);
        assert_eq!(both.len(), 2, "two StatsD services naming their pool alike");
        let prometheus_path = series(&[("job", "tts"), ("pool", "pcm")]).key();
        assert_eq!(
            (
                prometheus_path.job.as_str(),
                prometheus_path.service.as_str()
            ),
            ("tts", "")
        );
    }

    #[test]
    fn a_record_that_merges_services_is_not_read() {
        let instance = |job, service| {
            series(&[
                ("job", job),
                ("service", service),
                ("pool", "pcm"),
                ("instance", "node-1"),
            ])
        };
        let record = |job, service| {
            series(&[
                ("job", job),
                ("service", service),
                ("pool", "pcm"),
                ("le", "+Inf"),
            ])
        };
        let statsd = [
            instance("statsd-exporter", "tts"),
            instance("statsd-exporter", "asr"),
        ];
        // The kit's record keeps `service`.
        assert!(keeps_services(
            &[
                record("statsd-exporter", "tts"),
                record("statsd-exporter", "asr")
            ],
            &statsd
        ));
        // An older kit's record sums by job and pool: no `service` where the instances have one.
        assert!(!keeps_services(&[record("statsd-exporter", "")], &statsd));
        // The Prometheus path without a `service` label: nothing to keep apart.
        assert!(keeps_services(&[record("tts", "")], &[instance("tts", "")]));
    }
}
