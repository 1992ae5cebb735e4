//! The balancer's configuration: a builder with documented defaults, validated on `build`.

use std::sync::Arc;
use std::time::Duration;

use palisade_breaker::{BreakerConfig, BreakerConfigBuilder, OpenDuration};
use palisade_core::ConfigError;

use crate::health::HealthCheck;
use crate::load::LoadMetric;
use crate::slow_start::SlowStart;

/// How a balancer balances; made with [`BalanceConfig::builder`].
#[derive(Debug, Clone)]
pub struct BalanceConfig {
    pub(crate) name: Arc<str>,
    pub(crate) default_rtt: Duration,
    pub(crate) decay: Duration,
    pub(crate) failure_penalty: Duration,
    pub(crate) no_ready_timeout: Duration,
    pub(crate) ejection: Option<BreakerConfig>,
    pub(crate) max_hint: Duration,
    pub(crate) max_ejected_share: f64,
    pub(crate) load: LoadMetric,
    pub(crate) endpoint_metrics: bool,
    pub(crate) slow_start: Option<SlowStart>,
    pub(crate) health_check: Option<HealthCheck>,
}

/// The default ejection: five failures in a row eject an endpoint for 5 s, doubling (with
/// ±20 % jitter) up to 60 s while its probe keeps failing; one successful probe restores it.
/// Renamed for each endpoint (`<balancer>:<endpoint>`), and silent: no series of its own.
pub(crate) fn default_ejection_builder() -> BreakerConfigBuilder {
    BreakerConfig::builder("ejection")
        .consecutive_failures(5)
        .no_failure_rate()
        .open_duration(OpenDuration::exponential(
            Duration::from_secs(5),
            Duration::from_secs(60),
        ))
        .half_open_probes(1)
        .successes_to_close(1)
}

fn default_ejection() -> BreakerConfig {
    default_ejection_builder()
        .build()
        .expect("the default ejection is valid")
}

impl BalanceConfig {
    /// A builder that starts from the defaults, for the balancer called `name`: the `name`
    /// label of its metrics and events. Give every balancer its own.
    pub fn builder(name: impl Into<Arc<str>>) -> BalanceConfigBuilder {
        BalanceConfigBuilder {
            config: BalanceConfig::defaults(name.into()),
        }
    }

    /// The balancer's name: the `name` label of its metrics and events.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The defaults under `name`.
    fn defaults(name: Arc<str>) -> Self {
        {
            BalanceConfig {
                name,
                default_rtt: Duration::from_millis(30),
                decay: Duration::from_secs(10),
                failure_penalty: Duration::from_secs(1),
                no_ready_timeout: Duration::from_secs(1),
                ejection: Some(default_ejection()),
                max_ejected_share: 0.5,
                max_hint: Duration::from_secs(30),
                load: LoadMetric::PeakEwma,
                endpoint_metrics: false,
                slow_start: None,
                health_check: None,
            }
        }
    }
}

impl From<&str> for BalanceConfig {
    /// The defaults, under this name: what `Balance::with_config(name)` uses.
    fn from(name: &str) -> Self {
        Self::defaults(Arc::from(name))
    }
}

impl From<String> for BalanceConfig {
    /// The defaults, under this name.
    fn from(name: String) -> Self {
        Self::defaults(Arc::from(name))
    }
}

impl From<Arc<str>> for BalanceConfig {
    /// The defaults, under this name.
    fn from(name: Arc<str>) -> Self {
        Self::defaults(name)
    }
}

/// Builds a [`BalanceConfig`]. Every setting has a default, given with its source.
///
/// | setting | default | from |
/// |---|---|---|
/// | [`load`](Self::load) | failure-aware peak-EWMA | Finagle's and Linkerd's peak-EWMA, failures penalised |
/// | [`default_rtt`](Self::default_rtt) | 30 ms | tower's and Finagle's usual starting estimate |
/// | [`decay`](Self::decay) | 10 s | Finagle's peak-EWMA decay |
/// | [`failure_penalty`](Self::failure_penalty) | 1 s | Linkerd charges failures a penalty latency |
/// | [`no_ready_timeout`](Self::no_ready_timeout) | 1 s | tower waits forever; a caller should not |
/// | [`ejection`](Self::ejection) | 5 failures in a row; out 5 s doubling to 60 s, ±20 % | Envoy's `consecutive_5xx` 5; Linkerd's backoff |
/// | [`max_ejected_share`](Self::max_ejected_share) | 50 % | Envoy's panic threshold |
/// | [`max_hint`](Self::max_hint) | 30 s | as palisade-retry; Envoy caps `Retry-After` at 300 s |
/// | [`endpoint_metrics`](Self::endpoint_metrics) | off | Envoy keeps per-host figures out of its stats by default |
/// | [`slow_start`](Self::slow_start) | off: a new endpoint starts at `default_rtt` | Envoy's slow start is opt-in too |
/// | [`health_check`](Self::health_check) | every 5 s once a probe is given | Envoy and Kubernetes probe only when told how |
#[derive(Debug, Clone)]
pub struct BalanceConfigBuilder {
    config: BalanceConfig,
}

impl BalanceConfigBuilder {
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

    /// Ejects an endpoint from the rotation as `breaker` says: its `poll_ready` is `Pending`
    /// while its breaker (in gate mode) is open, and a probe restores it. The breaker's
    /// classifier is the balancer's.
    pub fn ejection(mut self, breaker: BreakerConfig) -> Self {
        self.config.ejection = Some(breaker);
        self
    }

    /// Never ejects an endpoint (the load still penalises failures).
    pub fn no_ejection(mut self) -> Self {
        self.config.ejection = None;
        self
    }

    /// The largest share of endpoints ejected at once (within 0..=1). An ejection beyond it
    /// is undone at once: the balancer keeps using every endpoint rather than pile all the
    /// traffic on the few left (Envoy's panic mode).
    pub fn max_ejected_share(mut self, share: f64) -> Self {
        self.config.max_ejected_share = share;
        self
    }

    /// The longest an endpoint's hint (`Retry-After`, `grpc-retry-pushback-ms`, read by the
    /// classifier) keeps traffic off it.
    pub fn max_hint(mut self, max: Duration) -> Self {
        self.config.max_hint = max;
        self
    }

    /// What to compare when picking the less loaded of two endpoints: the failure-aware
    /// peak-EWMA (the default) or the requests in flight.
    pub fn load(mut self, metric: LoadMetric) -> Self {
        self.config.load = metric;
        self
    }

    /// Counts the requests sent to each endpoint in `palisade_balance_requests_total`, with
    /// the endpoint as a label. Off by default: the `metrics` facade cannot delete a series,
    /// so each endpoint's series outlives it, and a fleet whose endpoints come and go (pods
    /// rescheduled, autoscaling) piles them up. Turn it on for a fixed fleet, or with an
    /// exporter that drops idle series.
    pub fn endpoint_metrics(mut self, on: bool) -> Self {
        self.config.endpoint_metrics = on;
        self
    }

    /// Ramps a new or returning endpoint's share up over a window (see [`SlowStart`]); a
    /// new endpoint then starts at the ready endpoints' mean latency estimate rather than
    /// at [`default_rtt`](Self::default_rtt).
    pub fn slow_start(mut self, slow_start: SlowStart) -> Self {
        self.config.slow_start = Some(slow_start);
        self
    }

    /// When and how often the endpoints are probed, and what the results mean, once a probe
    /// is given with [`Balance::probe`](crate::Balance::probe) (see [`health`](crate::health)).
    pub fn health_check(mut self, check: HealthCheck) -> Self {
        self.config.health_check = Some(check);
        self
    }

    /// Checks every setting and returns the configuration, or the first bad setting.
    pub fn build(self) -> Result<BalanceConfig, ConfigError> {
        let c = &self.config;
        if let Some(slow_start) = &c.slow_start {
            slow_start.validate()?;
        }
        if let Some(check) = &c.health_check {
            check.validate()?;
        }
        if c.default_rtt.is_zero() {
            return Err(ConfigError::new("default_rtt", "must be longer than zero"));
        }
        if c.decay.is_zero() {
            return Err(ConfigError::new("decay", "must be longer than zero"));
        }
        if !(0.0..=1.0).contains(&c.max_ejected_share) {
            return Err(ConfigError::new(
                "max_ejected_share",
                "must be within 0 and 1",
            ));
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
        let b = || BalanceConfig::builder("test");
        let field = |b: BalanceConfigBuilder| b.build().unwrap_err().field().to_owned();
        assert_eq!(field(b().default_rtt(Duration::ZERO)), "default_rtt");
        assert_eq!(field(b().decay(Duration::ZERO)), "decay");
        assert_eq!(
            field(b().no_ready_timeout(Duration::ZERO)),
            "no_ready_timeout"
        );
        b().build().unwrap();
    }
}
