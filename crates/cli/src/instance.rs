//! One instance's `/metrics`, for a service without Prometheus: its pools' own windowed
//! recommendations and candidates, read as published.

use std::collections::BTreeMap;

use heapscape_pool::metrics::{
    CANDIDATE_IDLE_BOUND, CANDIDATE_MAX, CANDIDATE_OVER_MAX, CANDIDATE_REGROW_BYTES,
    INITIAL_CAPACITY, MAX_BUFFER_SIZE, MAX_IDLE_BUFFERS, MAX_IDLE_BYTES, PEAK_IDLE_BYTES,
    RECOMMENDATION_MIN_RETURNS, RECOMMENDATION_RETURNS, RECOMMENDATION_WINDOW, RECOMMENDED_INITIAL,
    RECOMMENDED_MAX, RECOMMENDED_MAX_IDLE_BUFFERS, RECOMMENDED_MAX_IDLE_BYTES,
};
use heapscape_pool::stats::CandidateRole;

use crate::error::Error;
use crate::exposition::{Sample, parse};
use crate::fleet::Settings;
use crate::recommend::{CandidateCost, Confidence, Recommendation};

/// The recommendations of every pool on the page at `url`.
pub(crate) fn read(url: &str, text: &str) -> Result<Vec<Recommendation>, Error> {
    let samples = parse(text).map_err(|e| Error::Unreachable {
        url: url.to_owned(),
        reason: format!("not a Prometheus exposition ({e}): is this the /metrics address?"),
    })?;
    let mut pools: BTreeMap<String, Vec<&Sample>> = BTreeMap::new();
    for sample in &samples {
        if let Some(pool) = sample.label("pool") {
            pools.entry(pool.to_owned()).or_default().push(sample);
        }
    }
    let recommendations: Vec<Recommendation> = pools
        .into_iter()
        .filter(|(_, samples)| samples.iter().any(|s| s.name == MAX_BUFFER_SIZE.name))
        .map(|(pool, samples)| of_pool(url, pool, &samples))
        .collect();
    if recommendations.is_empty() {
        return Err(Error::NoSeries {
            what: url.to_owned(),
        });
    }
    Ok(recommendations)
}

fn of_pool(url: &str, pool: String, samples: &[&Sample]) -> Recommendation {
    let value = |name: &str, role: Option<&str>| {
        samples
            .iter()
            .find(|s| s.name == name && role.is_none_or(|r| s.label("candidate") == Some(r)))
            .map(|s| s.value)
            .filter(|v| v.is_finite())
    };
    let whole = |name: &str| value(name, None).map_or(0, |v| v as u64);
    let service = samples
        .iter()
        .find_map(|s| s.label("service"))
        .unwrap_or(url)
        .to_owned();
    let current = Settings {
        max_buffer_size: whole(MAX_BUFFER_SIZE.name),
        initial_capacity: whole(INITIAL_CAPACITY.name),
        max_idle_buffers: whole(MAX_IDLE_BUFFERS.name),
        max_idle_bytes: whole(MAX_IDLE_BYTES.name),
    };
    let recommended = match (
        value(RECOMMENDED_MAX.name, None),
        value(RECOMMENDED_INITIAL.name, None),
        value(RECOMMENDED_MAX_IDLE_BUFFERS.name, None),
        value(RECOMMENDED_MAX_IDLE_BYTES.name, None),
    ) {
        (Some(max), Some(initial), Some(buffers), Some(bytes)) => Some(Settings {
            max_buffer_size: max as u64,
            initial_capacity: initial as u64,
            max_idle_buffers: buffers as u64,
            max_idle_bytes: bytes as u64,
        }),
        _ => None,
    };
    let candidates = CandidateRole::ALL
        .into_iter()
        .filter_map(|role| {
            let r = Some(role.as_str());
            let bound = value(CANDIDATE_IDLE_BOUND.name, r)? as u64;
            Some(CandidateCost {
                role: role.as_str(),
                max_buffer_size: value(CANDIDATE_MAX.name, r)? as u64,
                share_over_max: value(CANDIDATE_OVER_MAX.name, r)?,
                // Published per instance as bytes only; reallocations are not.
                regrows_per_second: f64::NAN,
                regrow_bytes_per_second: value(CANDIDATE_REGROW_BYTES.name, r)?,
                idle_bytes_bound_per_instance: bound,
                idle_bytes_bound_fleet: bound,
            })
        })
        .collect();
    let (returns, min_returns) = (
        whole(RECOMMENDATION_RETURNS.name),
        whole(RECOMMENDATION_MIN_RETURNS.name),
    );
    let window = value(RECOMMENDATION_WINDOW.name, None).unwrap_or(0.0);
    let mut notes = vec!["one instance's own window: no fleet to compare with".to_owned()];
    let level = if recommended.is_some() {
        "low"
    } else {
        notes.insert(
            0,
            format!("not enough data (n={returns} returns in the window, {min_returns} needed)"),
        );
        "not enough data"
    };
    Recommendation {
        service,
        job: None,
        pool,
        current,
        recommended,
        candidates,
        initial_capacity_regrows_per_request: None,
        confidence: Confidence {
            level,
            returns,
            min_returns,
            instances: 1,
            history_seconds: window,
            window_seconds: window,
            top_instance: None,
            observed_peak_idle_bytes_per_instance: whole(PEAK_IDLE_BYTES.name),
            // A counter's rate needs two pages; one page has none.
            observed_shrinks_per_second: f64::NAN,
            notes,
        },
        // A page holds no history to find a change in.
        since_change: None,
    }
}
