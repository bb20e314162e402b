//! Finding the last change of each pool's max buffer size within the window, and reading the
//! returns on either side of it: one range query of the max in force finds the changes, then
//! four instant queries read both sides, whatever the number of pools (pools changed at
//! different times are read as labelled parts of the same query).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use heapscape_pool::metrics::{IDLE_BYTES, MAX_BUFFER_SIZE, PEAK_HELD, RETURNED_LENGTH};

use crate::error::Error;
use crate::fleet::{MaxChange, PoolData, PoolKey};
use crate::prometheus::{BY_POOL, Prometheus, Series, histograms, now, select};

/// The queries [`gather`] sends, for the progress indicator.
pub(crate) const QUERIES: u64 = 5;

/// Steps of the range query that finds the changes: a change is placed to within one step
/// (the window over 240, at least a second), and the answer holds at most 241 points a pool.
const STEPS: u32 = 240;

/// The most change times read apart. More are merged, nearest first, so that a query stays a
/// few kilobytes long (it is a GET, and proxies cap URLs).
const MOST_PARTS: usize = 6;

/// The label that tells the parts of one query apart.
const PART: &str = "heapscape_part";

/// A change in a series of values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Change {
    /// The last step with the previous value, Unix seconds.
    pub(crate) last_before: f64,
    /// The first step with the new value, Unix seconds.
    pub(crate) first_after: f64,
    /// The value before.
    pub(crate) previous: f64,
    /// The value since.
    pub(crate) value: f64,
}

/// The last change in `points` (`(time, value)`, oldest first); `None` when the value never
/// changed. Steps without a value are skipped: a gap (an instance restarting, a scrape
/// missed) is no change.
pub(crate) fn last_change(points: &[(f64, f64)]) -> Option<Change> {
    let values: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(_, v)| !v.is_nan())
        .collect();
    values
        .windows(2)
        .rev()
        .find(|pair| pair[0].1 != pair[1].1)
        .map(|pair| Change {
            last_before: pair[0].0,
            first_after: pair[1].0,
            previous: pair[0].1,
            value: pair[1].1,
        })
}

/// Changes read in one part of each query: its before side ends where the earliest of them
/// was last unchanged, its since side starts where the latest was first seen changed, so
/// neither side holds returns from the other's max.
#[derive(Debug, Clone, PartialEq)]
struct Part {
    /// The end of the before side, Unix seconds.
    before_end: f64,
    /// The start of the since side, Unix seconds.
    since_start: f64,
    /// The services' pools it reads.
    pools: Vec<PoolKey>,
}

impl Part {
    /// A matcher for the jobs of its pools: a part's query reads only them (and keeps the
    /// services of a job apart by [`BY_POOL`]).
    fn jobs(&self) -> String {
        let jobs: BTreeSet<String> = self
            .pools
            .iter()
            .map(|key| regex_escape(&key.job))
            .collect();
        format!(
            "job=~{}",
            quoted(&jobs.into_iter().collect::<Vec<_>>().join("|"))
        )
    }
}

/// The parts to read `changes` in: one per change time, the nearest merged until at most
/// `most` remain.
fn parts(changes: &BTreeMap<PoolKey, Change>, most: usize) -> Vec<Part> {
    let mut sorted: Vec<_> = changes.iter().collect();
    sorted.sort_by(|(_, a), (_, b)| {
        (a.first_after.total_cmp(&b.first_after)).then(a.last_before.total_cmp(&b.last_before))
    });
    let mut parts: Vec<Part> = Vec::new();
    for (key, change) in sorted {
        match parts.last_mut() {
            Some(part)
                if part.since_start == change.first_after
                    && part.before_end == change.last_before =>
            {
                part.pools.push(key.clone());
            }
            _ => parts.push(Part {
                before_end: change.last_before,
                since_start: change.first_after,
                pools: vec![key.clone()],
            }),
        }
    }
    while parts.len() > most.max(1) {
        let gap = |i: usize| parts[i].since_start - parts[i - 1].since_start;
        let Some(nearest) = (1..parts.len()).min_by(|&a, &b| gap(a).total_cmp(&gap(b))) else {
            break;
        };
        let later = parts.remove(nearest);
        let earlier = &mut parts[nearest - 1];
        earlier.before_end = earlier.before_end.min(later.before_end);
        earlier.since_start = earlier.since_start.max(later.since_start);
        earlier.pools.extend(later.pools);
    }
    parts
}

/// A PromQL string literal holding `text`.
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `text` as a regular expression matching only itself.
fn regex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// A PromQL duration of `seconds`, to the millisecond (rounded down).
fn millis(seconds: f64) -> Option<String> {
    let millis = (seconds * 1000.0).floor();
    (millis >= 1.0).then(|| format!("{millis}ms"))
}

/// The last change of each pool's max buffer size within `window` and the returns on either
/// side of it, into [`PoolData::max_change`]; `tick` is called before each query.
pub(crate) fn gather(
    prometheus: &Prometheus<'_>,
    selector: &str,
    window: Duration,
    pools: &mut [PoolData],
    mut tick: impl FnMut(&str),
) -> Result<(), Error> {
    let now = now();
    let start = now - window.as_secs_f64();
    tick("changes of the max");
    let history = prometheus.query_range(
        &format!(
            "max by ({BY_POOL}) ({})",
            select(MAX_BUFFER_SIZE.name, selector, "")
        ),
        now,
        window,
        STEPS,
    )?;
    let changes: BTreeMap<PoolKey, Change> = history
        .iter()
        .filter(|series| {
            let key = series.key();
            pools.iter().any(|d| d.key == key)
        })
        .filter_map(|series| Some((series.key(), last_change(&series.value)?)))
        .collect();
    let parts = parts(&changes, MOST_PARTS);

    // Each query holds one arm per part, told apart by a label; a part without a side to
    // read (a change at the window's first step has no before) has no arm.
    let mut query = |what: &str, arm: &dyn Fn(&Part) -> Option<String>| {
        tick(what);
        let arms: Vec<String> = parts
            .iter()
            .enumerate()
            .filter_map(|(i, part)| {
                Some(format!(
                    "label_replace({}, \"{PART}\", \"{i}\", \"\", \"\")",
                    arm(part)?
                ))
            })
            .collect();
        if arms.is_empty() {
            return Ok(Vec::new());
        }
        prometheus.query(&arms.join(" or "), Some(now))
    };
    let bucket = format!("{}_bucket", RETURNED_LENGTH.name);
    // `[before] offset`: the window's start up to the end of the before side.
    let before = |part: &Part| {
        Some(format!(
            "[{}] offset {}",
            millis(part.before_end - start)?,
            millis(now - part.before_end).unwrap_or_else(|| "0s".to_owned())
        ))
    };
    let since = |part: &Part| Some(format!("[{}]", millis(now - part.since_start)?));
    let lengths_before = query("returns before the change", &|part| {
        Some(format!(
            "sum by ({BY_POOL}, le) (increase({}{}))",
            select(&bucket, selector, &part.jobs()),
            before(part)?
        ))
    })?;
    let lengths_since = query("returns since the change", &|part| {
        Some(format!(
            "sum by ({BY_POOL}, le) (increase({}{}))",
            select(&bucket, selector, &part.jobs()),
            since(part)?
        ))
    })?;
    let peak_held_before = query("peak of buffers held before the change", &|part| {
        Some(format!(
            "max by ({BY_POOL}) (max_over_time({}{}))",
            select(PEAK_HELD.name, selector, &part.jobs()),
            before(part)?
        ))
    })?;
    let idle_bytes_since = query("idle bytes since the change", &|part| {
        Some(format!(
            "max by ({BY_POOL}) (max_over_time({}{}))",
            select(IDLE_BYTES.name, selector, &part.jobs()),
            since(part)?
        ))
    })?;

    for (i, part) in parts.iter().enumerate() {
        let mut before = histograms(of_part(&lengths_before, i));
        let mut since = histograms(of_part(&lengths_since, i));
        let value = |answer: &[Series], key: &PoolKey| {
            of_part(answer, i)
                .find(|s| s.key() == *key && s.value.is_finite())
                .map_or(0, |s| s.value as u64)
        };
        for key in &part.pools {
            let Some(data) = pools.iter_mut().find(|d| d.key == *key) else {
                continue;
            };
            let change = changes[key];
            data.max_change = Some(MaxChange {
                previous_max: change.previous as u64,
                max: change.value as u64,
                before: Duration::from_secs_f64((part.before_end - start).max(0.0)),
                since: Duration::from_secs_f64((now - part.since_start).max(0.0)),
                lengths_before: before.remove(key).unwrap_or_default(),
                lengths_since: since.remove(key).unwrap_or_default(),
                peak_held_before: value(&peak_held_before, key),
                peak_idle_bytes_since: value(&idle_bytes_since, key),
            });
        }
    }
    Ok(())
}

/// The series of `answer` from part `i`.
fn of_part(answer: &[Series], i: usize) -> impl Iterator<Item = &Series> {
    let label = i.to_string();
    answer.iter().filter(move |s| s.label(PART) == label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(last_before: f64, first_after: f64) -> Change {
        Change {
            last_before,
            first_after,
            previous: 4.0,
            value: 1.0,
        }
    }

    fn key(job: &str, pool: &str) -> PoolKey {
        PoolKey {
            job: job.to_owned(),
            service: String::new(),
            pool: pool.to_owned(),
        }
    }

    #[test]
    fn the_last_change_is_found_between_two_steps_and_gaps_are_no_change() {
        assert_eq!(last_change(&[]), None);
        assert_eq!(last_change(&[(0.0, 4.0)]), None);
        assert_eq!(last_change(&[(0.0, 4.0), (1.0, 4.0), (2.0, 4.0)]), None);
        assert_eq!(
            last_change(&[(0.0, 4.0), (1.0, 4.0), (2.0, 1.0), (3.0, 1.0)]),
            Some(Change {
                last_before: 1.0,
                first_after: 2.0,
                previous: 4.0,
                value: 1.0
            })
        );
        // Changed twice: the last one counts.
        let twice = last_change(&[(0.0, 4.0), (1.0, 2.0), (2.0, 2.0), (3.0, 1.0)]).unwrap();
        assert_eq!((twice.last_before, twice.first_after), (2.0, 3.0));
        assert_eq!((twice.previous, twice.value), (2.0, 1.0));
        // A gap (a missing step, or NaN) between equal values is no change; across one, the
        // change lies between the steps on either side.
        assert_eq!(last_change(&[(0.0, 4.0), (5.0, 4.0)]), None);
        assert_eq!(
            last_change(&[(0.0, 4.0), (1.0, f64::NAN), (2.0, 4.0)]),
            None
        );
        let across = last_change(&[(0.0, 4.0), (1.0, f64::NAN), (2.0, 1.0)]).unwrap();
        assert_eq!((across.last_before, across.first_after), (0.0, 2.0));
    }

    #[test]
    fn changes_at_one_time_share_a_part_and_the_nearest_merge_beyond_the_most() {
        let changes = BTreeMap::from([
            (key("tts", "pcm"), change(10.0, 11.0)),
            (key("tts", "json"), change(10.0, 11.0)),
            (key("web", "bodies"), change(50.0, 51.0)),
            (key("auth", "tokens"), change(52.0, 53.0)),
        ]);
        let apart = parts(&changes, 6);
        assert_eq!(apart.len(), 3);
        assert_eq!((apart[0].before_end, apart[0].since_start), (10.0, 11.0));
        assert_eq!(apart[0].pools, [key("tts", "json"), key("tts", "pcm")]);
        assert_eq!(apart[0].jobs(), "job=~\"tts\"");

        // Two parts at most: the two nearest (51 and 53) merge, and the merged part reads
        // before the earlier change and after the later one.
        let merged = parts(&changes, 2);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0], apart[0]);
        assert_eq!((merged[1].before_end, merged[1].since_start), (50.0, 53.0));
        assert_eq!(
            merged[1].pools,
            [key("web", "bodies"), key("auth", "tokens")]
        );
        assert_eq!(merged[1].jobs(), "job=~\"auth|web\"");
        assert_eq!(parts(&changes, 1).len(), 1);
        assert!(parts(&BTreeMap::new(), 6).is_empty());
    }

    #[test]
    fn jobs_and_durations_are_written_as_promql_reads_them() {
        assert_eq!(regex_escape("api.v2 (eu)"), r"api\.v2 \(eu\)");
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(
            quoted(&regex_escape("a.b")),
            r#""a\\.b""#,
            "the regex's backslash, itself escaped in the string"
        );
        assert_eq!(millis(61.2345).as_deref(), Some("61234ms"));
        assert_eq!(millis(0.0005), None);
        assert_eq!(millis(-3.0), None);
    }
}
