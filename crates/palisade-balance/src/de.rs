//! A [`BalanceConfig`] read from a file (feature `serde`): the builder's settings under the
//! builder's names, every one but `name` optional, durations in a human form, unknown fields
//! refused, and the builder's validation.
//!
//! ```toml
//! name = "inventory"
//! default_rtt = "30ms"
//! decay = "10s"
//! failure_penalty = "1s"
//! no_ready_timeout = "1s"
//! max_hint = "30s"
//! max_ejected_share = 0.5
//! load = "peak_ewma"            # or "pending_requests"
//! endpoint_metrics = false
//! slow_start = { window = "30s", aggression = 1.0, min_weight = 0.1 }   # off unless given
//! # The timing of the probes given with `Balance::probe`; every field but `interval` optional.
//! health_check = { interval = "5s", unhealthy_interval = "1s", jitter = 0.1, timeout = "1s",
//!                  unhealthy_threshold = 3, healthy_threshold = 2, start_ready = false,
//!                  max_concurrent = 16 }
//! # A breaker's settings, on top of the default ejection (5 failures in a row, 5 s to 60 s);
//! # or `ejection = false`.
//! ejection = { consecutive_failures = 3, open_duration = { initial = "2s", max = "30s" } }
//! ```

use std::time::Duration;

use palisade_breaker::BreakerConfig;
use palisade_core::de::{OrOff, option_duration, refused};
use serde::{Deserialize, Deserializer};

use crate::config::{BalanceConfig, BalanceConfigBuilder, default_ejection_builder};
use crate::health::HealthCheck;
use crate::load::LoadMetric;
use crate::slow_start::SlowStart;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    #[serde(default, deserialize_with = "option_duration")]
    default_rtt: Option<Duration>,
    #[serde(default, deserialize_with = "option_duration")]
    decay: Option<Duration>,
    #[serde(default, deserialize_with = "option_duration")]
    failure_penalty: Option<Duration>,
    #[serde(default, deserialize_with = "option_duration")]
    no_ready_timeout: Option<Duration>,
    ejection: Option<OrOff<Ejection>>,
    #[serde(default, deserialize_with = "option_duration")]
    max_hint: Option<Duration>,
    max_ejected_share: Option<f64>,
    load: Option<LoadFile>,
    endpoint_metrics: Option<bool>,
    slow_start: Option<SlowStartFile>,
    health_check: Option<HealthCheckFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlowStartFile {
    #[serde(deserialize_with = "palisade_core::de::duration")]
    window: Duration,
    aggression: Option<f64>,
    min_weight: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthCheckFile {
    #[serde(deserialize_with = "palisade_core::de::duration")]
    interval: Duration,
    #[serde(default, deserialize_with = "option_duration")]
    unhealthy_interval: Option<Duration>,
    jitter: Option<f64>,
    #[serde(default, deserialize_with = "option_duration")]
    timeout: Option<Duration>,
    unhealthy_threshold: Option<u32>,
    healthy_threshold: Option<u32>,
    start_ready: Option<bool>,
    max_concurrent: Option<usize>,
}

impl HealthCheckFile {
    fn check(self) -> HealthCheck {
        let mut check = HealthCheck::new(self.interval);
        if let Some(interval) = self.unhealthy_interval {
            check = check.unhealthy_interval(interval);
        }
        if let Some(share) = self.jitter {
            check = check.jitter(share);
        }
        if let Some(timeout) = self.timeout {
            check = check.timeout(timeout);
        }
        if let Some(n) = self.unhealthy_threshold {
            check = check.unhealthy_threshold(n);
        }
        if let Some(n) = self.healthy_threshold {
            check = check.healthy_threshold(n);
        }
        if let Some(ready) = self.start_ready {
            check = check.start_ready(ready);
        }
        if let Some(n) = self.max_concurrent {
            check = check.max_concurrent(n);
        }
        check
    }
}

/// A breaker's settings on top of the default ejection's.
struct Ejection(BreakerConfig);

impl<'de> Deserialize<'de> for Ejection {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        palisade_breaker::de::deserialize_onto(deserializer, default_ejection_builder())
            .map(Ejection)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum LoadFile {
    PeakEwma,
    PendingRequests,
}

impl File {
    fn builder(self) -> BalanceConfigBuilder {
        let mut b = BalanceConfig::builder(self.name);
        if let Some(rtt) = self.default_rtt {
            b = b.default_rtt(rtt);
        }
        if let Some(decay) = self.decay {
            b = b.decay(decay);
        }
        if let Some(penalty) = self.failure_penalty {
            b = b.failure_penalty(penalty);
        }
        if let Some(timeout) = self.no_ready_timeout {
            b = b.no_ready_timeout(timeout);
        }
        b = match self.ejection {
            Some(OrOff::On(Ejection(breaker))) => b.ejection(breaker),
            Some(OrOff::Off) => b.no_ejection(),
            None => b,
        };
        if let Some(max) = self.max_hint {
            b = b.max_hint(max);
        }
        if let Some(share) = self.max_ejected_share {
            b = b.max_ejected_share(share);
        }
        if let Some(load) = self.load {
            b = b.load(match load {
                LoadFile::PeakEwma => LoadMetric::PeakEwma,
                LoadFile::PendingRequests => LoadMetric::PendingRequests,
            });
        }
        if let Some(on) = self.endpoint_metrics {
            b = b.endpoint_metrics(on);
        }
        if let Some(file) = self.slow_start {
            let mut slow_start = SlowStart::new(file.window);
            if let Some(aggression) = file.aggression {
                slow_start = slow_start.aggression(aggression);
            }
            if let Some(share) = file.min_weight {
                slow_start = slow_start.min_weight(share);
            }
            b = b.slow_start(slow_start);
        }
        if let Some(file) = self.health_check {
            b = b.health_check(file.check());
        }
        b
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de> Deserialize<'de> for BalanceConfig {
    /// The settings of [`BalanceConfigBuilder`], by its methods' names; `name` is required.
    /// See [the module](crate::de) for the form.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        File::deserialize(deserializer)?
            .builder()
            .build()
            .map_err(refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<BalanceConfig, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn every_setting_reads_as_the_builder_sets_it() {
        let config = read(
            r#"{"name": "inventory", "default_rtt": "20ms", "decay": "5s",
                "failure_penalty": "2s", "no_ready_timeout": "500ms", "max_hint": "10s",
                "max_ejected_share": 0.3, "load": "pending_requests", "endpoint_metrics": true,
                "ejection": {"consecutive_failures": 3},
                "slow_start": {"window": "30s", "aggression": 2.0, "min_weight": 0.2},
                "health_check": {"interval": "10s", "unhealthy_interval": "2s", "jitter": 0.2,
                    "timeout": "500ms", "unhealthy_threshold": 2, "healthy_threshold": 3,
                    "start_ready": true, "max_concurrent": 4}}"#,
        )
        .unwrap();
        let built = BalanceConfig::builder("inventory")
            .default_rtt(Duration::from_millis(20))
            .decay(Duration::from_secs(5))
            .failure_penalty(Duration::from_secs(2))
            .no_ready_timeout(Duration::from_millis(500))
            .max_hint(Duration::from_secs(10))
            .max_ejected_share(0.3)
            .load(LoadMetric::PendingRequests)
            .endpoint_metrics(true)
            .slow_start(
                SlowStart::new(Duration::from_secs(30))
                    .aggression(2.0)
                    .min_weight(0.2),
            )
            .health_check(
                HealthCheck::new(Duration::from_secs(10))
                    .unhealthy_interval(Duration::from_secs(2))
                    .jitter(0.2)
                    .timeout(Duration::from_millis(500))
                    .unhealthy_threshold(2)
                    .healthy_threshold(3)
                    .start_ready(true)
                    .max_concurrent(4),
            )
            .ejection(
                default_ejection_builder()
                    .consecutive_failures(3)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        assert_eq!(format!("{config:?}"), format!("{built:?}"));
        let off = read(r#"{"name": "inventory", "ejection": false}"#).unwrap();
        assert!(off.ejection.is_none());
    }

    #[test]
    fn bad_settings_name_their_field() {
        let err = |json: &str| read(json).unwrap_err();
        assert!(err(r#"{"name": "a", "max_ejected_share": 2}"#).contains("`max_ejected_share`"));
        assert!(
            err(r#"{"name": "a", "ejection": {"half_open_probes": 0}}"#)
                .contains("`half_open_probes`")
        );
        assert!(err(r#"{"name": "a", "load": "random"}"#).contains("unknown variant `random`"));
        assert!(
            err(r#"{"name": "a", "slow_start": {"window": "0s"}}"#).contains("`slow_start.window`")
        );
        assert!(
            err(r#"{"name": "a", "health_check": {"interval": "5s", "jitter": 2}}"#)
                .contains("`health_check.jitter`")
        );
    }
}
