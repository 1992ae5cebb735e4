//! A budget as settings: what a [`RetryConfig`](crate::RetryConfig) holds, and each layer
//! turns into a live budget of its own when it is made.

use std::sync::Arc;
use std::time::Duration;

use palisade_core::ConfigError;

use super::{Budget, PercentBudget, ThrottledBudget, TokenBudget};

/// Which budget a retry layer makes, and with what settings.
///
/// A value like the rest of the configuration: cloning a [`RetryConfig`](crate::RetryConfig)
/// and making two layers from it gives two independent budgets. To bound several layers by
/// one budget, make it once and hand it to each layer
/// ([`RetryLayer::with_budget`](crate::RetryLayer::with_budget)).
///
/// ```
/// use std::time::Duration;
/// use palisade_retry::budget::BudgetConfig;
///
/// let gentle = BudgetConfig::Percent {
///     ttl: Duration::from_secs(10),
///     min_per_sec: 1,
///     percent: 0.1,
/// };
/// assert!(matches!(BudgetConfig::default(), BudgetConfig::Throttled { percent: 0.2, .. }));
/// # let _ = gentle;
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum BudgetConfig {
    /// A [`PercentBudget`]: retries at most `percent` of the requests of the last `ttl`, plus
    /// `min_per_sec` a second.
    Percent {
        /// How far back requests are counted (1 s to 60 s).
        ttl: Duration,
        /// Retries a second always allowed.
        min_per_sec: u32,
        /// The share of recent requests that may be retried, as a ratio (0.2 is 20 %).
        percent: f64,
    },
    /// A [`TokenBudget`]: gRPC's `retryThrottling`.
    Tokens {
        /// The bucket's size (above 0, at most 1000).
        max_tokens: f64,
        /// What a success gives back (above 0, at most 1).
        token_ratio: f64,
    },
    /// A [`ThrottledBudget`]: the percentage, while the token bucket allows any retry.
    Throttled {
        /// How far back requests are counted (1 s to 60 s).
        ttl: Duration,
        /// Retries a second always allowed, while the bucket allows any.
        min_per_sec: u32,
        /// The share of recent requests that may be retried, as a ratio (0.2 is 20 %).
        percent: f64,
        /// The bucket's size (above 0, at most 1000).
        max_tokens: f64,
        /// What a success gives back (above 0, at most 1).
        token_ratio: f64,
    },
}

/// Finagle's percentage: 20 % of the last 10 s, plus 10 retries a second.
const TTL: Duration = Duration::from_secs(10);
const MIN_PER_SEC: u32 = 10;
const PERCENT: f64 = 0.2;
/// The default throttle: retries stop after 50 failed attempts in a row of an outage, and
/// while more than a third of attempts fail (a success gives back half a token).
const MAX_TOKENS: f64 = 100.0;
const TOKEN_RATIO: f64 = 0.5;

impl Default for BudgetConfig {
    /// Finagle's 20 % of the last 10 s plus 10 retries a second, throttled as gRPC throttles:
    /// a bucket of 100 tokens, a failed attempt takes one, a success gives back half of
    /// one, and retries stop while half the bucket or less is left.
    fn default() -> Self {
        Self::Throttled {
            ttl: TTL,
            min_per_sec: MIN_PER_SEC,
            percent: PERCENT,
            max_tokens: MAX_TOKENS,
            token_ratio: TOKEN_RATIO,
        }
    }
}

impl BudgetConfig {
    /// `percent` of the last 10 s of requests, plus 10 retries a second, unthrottled.
    pub fn percent(percent: f64) -> Self {
        Self::percent_or_defaults(None, None, Some(percent))
    }

    /// A percentage budget with the defaults for what is not given.
    pub(crate) fn percent_or_defaults(
        ttl: Option<Duration>,
        min_per_sec: Option<u32>,
        percent: Option<f64>,
    ) -> Self {
        Self::Percent {
            ttl: ttl.unwrap_or(TTL),
            min_per_sec: min_per_sec.unwrap_or(MIN_PER_SEC),
            percent: percent.unwrap_or(PERCENT),
        }
    }

    /// A live budget with these settings, or the setting that is out of range.
    pub fn build(&self) -> Result<Arc<dyn Budget>, ConfigError> {
        Ok(match *self {
            Self::Percent {
                ttl,
                min_per_sec,
                percent,
            } => Arc::new(PercentBudget::new(ttl, min_per_sec, percent)?),
            Self::Tokens {
                max_tokens,
                token_ratio,
            } => Arc::new(TokenBudget::new(max_tokens, token_ratio)?),
            Self::Throttled {
                ttl,
                min_per_sec,
                percent,
                max_tokens,
                token_ratio,
            } => Arc::new(ThrottledBudget::new(
                PercentBudget::new(ttl, min_per_sec, percent)?,
                TokenBudget::new(max_tokens, token_ratio)?,
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_build_is_a_budget_of_its_own() {
        let config = BudgetConfig::Percent {
            ttl: Duration::from_secs(10),
            min_per_sec: 0,
            percent: 0.5,
        };
        let (a, b) = (config.build().unwrap(), config.build().unwrap());
        a.deposit();
        a.deposit();
        assert!(a.withdraw());
        assert!(!b.withdraw(), "b saw none of a's requests");
    }

    #[test]
    fn bad_settings_name_their_field() {
        let err = |c: BudgetConfig| c.build().err().unwrap().field().to_owned();
        assert_eq!(err(BudgetConfig::percent(11.0)), "budget.percent");
        let tokens = BudgetConfig::Tokens {
            max_tokens: 0.0,
            token_ratio: 0.1,
        };
        assert_eq!(err(tokens), "budget.max_tokens");
    }
}
