//! Retry budgets: how many retries a client may send, whatever its requests' policies say.
//!
//! Per-request limits ("at most 3 attempts") bound the work one request causes, but not the
//! work an outage causes: when every request fails, every request retries, and a dependency
//! that is down for everyone receives three times its load just as it tries to come back.
//! A budget bounds the retries of a whole client instead. Two designs are offered:
//!
//! - [`PercentBudget`] (Finagle's `RetryBudget`, Envoy's retry budget, tower's `TpsBudget`):
//!   retries may be at most a share of the requests of the last few seconds, plus a small
//!   floor so that a quiet client can still retry. Load amplification stays below
//!   `1 + percent` whatever fails.
//! - [`TokenBudget`] (gRPC's `retryThrottling`): a bucket of tokens that each failed attempt
//!   empties by one and each success refills by a ratio; retries stop while it is at most
//!   half full.
//! - [`ThrottledBudget`]: both — the percentage, and the token bucket's stop once failures
//!   dominate. The default: an outage costs its dependency almost no retries, while
//!   transient failures are retried as under the percentage alone.
//!
//! A [`RetryConfig`](crate::RetryConfig) names the budget as settings ([`BudgetConfig`]);
//! each layer made from it makes a budget of its own, shared by every clone of that layer.
//! To bound a client's retries across all of its dependencies, make one budget and hand it
//! to each layer ([`RetryLayer::with_budget`](crate::RetryLayer::with_budget)).

mod config;
mod percent;
mod throttled;
mod token;

pub use self::config::BudgetConfig;
pub use self::percent::PercentBudget;
pub use self::throttled::ThrottledBudget;
pub use self::token::TokenBudget;

/// What a retry layer asks of its budget.
///
/// Implementations must be cheap and safe to call from many threads at once: `deposit` runs
/// once per request.
pub trait Budget: Send + Sync {
    /// A request arrived (its first attempt only).
    fn deposit(&self);

    /// Asks for one retry; `true` takes it from the budget.
    fn withdraw(&self) -> bool;

    /// An attempt ended: `failed` when it failed in a way the policy would retry. Only
    /// budgets that learn from outcomes (the token bucket) use it.
    fn record(&self, failed: bool) {
        let _ = failed;
    }
}

impl<B: Budget + ?Sized> Budget for std::sync::Arc<B> {
    fn deposit(&self) {
        (**self).deposit();
    }

    fn withdraw(&self) -> bool {
        (**self).withdraw()
    }

    fn record(&self, failed: bool) {
        (**self).record(failed);
    }
}
