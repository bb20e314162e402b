//! heapscape's ops CLI: `heapscape recommend` reads a fleet's pool metrics and tells, for each
//! service and pool, what to set: the max buffer size, the initial capacity and the idle caps,
//! what each candidate max costs, and how sure the answer is; `--write` puts the settings into
//! the service's heapscape config, which a running service reloads.
//!
//! The answer follows the rule each pool applies to its own window
//! ([`heapscape_pool::PoolStats`]), run on the fleet's data: the returned lengths summed across
//! the service's instances over the window, at the pools' resolution (four buckets per
//! octave), so the CLI, the pools' gauges and the dashboards agree on the same data.
//!
//! ```text
//! heapscape recommend --prometheus http://prometheus:9090 --selector 'job="tts"'
//! heapscape recommend --prometheus http://prometheus:9090 -o json
//! heapscape recommend --prometheus http://prometheus:9090 --write heapscape.yaml --dry-run
//! heapscape recommend --metrics http://10.0.0.7:9000/metrics
//! ```
//!
//! After a change of the max (a `--write` the service reloaded, or auto-tuning), each answer
//! also shows the rule's prediction for the new max against what followed: the share of
//! returns over it and the idle bytes, before the change and since ([`SinceChange`]).
//!
//! The binary is thin ([`run`] does the work); exit codes are in [`exit`].

#![deny(missing_docs)]

// The Prometheus text-format parser: all the crate is without its `cli` feature (the demo
// reads its services' /metrics pages with it, without building the CLI's HTTP client).
pub mod exposition;

/// The CLI's modules and what the crate exports from them, each under the `cli` feature: the
/// attribute written once, as tokio's `cfg_*!` macros do.
macro_rules! with_cli {
    ($($item:item)*) => {
        $(
            #[cfg(feature = "cli")]
            $item
        )*
    };
}

with_cli! {
    mod app;
    mod change;
    mod config_edit;
    mod error;
    mod fleet;
    mod http;
    mod instance;
    mod prometheus;
    mod recommend;
    mod report;
    mod since_change;
    pub use app::{Cli, Outcome, RecommendArgs, run};
    pub use error::{Error, exit};
    pub use fleet::Settings;
    pub use recommend::{CandidateCost, Confidence, Recommendation};
    pub use report::{Format, Report};
    pub use since_change::{Observed, Predicted, SinceChange};
}
