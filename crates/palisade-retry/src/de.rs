//! A [`RetryConfig`] read from a file (feature `serde`): the builder's settings under the
//! builder's names, every one but `name` optional, durations in a human form, unknown fields
//! refused, and the builder's validation.
//!
//! ```toml
//! name = "orders"
//! max_attempts = 3
//! attempt_timeout = "500ms"
//! deadline = "2s"
//! backoff = { base = "25ms", cap = "250ms", multiplier = 2.0, jitter = "full" }  # jitter: none, full, equal, decorrelated
//! max_hint = "30s"
//! budget = { percent = 0.2, ttl = "10s", min_per_sec = 10 }   # or { max_tokens = 100, token_ratio = 0.1 },
//!                                                              # or both: the percentage, throttled
//! replay_limit = 65536
//! idempotency_keys = true
//! hedge = { percentile = 0.95, floor = "1ms", cap = "1s", max_extra_load = 0.1 }  # or { delay = "20ms" }
//! ```

use std::time::Duration;

use palisade_core::ConfigError;
use palisade_core::de::{duration, option_duration, refused};
use serde::{Deserialize, Deserializer};

use crate::backoff::{Backoff, Jitter};
use crate::budget::BudgetConfig;
use crate::config::{RetryConfig, RetryConfigBuilder};
use crate::hedge::Hedge;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    max_attempts: Option<u32>,
    #[serde(default, deserialize_with = "option_duration")]
    attempt_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "option_duration")]
    deadline: Option<Duration>,
    backoff: Option<BackoffFile>,
    #[serde(default, deserialize_with = "option_duration")]
    max_hint: Option<Duration>,
    budget: Option<BudgetFile>,
    replay_limit: Option<usize>,
    idempotency_keys: Option<bool>,
    jitter_seed: Option<u64>,
    hedge: Option<HedgeFile>,
}

/// A fixed delay, or a percentile with its bounds.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HedgeFile {
    #[serde(default, deserialize_with = "option_duration")]
    delay: Option<Duration>,
    percentile: Option<f64>,
    #[serde(default, deserialize_with = "option_duration")]
    floor: Option<Duration>,
    #[serde(default, deserialize_with = "option_duration")]
    cap: Option<Duration>,
    max_extra_load: Option<f64>,
}

impl HedgeFile {
    fn hedge(self) -> Result<Hedge, ConfigError> {
        let hedge = self.delay_of()?;
        Ok(match self.max_extra_load {
            Some(share) => hedge.max_extra_load(share),
            None => hedge,
        })
    }

    fn delay_of(&self) -> Result<Hedge, ConfigError> {
        match (self.delay, self.percentile) {
            (Some(delay), None) if self.floor.is_none() && self.cap.is_none() => {
                Ok(Hedge::after(delay))
            }
            (None, Some(percentile)) => {
                let mut hedge = Hedge::at_percentile(percentile);
                if let Some(floor) = self.floor {
                    hedge = hedge.floor(floor);
                }
                if let Some(cap) = self.cap {
                    hedge = hedge.cap(cap);
                }
                Ok(hedge)
            }
            _ => Err(ConfigError::new(
                "hedge",
                "either a fixed `delay`, or a `percentile` (with an optional `floor` and `cap`)",
            )),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackoffFile {
    #[serde(deserialize_with = "duration")]
    base: Duration,
    #[serde(deserialize_with = "duration")]
    cap: Duration,
    multiplier: Option<f64>,
    jitter: Option<JitterFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum JitterFile {
    None,
    Full,
    Equal,
    Decorrelated,
}

/// A budget's settings; which budget is said by the fields given.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetFile {
    percent: Option<f64>,
    #[serde(default, deserialize_with = "option_duration")]
    ttl: Option<Duration>,
    min_per_sec: Option<u32>,
    max_tokens: Option<f64>,
    token_ratio: Option<f64>,
}

impl BudgetFile {
    /// The token bucket's two settings, both needed.
    fn tokens(&self) -> Result<(f64, f64), ConfigError> {
        match (self.max_tokens, self.token_ratio) {
            (Some(max_tokens), Some(token_ratio)) => Ok((max_tokens, token_ratio)),
            _ => Err(ConfigError::new(
                "budget",
                "a token bucket needs both max_tokens and token_ratio",
            )),
        }
    }

    /// A percentage (`percent`, `ttl`, `min_per_sec`), tokens (`max_tokens`,
    /// `token_ratio`), or both: the percentage throttled by the tokens.
    fn config(self) -> Result<BudgetConfig, ConfigError> {
        let percent = self.percent.is_some() || self.ttl.is_some() || self.min_per_sec.is_some();
        let tokens = self.max_tokens.is_some() || self.token_ratio.is_some();
        match (percent, tokens) {
            (_, false) => Ok(BudgetConfig::percent_or_defaults(
                self.ttl,
                self.min_per_sec,
                self.percent,
            )),
            (false, true) => {
                let (max_tokens, token_ratio) = self.tokens()?;
                Ok(BudgetConfig::Tokens {
                    max_tokens,
                    token_ratio,
                })
            }
            (true, true) => {
                let (max_tokens, token_ratio) = self.tokens()?;
                let BudgetConfig::Percent {
                    ttl,
                    min_per_sec,
                    percent,
                } = BudgetConfig::percent_or_defaults(self.ttl, self.min_per_sec, self.percent)
                else {
                    unreachable!("percent_or_defaults makes a percentage")
                };
                Ok(BudgetConfig::Throttled {
                    ttl,
                    min_per_sec,
                    percent,
                    max_tokens,
                    token_ratio,
                })
            }
        }
    }
}

impl File {
    fn builder(self) -> Result<RetryConfigBuilder, ConfigError> {
        let mut b = RetryConfig::builder(self.name);
        if let Some(n) = self.max_attempts {
            b = b.max_attempts(n);
        }
        if let Some(t) = self.attempt_timeout {
            b = b.attempt_timeout(t);
        }
        if let Some(d) = self.deadline {
            b = b.deadline(d);
        }
        if let Some(backoff) = self.backoff {
            let jitter = match backoff.jitter.unwrap_or(JitterFile::Full) {
                JitterFile::None => Jitter::None,
                JitterFile::Full => Jitter::Full,
                JitterFile::Equal => Jitter::Equal,
                JitterFile::Decorrelated => Jitter::Decorrelated,
            };
            let mut made = Backoff::exponential(backoff.base, backoff.cap).jitter(jitter);
            if let Some(multiplier) = backoff.multiplier {
                made = made.multiplier(multiplier);
            }
            b = b.backoff(made);
        }
        if let Some(max) = self.max_hint {
            b = b.max_hint(max);
        }
        if let Some(budget) = self.budget {
            b = b.budget(budget.config()?);
        }
        if let Some(limit) = self.replay_limit {
            b = b.replay_limit(limit);
        }
        if let Some(on) = self.idempotency_keys {
            b = b.idempotency_keys(on);
        }
        if let Some(seed) = self.jitter_seed {
            b = b.jitter_seed(seed);
        }
        if let Some(hedge) = self.hedge {
            b = b.hedge(hedge.hedge()?);
        }
        Ok(b)
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de> Deserialize<'de> for RetryConfig {
    /// The settings of [`RetryConfigBuilder`], by its methods' names; `name` is required.
    /// See [the module](crate::de) for the form.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        File::deserialize(deserializer)?
            .builder()
            .and_then(RetryConfigBuilder::build)
            .map_err(refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<RetryConfig, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn every_setting_reads_as_the_builder_sets_it() {
        let config = read(
            r#"{"name": "orders", "max_attempts": 4, "attempt_timeout": "500ms",
                "deadline": "2s", "backoff": {"base": "10ms", "cap": "1s", "jitter": "equal"},
                "max_hint": "5s", "budget": {"percent": 0.1}, "replay_limit": 1024,
                "idempotency_keys": true, "jitter_seed": 3,
                "hedge": {"percentile": 0.9, "floor": "2ms", "cap": "300ms"}}"#,
        )
        .unwrap();
        let built = RetryConfig::builder("orders")
            .max_attempts(4)
            .attempt_timeout(Duration::from_millis(500))
            .deadline(Duration::from_secs(2))
            .backoff(
                Backoff::exponential(Duration::from_millis(10), Duration::from_secs(1))
                    .jitter(Jitter::Equal),
            )
            .max_hint(Duration::from_secs(5))
            .budget(BudgetConfig::percent(0.1))
            .replay_limit(1024)
            .idempotency_keys(true)
            .jitter_seed(3)
            .hedge(
                Hedge::at_percentile(0.9)
                    .floor(Duration::from_millis(2))
                    .cap(Duration::from_millis(300)),
            )
            .build()
            .unwrap();
        assert_eq!(config, built);
        let tokens = read(r#"{"name": "a", "budget": {"max_tokens": 10, "token_ratio": 0.1}}"#);
        assert_eq!(
            tokens.unwrap().budget,
            BudgetConfig::Tokens {
                max_tokens: 10.0,
                token_ratio: 0.1
            }
        );
        let both = read(
            r#"{"name": "a", "budget": {"percent": 0.1, "max_tokens": 100, "token_ratio": 0.5}}"#,
        );
        assert_eq!(
            both.unwrap().budget,
            BudgetConfig::Throttled {
                ttl: Duration::from_secs(10),
                min_per_sec: 10,
                percent: 0.1,
                max_tokens: 100.0,
                token_ratio: 0.5
            }
        );
    }

    #[test]
    fn bad_settings_name_their_field() {
        let err = |json: &str| read(json).unwrap_err();
        assert!(err(r#"{"name": "a", "budget": {"percent": 20}}"#).contains("`budget.percent`"));
        assert!(
            err(r#"{"name": "a", "budget": {"percent": 0.2, "max_tokens": 3}}"#)
                .contains("`budget`")
        );
        assert!(err(r#"{"name": "a", "max_attempts": 0}"#).contains("`max_attempts`"));
        assert!(err(r#"{"name": "a", "deadline": "soon"}"#).contains("soon"));
        assert!(err(r#"{"name": "a", "backoff": {"base": "1s"}}"#).contains("missing field `cap`"));
        assert!(err(r#"{"name": "a", "retries": 3}"#).contains("unknown field `retries`"));
        assert!(
            err(r#"{"name": "a", "hedge": {"delay": "5ms", "percentile": 0.9}}"#)
                .contains("`hedge`")
        );
        assert!(
            err(r#"{"name": "a", "hedge": {"percentile": 95}}"#).contains("`hedge.percentile`")
        );
        let fixed = read(r#"{"name": "a", "hedge": {"delay": "20ms"}}"#).unwrap();
        assert_eq!(fixed.hedge, Some(Hedge::after(Duration::from_millis(20))));
    }
}
