//! The kit's knobs in one place, like a monitoring mixin's `_config`: the selectors, thresholds
//! and windows that the dashboards, recording rules and alerts are generated from.

/// Selectors, thresholds and windows of the monitoring kit.
///
/// [`Config::default`] is the kit as committed under `grafana/dashboards/` and
/// `prometheus/rules/`; a deployment with other needs changes a field and regenerates (see
/// [`crate::generate`]). Durations are PromQL durations (`"5m"`), selectors are label matchers
/// without braces (`env="prod"`).
///
/// # Example
///
/// A Prometheus that holds two clusters' services next to other teams' jobs, with busier
/// pools and larger heaps than the defaults assume:
///
/// ```
/// use heapscape_monitoring::{Config, generate};
///
/// let config = Config {
///     selector: r#"team="speech""#,
///     cluster_label: Some("cluster"),
///     targets_selector: r#"job=~"tts|asr""#,
///     service_labels: "namespace, job",
///     discard_ratio_min_returns: 1000,
///     resident_growth_ratio: 0.1,
///     ..Config::default()
/// };
/// for file in generate(&config) {
///     // write file.contents to file.path in the deployment's repository
///     assert!(!file.contents.is_empty());
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Matchers added to every metric selector of every rule, alert, panel and variable
    /// (e.g. `env="prod"`), for a Prometheus that also holds series the kit must not read.
    /// Empty: none.
    pub selector: &'static str,
    /// The label that tells clusters apart (e.g. `cluster`), when one Prometheus (or a
    /// Thanos/Mimir in front of several) holds more than one: every aggregation keeps it, so no
    /// two clusters are summed together, and the dashboards get a variable for it. `None`: one
    /// cluster.
    pub cluster_label: Option<&'static str>,
    /// Matchers on `up` that pick the scrape targets of heapscape services (the Prometheus-path
    /// services and the statsd_exporter of the StatsD path), watched by `HeapscapeTargetDown`
    /// (e.g. `job=~"tts|asr"`). Empty (the default): the targets of every job that reported
    /// `heapscape_heartbeat_up` within [`Self::vanished_lookback`], found from the metrics, so
    /// no job name is written into the kit; a job all of whose targets stay down drops out of
    /// that set after the lookback (`HeapscapeMetricsVanished` fires meanwhile), which naming
    /// the jobs here avoids.
    pub targets_selector: &'static str,
    /// The labels that name a service: what its instances share and a rollout does not change
    /// (e.g. `job, service`, or `namespace, job` where jobs repeat across namespaces).
    /// `HeapscapeMetricsVanished` fires when every instance of such a group stopped reporting,
    /// not when one instance is replaced by another. The fleet's records and panels sum per
    /// such group: with `service` in it, the StatsD path's services, all scraped as
    /// statsd_exporter's job, stay apart.
    pub service_labels: &'static str,
    /// The base of every alert's `runbook_url`; each alert links `<base>#<alert in lower case>`.
    pub runbook_url: &'static str,
    /// Window of the recording rules' rates (`rate(...[5m])`), and so of the alerts on them.
    pub rate_window: &'static str,
    /// The `reason` values of `heapscape_pool_discards_total` counted when a buffer is
    /// returned. Idle-timeout trims and releases on reconfigure are not returns and are left
    /// out of the discard ratio.
    pub return_discard_reasons: &'static [&'static str],
    /// `HeapscapePoolHighDiscardRate` fires above this share of returns discarded (0..1) ...
    pub discard_ratio_threshold: f64,
    /// ... of at least this many returns within [`Self::rate_window`] (a pool at night that
    /// discards 2 of its 3 returns is not a pool to retune) ...
    pub discard_ratio_min_returns: u32,
    /// ... for this long.
    pub discard_ratio_for: &'static str,
    /// The quantile of returned lengths that a max buffer size should cover (the pools'
    /// `recommend_percentile`, default p95).
    pub recommend_quantile: f64,
    /// The quantile of returned lengths a new buffer's initial capacity should cover.
    pub initial_capacity_quantile: f64,
    /// The window of the fleet's recommendation (the "Decide" row and its recording rules):
    /// the pools' `recommendation_window` and `heapscape recommend --window`, 1 h by default,
    /// so that all three read the same returns.
    pub recommendation_window: &'static str,
    /// `HeapscapePoolMaxBufferSizeFarFromRecommended` fires when the configured max is more
    /// than this factor above or below the one the pool itself publishes (over its
    /// `recommendation_window`) ...
    pub far_from_recommended_factor: f64,
    /// ... for this long.
    pub far_from_recommended_for: &'static str,
    /// `HeapscapePoolIdleCapsFarAboveRecommended` fires when the idle memory a pool's caps
    /// allow (`min(max_idle_bytes, max_idle_buffers * max_buffer_size)`) is more than this
    /// factor above the pool's recommended max idle bytes, while it holds more idle bytes
    /// than recommended ...
    pub idle_caps_factor: f64,
    /// ... for this long (longer than the pools' recommendation window, so that a quiet hour
    /// does not fire it).
    pub idle_caps_for: &'static str,
    /// `HeapscapePoolAutoTuneHeldAtHighestBound` fires when a pool with auto-tuning on has
    /// recommended a max buffer size above its highest bound, holding its target at that bound,
    /// for this long: longer than the pools' recommendation window and many cooldowns, so that
    /// an hour of large requests does not fire it.
    pub auto_tune_bound_for: &'static str,
    /// `HeapscapeHeartbeatStale` fires when the last successful sample is older than this many
    /// heartbeat intervals ...
    pub heartbeat_stale_intervals: u32,
    /// ... for this long.
    pub heartbeat_stale_for: &'static str,
    /// `HeapscapeHeartbeatFailing` fires when every sample has failed for this long.
    pub heartbeat_failing_for: &'static str,
    /// `HeapscapeResidentMemoryGrowing` fires when resident bytes rose over
    /// [`Self::resident_growth_window`] by more than this share of what they were at its start
    /// (0.25: a quarter), so that one threshold suits a 50 MiB service and a 20 GiB one ...
    pub resident_growth_ratio: f64,
    /// ... (the window of that rise) ...
    pub resident_growth_window: &'static str,
    /// ... with a rising trend over this window ...
    pub resident_trend_window: &'static str,
    /// ... for this long.
    pub resident_growth_for: &'static str,
    /// `HeapscapeConfigReloadFailed` fires while a reload was rejected within this window.
    pub reload_failure_window: &'static str,
    /// `HeapscapeTargetDown` fires when a target's scrape has failed for this long.
    pub target_down_for: &'static str,
    /// `HeapscapeMetricsVanished` fires for a service (see [`Self::service_labels`]) that
    /// reported within this window and has no series now (and without
    /// [`Self::targets_selector`], `HeapscapeTargetDown` watches the jobs that reported within
    /// it) ...
    pub vanished_lookback: &'static str,
    /// ... for this long.
    pub vanished_for: &'static str,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            selector: "",
            cluster_label: None,
            targets_selector: "",
            service_labels: "job, service",
            runbook_url: "https://github.com/heapscape/heapscape/blob/main/prometheus/RUNBOOK.md",
            rate_window: "5m",
            return_discard_reasons: &["over_max", "idle_buffers_cap", "idle_bytes_cap"],
            discard_ratio_threshold: 0.25,
            discard_ratio_min_returns: 100,
            discard_ratio_for: "15m",
            recommend_quantile: 0.95,
            initial_capacity_quantile: 0.5,
            recommendation_window: "1h",
            far_from_recommended_factor: 4.0,
            far_from_recommended_for: "1h",
            idle_caps_factor: 4.0,
            idle_caps_for: "3h",
            auto_tune_bound_for: "3h",
            heartbeat_stale_intervals: 3,
            heartbeat_stale_for: "2m",
            heartbeat_failing_for: "5m",
            resident_growth_ratio: 0.25,
            resident_growth_window: "1h",
            resident_trend_window: "30m",
            resident_growth_for: "1h",
            reload_failure_window: "10m",
            target_down_for: "5m",
            vanished_lookback: "1h",
            vanished_for: "5m",
        }
    }
}

impl Config {
    /// `labels` with the cluster label in front when there is one: the `by (...)` of every
    /// aggregation.
    pub(crate) fn by(&self, labels: &str) -> String {
        match (self.cluster_label, labels.is_empty()) {
            (Some(cluster), true) => cluster.to_owned(),
            (Some(cluster), false) => format!("{cluster}, {labels}"),
            (None, _) => labels.to_owned(),
        }
    }

    /// `labels` after the cluster label and [`Self::service_labels`]: the `by (...)` of an
    /// aggregation across a service's instances. On the StatsD path every service is scraped
    /// as statsd_exporter's job, and only its `service` label keeps two services' pools apart.
    pub(crate) fn by_service(&self, labels: &str) -> String {
        self.by(&join_labels(&[self.service_labels, labels]))
    }

    /// `metric{<selector>,<extra>}` (just `metric` when both are empty).
    pub(crate) fn select(&self, metric: &str, extra: &str) -> String {
        let matchers = join_matchers(&[self.selector, extra]);
        if matchers.is_empty() {
            metric.to_owned()
        } else {
            format!("{metric}{{{matchers}}}")
        }
    }

    /// The regex alternation of [`Self::return_discard_reasons`] for a `reason=~` matcher.
    pub(crate) fn return_reasons_regex(&self) -> String {
        self.return_discard_reasons.join("|")
    }

    /// The `#fragment` GitHub gives a `## Heading` of the runbook: the alert in lower case.
    pub fn runbook_link(&self, alert: &str) -> String {
        format!("{}#{}", self.runbook_url, alert.to_ascii_lowercase())
    }
}

/// Joins non-empty label lists with `, `.
fn join_labels(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|part| part.trim())
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Joins non-empty matcher lists with commas.
pub(crate) fn join_matchers(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|part| !part.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_label_leads_every_aggregation_when_set() {
        let one = Config::default();
        assert_eq!(one.by("job, pool"), "job, pool");
        let many = Config {
            cluster_label: Some("cluster"),
            ..Config::default()
        };
        assert_eq!(many.by("job, pool"), "cluster, job, pool");
        assert_eq!(many.by(""), "cluster");
        assert_eq!(one.by_service("pool, le"), "job, service, pool, le");
        assert_eq!(many.by_service(""), "cluster, job, service");
    }

    #[test]
    fn selectors_combine_the_extra_matchers() {
        let plain = Config::default();
        assert_eq!(plain.select("up", ""), "up");
        assert_eq!(plain.select("up", r#"job="a""#), r#"up{job="a"}"#);
        let scoped = Config {
            selector: r#"env="prod""#,
            ..Config::default()
        };
        assert_eq!(scoped.select("up", ""), r#"up{env="prod"}"#);
        assert_eq!(
            scoped.select("up", r#"job="a""#),
            r#"up{env="prod",job="a"}"#
        );
    }

    #[test]
    fn runbook_links_use_the_heading_anchor() {
        assert_eq!(
            Config::default().runbook_link("HeapscapeTargetDown"),
            "https://github.com/heapscape/heapscape/blob/main/prometheus/RUNBOOK.md#heapscapetargetdown"
        );
    }
}
