//! The settings of [`EnforceDeadlineLayer`](crate::EnforceDeadlineLayer), as a value.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use palisade_core::ConfigError;

/// What [`EnforceDeadlineLayer`](crate::EnforceDeadlineLayer) does, checked when built.
///
/// | setting | default | why |
/// |---|---|---|
/// | [`max`](DeadlineConfigBuilder::max) | 30 s | no request holds the server longer, whatever its caller asks — a request without a deadline gets this one |
/// | [`header`](DeadlineConfigBuilder::header) | `x-request-timeout-ms` | plain HTTP callers' timeout, in whole milliseconds (gRPC calls use `grpc-timeout`) |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadlineConfig {
    pub(crate) name: Arc<str>,
    pub(crate) max: Duration,
    pub(crate) header: HeaderName,
}

impl DeadlineConfig {
    /// A builder for the deadlines of service `name` (the metrics' `name` label).
    pub fn builder(name: impl Into<Arc<str>>) -> DeadlineConfigBuilder {
        DeadlineConfigBuilder {
            config: DeadlineConfig {
                name: name.into(),
                max: Duration::from_secs(30),
                header: HeaderName::from_static("x-request-timeout-ms"),
            },
        }
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The longest deadline given to a request.
    pub fn max(&self) -> Duration {
        self.max
    }
}

/// The defaults, for service `name`.
impl From<&str> for DeadlineConfig {
    fn from(name: &str) -> Self {
        DeadlineConfig::builder(name)
            .build()
            .expect("the defaults are valid")
    }
}

/// Builds a [`DeadlineConfig`].
#[derive(Debug, Clone)]
pub struct DeadlineConfigBuilder {
    config: DeadlineConfig,
}

impl DeadlineConfigBuilder {
    /// The longest a request may take, and the deadline of one whose caller sent none.
    pub fn max(mut self, max: Duration) -> Self {
        self.config.max = max;
        self
    }

    /// The header a plain HTTP caller sends its timeout in, as whole milliseconds.
    pub fn header(mut self, header: HeaderName) -> Self {
        self.config.header = header;
        self
    }

    /// Checks the settings: a [`ConfigError`] names the one that is wrong.
    pub fn build(self) -> Result<DeadlineConfig, ConfigError> {
        if self.config.max.is_zero() {
            return Err(ConfigError::new("max", "must be above zero"));
        }
        if self.config.header == http::header::HeaderName::from_static("grpc-timeout") {
            return Err(ConfigError::new(
                "header",
                "grpc-timeout is read for gRPC calls already; name the header plain HTTP callers send",
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
        let zero = DeadlineConfig::builder("a").max(Duration::ZERO).build();
        assert_eq!(zero.unwrap_err().field(), "max");
        let grpc = DeadlineConfig::builder("a")
            .header(HeaderName::from_static("grpc-timeout"))
            .build();
        assert_eq!(grpc.unwrap_err().field(), "header");
        assert_eq!(DeadlineConfig::from("a").max(), Duration::from_secs(30));
    }
}
