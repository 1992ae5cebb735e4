//! The settings of [`PropagateDeadlineLayer`](super::PropagateDeadlineLayer), as a value.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use palisade_core::ConfigError;

/// What [`PropagateDeadlineLayer`](super::PropagateDeadlineLayer) does, checked when built.
///
/// | setting | default | why |
/// |---|---|---|
/// | [`timeout`](PropagateConfigBuilder::timeout) | none | a call with no deadline to inherit is not bounded by this layer (set one to bound it) |
/// | [`margin`](PropagateConfigBuilder::margin) | 5 ms | taken off the inherited deadline: the callee's `504` travels back and reaches the caller before the caller's own timer fires, so the caller learns why |
/// | [`header`](PropagateConfigBuilder::header) | `x-request-timeout-ms` | what a plain HTTP callee reads (palisade's server layer by default); gRPC calls carry `grpc-timeout` |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropagateConfig {
    pub(crate) name: Arc<str>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) margin: Duration,
    pub(crate) header: HeaderName,
}

impl PropagateConfig {
    /// A builder for the outgoing calls to dependency `name` (the metrics' `name` label).
    pub fn builder(name: impl Into<Arc<str>>) -> PropagateConfigBuilder {
        PropagateConfigBuilder {
            config: PropagateConfig {
                name: name.into(),
                timeout: None,
                margin: Duration::from_millis(5),
                header: HeaderName::from_static("x-request-timeout-ms"),
            },
        }
    }

    /// The dependency's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Each call's own timeout, if it has one.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// What is taken off the inherited deadline.
    pub fn margin(&self) -> Duration {
        self.margin
    }
}

/// The defaults, for dependency `name`.
impl From<&str> for PropagateConfig {
    fn from(name: &str) -> Self {
        PropagateConfig::builder(name)
            .build()
            .expect("the defaults are valid")
    }
}

/// Builds a [`PropagateConfig`].
#[derive(Debug, Clone)]
pub struct PropagateConfigBuilder {
    config: PropagateConfig,
}

impl PropagateConfigBuilder {
    /// Each call's own timeout: a call gets the earlier of it and the inherited deadline.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = Some(timeout);
        self
    }

    /// What is taken off the inherited deadline before it is passed on.
    pub fn margin(mut self, margin: Duration) -> Self {
        self.config.margin = margin;
        self
    }

    /// The header a plain HTTP call carries its timeout in, as whole milliseconds.
    pub fn header(mut self, header: HeaderName) -> Self {
        self.config.header = header;
        self
    }

    /// Checks the settings: a [`ConfigError`] names the one that is wrong.
    pub fn build(self) -> Result<PropagateConfig, ConfigError> {
        if self.config.timeout == Some(Duration::ZERO) {
            return Err(ConfigError::new(
                "timeout",
                "must be above zero (leave it unset for no timeout of its own)",
            ));
        }
        if self.config.margin >= Duration::from_secs(1) {
            return Err(ConfigError::new(
                "margin",
                "must be under 1 s: it is taken off every hop's deadline",
            ));
        }
        if self.config.header == HeaderName::from_static("grpc-timeout") {
            return Err(ConfigError::new(
                "header",
                "grpc-timeout is written for gRPC calls already; name the header plain HTTP callees read",
            ));
        }
        Ok(self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_name_their_field() {
        let field =
            |builder: PropagateConfigBuilder| builder.build().unwrap_err().field().to_owned();
        assert_eq!(
            field(PropagateConfig::builder("a").timeout(Duration::ZERO)),
            "timeout"
        );
        assert_eq!(
            field(PropagateConfig::builder("a").margin(Duration::from_secs(2))),
            "margin"
        );
        assert_eq!(
            field(PropagateConfig::builder("a").header(HeaderName::from_static("grpc-timeout"))),
            "header"
        );
        let defaults = PropagateConfig::from("a");
        assert_eq!(defaults.margin(), Duration::from_millis(5));
        assert_eq!(defaults.timeout(), None);
    }
}
