//! Plain HTTP GETs with a deadline and a size cap: a hung or huge answer fails with a reason
//! instead of hanging the CLI or filling its memory.

use std::time::Duration;

use crate::error::Error;

/// The most a single answer may hold: a 500-instance fleet's bucket query is a few MB.
const MAX_BODY: u64 = 256 << 20;

/// A GET client with one deadline per request.
pub(crate) struct Http {
    agent: ureq::Agent,
}

impl Http {
    pub(crate) fn new(timeout: Duration) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            // Prometheus explains a refused query in a 4xx body: read it rather than fail.
            .http_status_as_error(false)
            .build();
        Self {
            agent: ureq::Agent::new_with_config(config),
        }
    }

    /// `GET url?params`: the status and the body.
    pub(crate) fn get(&self, url: &str, params: &[(&str, &str)]) -> Result<(u16, String), Error> {
        let unreachable = |reason: String| Error::Unreachable {
            url: url.to_owned(),
            reason,
        };
        let mut request = self.agent.get(url);
        for (key, value) in params {
            request = request.query(*key, *value);
        }
        let mut response = request.call().map_err(|e| {
            unreachable(format!(
                "{e} (is the address right and the server up? only http:// is supported)"
            ))
        })?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map_err(|e| unreachable(format!("reading the answer: {e}")))?;
        Ok((status, body))
    }
}
