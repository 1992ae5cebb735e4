//! Both designs at once: a share of recent requests, throttled by their outcomes.

use super::{Budget, PercentBudget, TokenBudget};

/// Retries that a [`PercentBudget`] *and* a [`TokenBudget`] both allow.
///
/// Each design misses a case the other covers. A percentage lets through its share of
/// retries whatever happens, so a dependency that is down for everyone still receives
/// `1 + percent` times its load for as long as the outage lasts. gRPC's token bucket stops
/// retrying once failures outnumber what successes refill — within `max_tokens / 2` failed
/// attempts of an outage — but below that point it bounds nothing: a dependency failing a
/// fifth of calls under a generous ratio is retried in full. Together: retries stop soon
/// after an outage begins and start again as successes return, and while they run they are
/// at most the percentage.
///
/// ```
/// use std::time::Duration;
/// use palisade_retry::budget::{Budget, PercentBudget, ThrottledBudget, TokenBudget};
///
/// let budget = ThrottledBudget::new(
///     PercentBudget::new(Duration::from_secs(10), 10, 0.2).unwrap(),
///     TokenBudget::new(10.0, 0.25).unwrap(),
/// );
/// for _ in 0..5 {
///     budget.deposit();
///     assert!(budget.withdraw());
///     budget.record(true); // every attempt fails: an outage
/// }
/// assert!(!budget.withdraw(), "half the tokens gone: retries stop, whatever the percentage");
/// for _ in 0..20 {
///     budget.record(false); // the dependency is back
/// }
/// assert!(budget.withdraw());
/// ```
#[derive(Debug)]
pub struct ThrottledBudget {
    percent: PercentBudget,
    tokens: TokenBudget,
}

impl ThrottledBudget {
    /// Retries within `percent`, while `tokens` allows any.
    pub fn new(percent: PercentBudget, tokens: TokenBudget) -> Self {
        Self { percent, tokens }
    }

    /// The tokens left in the throttle.
    pub fn tokens(&self) -> f64 {
        self.tokens.tokens()
    }
}

impl Budget for ThrottledBudget {
    fn deposit(&self) {
        self.percent.deposit();
    }

    fn withdraw(&self) -> bool {
        // The throttle first: it only looks, where the percentage takes.
        self.tokens.withdraw() && self.percent.withdraw()
    }

    fn record(&self, failed: bool) {
        self.tokens.record(failed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_percentage_still_bounds_retries_while_the_bucket_is_full() {
        let budget = ThrottledBudget::new(
            PercentBudget::new(Duration::from_secs(10), 0, 0.5).unwrap(),
            TokenBudget::new(10.0, 0.5).unwrap(),
        );
        budget.deposit();
        budget.deposit();
        assert!(budget.withdraw(), "half of two requests: one retry");
        assert!(
            !budget.withdraw(),
            "the percentage is spent, the bucket full"
        );
        assert_eq!(budget.tokens(), 10.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_by_the_bucket_takes_nothing_from_the_percentage() {
        let budget = ThrottledBudget::new(
            PercentBudget::new(Duration::from_secs(10), 0, 0.5).unwrap(),
            TokenBudget::new(2.0, 1.0).unwrap(),
        );
        budget.deposit();
        budget.deposit();
        budget.record(true);
        assert!(!budget.withdraw(), "half the bucket left: throttled");
        budget.record(false);
        assert!(budget.withdraw(), "the percentage's retry is still there");
    }
}
