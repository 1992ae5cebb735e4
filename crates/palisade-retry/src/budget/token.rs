//! gRPC's retry throttling: a token bucket that failures drain and successes refill.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use palisade_core::ConfigError;

use super::Budget;

/// Tokens are kept in thousandths, as gRPC specifies the ratio to three decimals.
const MILLI: f64 = 1000.0;

/// gRPC's `retryThrottling`: the bucket starts full at `max_tokens`; each failed attempt
/// takes one token, each success gives back `token_ratio`; retries are allowed only while
/// more than half the tokens are left.
///
/// Unlike [`PercentBudget`](super::PercentBudget) it reacts to outcomes rather than to
/// traffic: a client whose calls mostly fail stops retrying after `max_tokens / 2`
/// failures, whatever its request rate, and starts again once successes refill it.
///
/// ```
/// use palisade_retry::budget::{Budget, TokenBudget};
///
/// let budget = TokenBudget::new(10.0, 0.1).unwrap();
/// for _ in 0..5 {
///     assert!(budget.withdraw());
///     budget.record(true); // the attempt failed
/// }
/// assert!(!budget.withdraw(), "5 of 10 tokens left: no more retries");
/// ```
#[derive(Debug)]
pub struct TokenBudget {
    max: u64,
    ratio: u64,
    tokens: AtomicU64,
}

impl TokenBudget {
    /// A bucket of `max_tokens` (above 0, at most 1000) refilled by `token_ratio` (above 0,
    /// at most 1) per success — gRPC's limits for both.
    pub fn new(max_tokens: f64, token_ratio: f64) -> Result<Self, ConfigError> {
        if !(max_tokens > 0.0 && max_tokens <= 1000.0) {
            return Err(ConfigError::new(
                "budget.max_tokens",
                "must be above 0 and at most 1000",
            ));
        }
        if !(token_ratio > 0.0 && token_ratio <= 1.0) {
            return Err(ConfigError::new(
                "budget.token_ratio",
                "must be above 0 and at most 1",
            ));
        }
        let max = (max_tokens * MILLI) as u64;
        Ok(Self {
            max,
            ratio: ((token_ratio * MILLI) as u64).max(1),
            tokens: AtomicU64::new(max),
        })
    }

    /// The tokens left.
    pub fn tokens(&self) -> f64 {
        self.tokens.load(Relaxed) as f64 / MILLI
    }
}

impl Budget for TokenBudget {
    fn deposit(&self) {}

    fn withdraw(&self) -> bool {
        self.tokens.load(Relaxed) * 2 > self.max
    }

    fn record(&self, failed: bool) {
        // Most attempts succeed into a full bucket: a load, not a write every thread's core
        // must take the line for.
        if !failed && self.tokens.load(Relaxed) >= self.max {
            return;
        }
        let _ = self.tokens.fetch_update(Relaxed, Relaxed, |t| {
            Some(if failed {
                t.saturating_sub(MILLI as u64)
            } else {
                (t + self.ratio).min(self.max)
            })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_drain_and_successes_refill() {
        let budget = TokenBudget::new(4.0, 0.5).unwrap();
        budget.record(true);
        budget.record(true);
        assert_eq!(budget.tokens(), 2.0);
        assert!(!budget.withdraw(), "exactly half is not more than half");
        budget.record(false);
        assert_eq!(budget.tokens(), 2.5);
        assert!(budget.withdraw());
        for _ in 0..10 {
            budget.record(false);
        }
        assert_eq!(budget.tokens(), 4.0, "never above the maximum");
        for _ in 0..10 {
            budget.record(true);
        }
        assert_eq!(budget.tokens(), 0.0, "never below zero");
    }

    #[test]
    fn bad_settings_name_their_field() {
        assert_eq!(
            TokenBudget::new(0.0, 0.1).unwrap_err().field(),
            "budget.max_tokens"
        );
        assert_eq!(
            TokenBudget::new(10.0, 1.5).unwrap_err().field(),
            "budget.token_ratio"
        );
        assert_eq!(
            TokenBudget::new(f64::NAN, 0.1).unwrap_err().field(),
            "budget.max_tokens"
        );
    }
}
