//! The drain's configuration: a builder with documented defaults, validated on `build`.

use std::sync::Arc;
use std::time::Duration;

use palisade_core::ConfigError;

/// How an instance drains; made with [`DrainConfig::builder`].
#[derive(Debug, Clone)]
pub struct DrainConfig {
    pub(crate) name: Arc<str>,
    pub(crate) grace: Duration,
    pub(crate) timeout: Duration,
    pub(crate) retry_after: Duration,
}

impl DrainConfig {
    /// A builder that starts from the defaults, for the drain called `name` (the `name`
    /// label of its metrics and events).
    pub fn builder(name: impl Into<Arc<str>>) -> DrainConfigBuilder {
        DrainConfigBuilder {
            config: DrainConfig {
                name: name.into(),
                grace: Duration::from_secs(5),
                timeout: Duration::from_secs(30),
                retry_after: Duration::from_secs(1),
            },
        }
    }

    /// The drain's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Builds a [`DrainConfig`]. Every setting has a default, given with its source.
///
/// | setting | default | from |
/// |---|---|---|
/// | [`grace`](Self::grace) | 5 s | the `sleep 5` of the usual Kubernetes `preStop` hook; Envoy's `drain_time_s` is 600 s |
/// | [`timeout`](Self::timeout) | 30 s | Kubernetes' `terminationGracePeriodSeconds` |
/// | [`retry_after`](Self::retry_after) | 1 s | another instance can answer now |
#[derive(Debug, Clone)]
pub struct DrainConfigBuilder {
    config: DrainConfig,
}

impl DrainConfigBuilder {
    /// How long after the drain starts requests are still served — while readiness already
    /// fails — so that the balancers, endpoint controllers and registries in front have
    /// time to take the instance out before it refuses anything.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.config.grace = grace;
        self
    }

    /// The longest the whole drain takes, from its start: after it, the requests still in
    /// flight are abandoned (keep it below the orchestrator's own limit, which kills).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }

    /// The `Retry-After` (and `grpc-retry-pushback-ms`) of a refused request.
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.config.retry_after = after;
        self
    }

    /// Checks every setting and returns the configuration, or the first bad setting.
    pub fn build(self) -> Result<DrainConfig, ConfigError> {
        let c = &self.config;
        if c.timeout <= c.grace {
            return Err(ConfigError::new(
                "timeout",
                "must be longer than the grace period, which it includes",
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
        let err = DrainConfig::builder("api")
            .grace(Duration::from_secs(10))
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "timeout");
        DrainConfig::builder("api").build().unwrap();
    }
}
