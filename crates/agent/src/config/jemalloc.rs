//! The `jemalloc:` section: jemalloc's purging settings, read as written and validated into a
//! [`JemallocConfig`](heapscape_heartbeat::decay::DecaySettings).

use serde::Deserialize;
use serde_saphyr::Spanned;

use heapscape_heartbeat::decay::{DecaySettings, check_decay};

use super::error::ConfigError;
use crate::units::HumanDuration;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJemalloc {
    dirty_decay: Option<Spanned<HumanDuration>>,
    muzzy_decay: Option<Spanned<HumanDuration>>,
    background_thread: Option<bool>,
}

impl RawJemalloc {
    /// The settings, or the first decay time jemalloc could not take, located in `file`.
    pub(super) fn validate(self, file: &str) -> Result<DecaySettings, ConfigError> {
        let decay = |value: Option<Spanned<HumanDuration>>, key: &str| {
            value
                .map(|value| {
                    check_decay(value.value.0)
                        .map(|()| value.value.0)
                        .map_err(|message| {
                            ConfigError::new(
                                file,
                                Some(value.referenced),
                                Some(format!("jemalloc.{key}")),
                                message,
                            )
                        })
                })
                .transpose()
        };
        let mut settings = DecaySettings::default();
        settings.dirty_decay = decay(self.dirty_decay, "dirty_decay")?;
        settings.muzzy_decay = decay(self.muzzy_decay, "muzzy_decay")?;
        settings.background_thread = self.background_thread;
        Ok(settings)
    }
}
