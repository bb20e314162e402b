//! The ready line: what `serve` prints on standard output once it accepts requests, and how the
//! processes that start it (`compare`, `soak`, the tests) read their addresses from it.

use std::fmt;
use std::net::SocketAddr;

/// How the ready line starts; `http=<addr> metrics=<addr|none> pooling=<on|off>` follow.
pub const READY_PREFIX: &str = "heapscape-demo serve: ready";

/// The fields of the ready line; its [`Display`](fmt::Display) is the line itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyLine {
    /// Address of the speech service.
    pub http: SocketAddr,
    /// Address of the Prometheus scrape listener; `None` (`metrics=none`) with another exporter.
    pub metrics: Option<SocketAddr>,
    /// `on` or `off`.
    pub pooling: String,
}

impl ReadyLine {
    /// Reads a line printed by `serve`.
    ///
    /// # Errors
    ///
    /// A reason naming what is wrong when the line does not start with [`READY_PREFIX`] or
    /// lacks a readable `http`, `metrics` or `pooling` field.
    pub fn parse(line: &str) -> Result<Self, String> {
        let fields = line
            .strip_prefix(READY_PREFIX)
            .ok_or_else(|| format!("not a ready line: {line:?}"))?;
        let field = |key: &str| {
            fields
                .split_whitespace()
                .find_map(|field| field.strip_prefix(key)?.strip_prefix('='))
                .ok_or_else(|| format!("the ready line has no {key} field: {line:?}"))
        };
        let address = |key: &str, value: &str| {
            value
                .parse::<SocketAddr>()
                .map_err(|_| format!("the ready line has no {key} address: {line:?}"))
        };
        let metrics = match field("metrics")? {
            "none" => None,
            value => Some(address("metrics", value)?),
        };
        Ok(Self {
            http: address("http", field("http")?)?,
            metrics,
            pooling: field("pooling")?.to_owned(),
        })
    }
}

impl ReadyLine {
    /// The `metrics` field as written: the address or `none`.
    pub(super) fn metrics_field(&self) -> String {
        self.metrics
            .map_or_else(|| "none".to_owned(), |addr| addr.to_string())
    }
}

impl fmt::Display for ReadyLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{READY_PREFIX} http={} metrics={} pooling={}",
            self.http,
            self.metrics_field(),
            self.pooling
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_printed_line_reads_back() {
        for metrics in [Some("127.0.0.1:9000".parse().unwrap()), None] {
            let ready = ReadyLine {
                http: "127.0.0.1:8080".parse().unwrap(),
                metrics,
                pooling: "on".to_owned(),
            };
            assert_eq!(ReadyLine::parse(&ready.to_string()), Ok(ready));
        }
        assert_eq!(
            ReadyLine {
                http: "127.0.0.1:1".parse().unwrap(),
                metrics: None,
                pooling: "off".to_owned(),
            }
            .to_string(),
            "heapscape-demo serve: ready http=127.0.0.1:1 metrics=none pooling=off"
        );
    }

    #[test]
    fn a_line_without_an_address_is_refused() {
        assert!(ReadyLine::parse("heapscape-demo serve: ready metrics=none pooling=on").is_err());
        assert!(ReadyLine::parse("something else http=127.0.0.1:1").is_err());
    }
}
