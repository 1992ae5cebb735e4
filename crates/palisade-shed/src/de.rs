//! A [`ShedConfig`] read from a file (feature `serde`): the builder's settings under the
//! builder's names, every one but `name` optional, durations in a human form, `false` for no
//! queue, unknown fields refused, and the builder's validation.
//!
//! ```toml
//! name = "api"
//! limit = { gradient = { min = 4, initial = 40, max = 1000, tolerance = 1.5 } }
//! # or: limit = { aimd = { min = 4, initial = 20, max = 200, threshold = "50ms", backoff = 0.9 } }
//! # or: limit = { fixed = 64 }
//! queue = { max_len = 128, target = "5ms", interval = "100ms", lifo_under_backlog = true }  # or false
//! shares = { default = 0.9, sheddable = 0.5 }
//! retry_after = "1s"
//! ```

use std::time::Duration;

use palisade_core::ConfigError;
use palisade_core::de::{OrOff, duration, option_duration, refused};
use serde::{Deserialize, Deserializer};

use crate::config::{Queue, ShedConfig, ShedConfigBuilder};
use crate::limit::{Aimd, Fixed, Gradient, Limit, LimitConfig};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    limit: Option<LimitFile>,
    queue: Option<OrOff<QueueFile>>,
    shares: Option<Shares>,
    #[serde(default, deserialize_with = "option_duration")]
    retry_after: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum LimitFile {
    Fixed(usize),
    Aimd(AimdFile),
    Gradient(GradientFile),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AimdFile {
    min: usize,
    initial: usize,
    max: usize,
    #[serde(deserialize_with = "duration")]
    threshold: Duration,
    backoff: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GradientFile {
    min: Option<usize>,
    initial: Option<usize>,
    max: Option<usize>,
    tolerance: Option<f64>,
    #[serde(default, deserialize_with = "option_duration")]
    min_rtt_interval: Option<Duration>,
    #[serde(default, deserialize_with = "option_duration")]
    window: Option<Duration>,
    jitter_seed: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueFile {
    max_len: Option<usize>,
    #[serde(default, deserialize_with = "option_duration")]
    target: Option<Duration>,
    #[serde(default, deserialize_with = "option_duration")]
    interval: Option<Duration>,
    lifo_under_backlog: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Shares {
    default: f64,
    sheddable: f64,
}

impl LimitFile {
    fn config(self) -> Result<LimitConfig, ConfigError> {
        Ok(match self {
            LimitFile::Fixed(n) => Fixed(n).into(),
            LimitFile::Aimd(a) => {
                let mut aimd = Aimd::new(a.min, a.initial, a.max, a.threshold)?;
                if let Some(factor) = a.backoff {
                    aimd = aimd.backoff(factor)?;
                }
                aimd.into()
            }
            LimitFile::Gradient(g) => {
                let defaults = Gradient::default();
                let (min, max) = defaults.bounds();
                let mut gradient = Gradient::new(
                    g.min.unwrap_or(min),
                    g.initial.unwrap_or(defaults.initial()),
                    g.max.unwrap_or(max),
                )?;
                if let Some(tolerance) = g.tolerance {
                    gradient = gradient.tolerance(tolerance)?;
                }
                if let Some(interval) = g.min_rtt_interval {
                    gradient = gradient.min_rtt_interval(interval)?;
                }
                if let Some(window) = g.window {
                    gradient = gradient.window(window)?;
                }
                if let Some(seed) = g.jitter_seed {
                    gradient = gradient.jitter_seed(seed);
                }
                gradient.into()
            }
        })
    }
}

impl File {
    fn builder(self) -> Result<ShedConfigBuilder, ConfigError> {
        let mut b = ShedConfig::builder(self.name);
        if let Some(limit) = self.limit {
            b = b.limit(limit.config()?);
        }
        b = match self.queue {
            Some(OrOff::Off) => b.no_queue(),
            Some(OrOff::On(q)) => {
                let defaults = Queue::default();
                b.queue(Queue {
                    max_len: q.max_len.unwrap_or(defaults.max_len),
                    target: q.target.unwrap_or(defaults.target),
                    interval: q.interval.unwrap_or(defaults.interval),
                    lifo_under_backlog: q.lifo_under_backlog.unwrap_or(defaults.lifo_under_backlog),
                })
            }
            None => b,
        };
        if let Some(shares) = self.shares {
            b = b.shares(shares.default, shares.sheddable);
        }
        if let Some(after) = self.retry_after {
            b = b.retry_after(after);
        }
        Ok(b)
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de> Deserialize<'de> for ShedConfig {
    /// The settings of [`ShedConfigBuilder`], by its methods' names; `name` is required.
    /// See [the module](crate::de) for the form.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        File::deserialize(deserializer)?
            .builder()
            .and_then(ShedConfigBuilder::build)
            .map_err(refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<ShedConfig, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn every_setting_reads_as_the_builder_sets_it() {
        let config = read(
            r#"{"name": "api", "limit": {"gradient": {"max": 500, "tolerance": 2.0, "jitter_seed": 1}},
                "queue": {"max_len": 16}, "shares": {"default": 0.8, "sheddable": 0.4},
                "retry_after": "2s"}"#,
        )
        .unwrap();
        let built = ShedConfig::builder("api")
            .limit(
                Gradient::new(4, 40, 500)
                    .unwrap()
                    .tolerance(2.0)
                    .unwrap()
                    .jitter_seed(1),
            )
            .queue(Queue {
                max_len: 16,
                ..Queue::default()
            })
            .shares(0.8, 0.4)
            .retry_after(Duration::from_secs(2))
            .build()
            .unwrap();
        assert_eq!(format!("{config:?}"), format!("{built:?}"));
        let fixed = read(r#"{"name": "api", "limit": {"fixed": 8}, "queue": false}"#).unwrap();
        assert_eq!(fixed.queue, None);
        let aimd = r#"{"name": "api", "limit": {"aimd": {"min": 1, "initial": 5, "max": 10, "threshold": "50ms"}}}"#;
        read(aimd).unwrap();
    }

    #[test]
    fn bad_settings_name_their_field() {
        let err = |json: &str| read(json).unwrap_err();
        assert!(err(r#"{"name": "a", "limit": {"gradient": {"min": 0}}}"#).contains("`limit.min`"));
        assert!(
            err(r#"{"name": "a", "shares": {"default": 2, "sheddable": 0.5}}"#)
                .contains("`shares.default`")
        );
        assert!(err(r#"{"name": "a", "queue": {"max_len": 0}}"#).contains("`queue.max_len`"));
        assert!(err(r#"{"name": "a", "limit": {"vegas": 3}}"#).contains("unknown variant `vegas`"));
        assert!(err(r#"{"name": "a", "queue": true}"#).contains("false"));
    }
}
