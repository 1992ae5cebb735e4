//! A [`BreakerConfig`] read from a file (feature `serde`): the builder's settings under the
//! builder's names, every one but `name` optional, durations in a human form, `false` to
//! turn a trip policy off, unknown fields refused, and the builder's validation.
//!
//! ```toml
//! name = "orders"
//! consecutive_failures = 5          # or false
//! failure_rate = 0.5                # or false
//! slow_calls = { rate = 0.8, threshold = "2s" }
//! window = { length = "10s", buckets = 10 }   # or { calls = 100 }
//! min_calls = 20
//! open_duration = { initial = "5s", max = "60s", multiplier = 2.0, jitter = 0.2 }  # or "30s"
//! half_open_probes = 3
//! successes_to_close = 3
//! ```

use std::time::Duration;

use palisade_core::ConfigError;
use palisade_core::de::{DurationOr, OrOff, duration, refused};
use serde::{Deserialize, Deserializer};

use crate::config::{BreakerConfig, BreakerConfigBuilder, OpenDuration};
use crate::window::Window;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: Option<String>,
    consecutive_failures: Option<OrOff<u32>>,
    failure_rate: Option<OrOff<f64>>,
    slow_calls: Option<SlowCalls>,
    window: Option<WindowFile>,
    min_calls: Option<u32>,
    open_duration: Option<DurationOr<Exponential>>,
    half_open_probes: Option<u32>,
    successes_to_close: Option<u32>,
    jitter_seed: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlowCalls {
    rate: f64,
    #[serde(deserialize_with = "duration")]
    threshold: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowFile {
    calls: Option<u32>,
    #[serde(default, deserialize_with = "palisade_core::de::option_duration")]
    length: Option<Duration>,
    buckets: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Exponential {
    #[serde(deserialize_with = "duration")]
    initial: Duration,
    #[serde(deserialize_with = "duration")]
    max: Duration,
    multiplier: Option<f64>,
    jitter: Option<f64>,
}

impl File {
    /// The settings given, on top of `builder`.
    fn onto(self, mut b: BreakerConfigBuilder) -> Result<BreakerConfigBuilder, ConfigError> {
        if let Some(name) = self.name {
            b = b.rename(name);
        }
        b = match self.consecutive_failures {
            Some(OrOff::On(n)) => b.consecutive_failures(n),
            Some(OrOff::Off) => b.no_consecutive_failures(),
            None => b,
        };
        b = match self.failure_rate {
            Some(OrOff::On(rate)) => b.failure_rate(rate),
            Some(OrOff::Off) => b.no_failure_rate(),
            None => b,
        };
        if let Some(slow) = self.slow_calls {
            b = b.slow_calls(slow.rate, slow.threshold);
        }
        if let Some(window) = self.window {
            b = b.window(match window {
                WindowFile {
                    calls: Some(calls),
                    length: None,
                    buckets: None,
                } => Window::Count(calls),
                WindowFile {
                    calls: None,
                    length: Some(length),
                    buckets,
                } => Window::Time {
                    length,
                    buckets: buckets.unwrap_or(10),
                },
                _ => {
                    return Err(ConfigError::new(
                        "window",
                        "is either { calls = n } or { length = \"10s\", buckets = n }",
                    ));
                }
            });
        }
        if let Some(n) = self.min_calls {
            b = b.min_calls(n);
        }
        if let Some(open) = self.open_duration {
            b = b.open_duration(match open {
                DurationOr::Duration(d) => OpenDuration::Fixed(d),
                DurationOr::Table(e) => OpenDuration::Exponential {
                    initial: e.initial,
                    max: e.max,
                    multiplier: e.multiplier.unwrap_or(2.0),
                    jitter: e.jitter.unwrap_or(0.2),
                },
            });
        }
        if let Some(n) = self.half_open_probes {
            b = b.half_open_probes(n);
        }
        if let Some(n) = self.successes_to_close {
            b = b.successes_to_close(n);
        }
        if let Some(seed) = self.jitter_seed {
            b = b.jitter_seed(seed);
        }
        Ok(b)
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de> Deserialize<'de> for BreakerConfig {
    /// The settings of [`BreakerConfigBuilder`], by its methods' names; `name` is required.
    /// See [the module](crate::de) for the form.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let file = File::deserialize(deserializer)?;
        let Some(name) = file.name.clone() else {
            return Err(serde::de::Error::missing_field("name"));
        };
        file.onto(BreakerConfig::builder(name))
            .and_then(BreakerConfigBuilder::build)
            .map_err(refused)
    }
}

/// A breaker's settings read on top of `base` — the defaults of a breaker that is part of
/// something else (a balancer's ejection), which has a name of its own unless the file
/// gives one.
#[doc(hidden)]
pub fn deserialize_onto<'de, D: Deserializer<'de>>(
    deserializer: D,
    base: BreakerConfigBuilder,
) -> Result<BreakerConfig, D::Error> {
    File::deserialize(deserializer)?
        .onto(base)
        .and_then(BreakerConfigBuilder::build)
        .map_err(refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<BreakerConfig, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn every_setting_reads_as_the_builder_sets_it() {
        let config = read(
            r#"{"name": "orders", "consecutive_failures": false, "failure_rate": 0.25,
                "slow_calls": {"rate": 0.8, "threshold": "2s"}, "window": {"calls": 50},
                "min_calls": 10, "open_duration": "30s", "half_open_probes": 2,
                "successes_to_close": 1, "jitter_seed": 7}"#,
        )
        .unwrap();
        let built = BreakerConfig::builder("orders")
            .no_consecutive_failures()
            .failure_rate(0.25)
            .slow_calls(0.8, Duration::from_secs(2))
            .window(Window::count(50))
            .min_calls(10)
            .open_duration(OpenDuration::fixed(Duration::from_secs(30)))
            .half_open_probes(2)
            .successes_to_close(1)
            .jitter_seed(7)
            .build()
            .unwrap();
        assert_eq!(format!("{config:?}"), format!("{built:?}"));
    }

    #[test]
    fn only_the_name_is_required() {
        let config = read(r#"{"name": "orders"}"#).unwrap();
        let defaults = BreakerConfig::builder("orders").build().unwrap();
        assert_eq!(format!("{config:?}"), format!("{defaults:?}"));
        assert!(read("{}").unwrap_err().contains("missing field `name`"));
    }

    #[test]
    fn bad_settings_are_refused_as_the_builder_refuses_them() {
        assert!(
            read(r#"{"name": "a", "failure_rate": 1.5}"#)
                .unwrap_err()
                .contains("`failure_rate`")
        );
        assert!(
            read(r#"{"name": "a", "open_duration": {"initial": "10s", "max": "1s"}}"#)
                .unwrap_err()
                .contains("`open_duration`")
        );
        assert!(
            read(r#"{"name": "a", "window": {"calls": 5, "length": "1s"}}"#)
                .unwrap_err()
                .contains("`window`")
        );
        assert!(
            read(r#"{"name": "a", "failure_rates": 0.5}"#)
                .unwrap_err()
                .contains("unknown field `failure_rates`")
        );
    }
}
