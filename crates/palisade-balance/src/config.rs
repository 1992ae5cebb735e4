//! The balancer's configuration: a builder with documented defaults, validated on `build`.

use std::sync::Arc;
use std::time::Duration;

use palisade_core::ConfigError;

/// How a balancer balances; made with [`BalanceConfig::builder`].
#[derive(Debug, Clone)]
pub struct BalanceConfig {
    pub(crate) name: Arc<str>,
    pub(crate) default_rtt: Duration,
    pub(crate) decay: Duration,
    pub(crate) failure_penalty: Duration,
    pub(crate) no_ready_timeout: Duration,
}

impl BalanceConfig {
    /// A builder that starts from the defaults.
    pub fn builder() -> BalanceConfigBuilder {
        BalanceConfigBuilder {
            config: BalanceConfig {
                name: Arc::from("default"),
                default_rtt: Duration::from_millis(30),
                decay: Duration::from_secs(10),
                failure_penalty: Duration::from_secs(1),
                no_ready_timeout: Duration::from_secs(1),
            },
        }
    }
}

/// Builds a [`BalanceConfig`]. Every setting has a default, given with its source.
///
/// | setting | default | from |
/// |---|---|---|
/// | [`default_rtt`](Self::default_rtt) | 30 ms | tower's and Finagle's usual starting estimate |
/// | [`decay`](Self::decay) | 10 s | Finagle's peak-EWMA decay |
/// | [`failure_penalty`](Self::failure_penalty) | 1 s | Linkerd charges failures a penalty latency |
/// | [`no_ready_timeout`](Self::no_ready_timeout) | 1 s | tower waits forever; a caller should not |
#[derive(Debug, Clone)]
pub struct BalanceConfigBuilder {
    config: BalanceConfig,
}

impl BalanceConfigBuilder {
    /// Names the balancer in its metrics and events.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.config.name = name.into();
        self
    }

    /// The latency estimate of an endpoint before its first answer.
    pub fn default_rtt(mut self, rtt: Duration) -> Self {
        self.config.default_rtt = rtt;
        self
    }

    /// How fast an endpoint's latency estimate forgets (the EWMA's time constant).
    pub fn decay(mut self, decay: Duration) -> Self {
        self.config.decay = decay;
        self
    }

    /// The latency a failed request counts as (at least its real one).
    pub fn failure_penalty(mut self, penalty: Duration) -> Self {
        self.config.failure_penalty = penalty;
        self
    }

    /// How long `poll_ready` waits for an endpoint to be ready before the next call fails
    /// with [`NoReadyEndpoints`](crate::NoReadyEndpoints).
    pub fn no_ready_timeout(mut self, timeout: Duration) -> Self {
        self.config.no_ready_timeout = timeout;
        self
    }

    /// Checks every setting and returns the configuration, or the first bad setting.
    pub fn build(self) -> Result<BalanceConfig, ConfigError> {
        let c = &self.config;
        if c.default_rtt.is_zero() {
            return Err(ConfigError::new("default_rtt", "must be longer than zero"));
        }
        if c.decay.is_zero() {
            return Err(ConfigError::new("decay", "must be longer than zero"));
        }
        if c.no_ready_timeout.is_zero() {
            return Err(ConfigError::new(
                "no_ready_timeout",
                "must be longer than zero",
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
        let b = BalanceConfig::builder;
        let field = |b: BalanceConfigBuilder| b.build().unwrap_err().field();
        assert_eq!(field(b().default_rtt(Duration::ZERO)), "default_rtt");
        assert_eq!(field(b().decay(Duration::ZERO)), "decay");
        assert_eq!(
            field(b().no_ready_timeout(Duration::ZERO)),
            "no_ready_timeout"
        );
        b().build().unwrap();
    }
}
