//! Building a pool: a name and the settings, checked before the pool exists.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{AutoTuneConfig, OverMaxPolicy};
use crate::depot::Shared;
use crate::{Pool, PoolConfig, PoolError};

/// Builds a [`Pool`]; every setting defaults to [`PoolConfig::default`].
#[derive(Debug, Clone)]
#[must_use]
pub struct PoolBuilder {
    name: String,
    config: PoolConfig,
}

impl Pool {
    /// Starts building a pool named `name` (the `pool` label of its metrics).
    pub fn builder(name: impl Into<String>) -> PoolBuilder {
        PoolBuilder {
            name: name.into(),
            config: PoolConfig::default(),
        }
    }
}

impl PoolBuilder {
    /// Capacity of newly allocated buffers, in bytes.
    pub fn initial_capacity(mut self, bytes: usize) -> Self {
        self.config.initial_capacity = bytes;
        self
    }

    /// The largest capacity kept on return (and the clamp for capacity hints), in bytes.
    pub fn max_buffer_size(mut self, bytes: usize) -> Self {
        self.config.max_buffer_size = bytes;
        self
    }

    /// The most idle buffers kept.
    pub fn max_idle_buffers(mut self, count: usize) -> Self {
        self.config.max_idle_buffers = count;
        self
    }

    /// The most bytes idle buffers may hold.
    pub fn max_idle_bytes(mut self, bytes: usize) -> Self {
        self.config.max_idle_bytes = bytes;
        self
    }

    /// How long a buffer may stay idle before [`Pool::trim`] releases it.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// What to do with returned buffers over the max buffer size.
    pub fn over_max(mut self, policy: OverMaxPolicy) -> Self {
        self.config.over_max = policy;
        self
    }

    /// The percentile of returned lengths reported as the recommended max buffer size.
    pub fn recommend_percentile(mut self, percentile: f64) -> Self {
        self.config.recommend_percentile = percentile;
        self
    }

    /// How far back the recommendations look (see [`PoolConfig::recommendation_window`]).
    pub fn recommendation_window(mut self, window: Duration) -> Self {
        self.config.recommendation_window = window;
        self
    }

    /// The fewest returns within the window a recommendation rests on (see
    /// [`PoolConfig::min_returns`]).
    pub fn recommendation_min_returns(mut self, returns: u64) -> Self {
        self.config.recommendation_min_returns = Some(returns);
        self
    }

    /// Whether and how the pool follows its own recommendations (see [`AutoTuneConfig`]).
    pub fn auto_tune(mut self, auto_tune: AutoTuneConfig) -> Self {
        self.config.auto_tune = auto_tune;
        self
    }

    /// Replaces every setting at once (e.g. from a config file).
    pub fn config(mut self, config: PoolConfig) -> Self {
        self.config = config;
        self
    }

    /// Builds the pool.
    ///
    /// # Errors
    ///
    /// [`PoolError::EmptyName`] for an empty name, and whatever [`PoolConfig::validate`]
    /// reports for the settings.
    pub fn build(self) -> Result<Pool, PoolError> {
        if self.name.is_empty() {
            return Err(PoolError::EmptyName);
        }
        self.config.validate()?;
        Ok(Pool {
            shared: Arc::new(Shared::new(self.name, self.config)),
        })
    }
}
