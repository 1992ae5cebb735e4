//! The retry layer's metrics, recorded through the `metrics` facade.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `palisade_retry_attempts_total` | counter | `name`, `outcome` | attempts, by what followed them (below) |
//! | `palisade_retry_budget_exhausted_total` | counter | `name` | retries the budget refused |
//! | `palisade_retry_backoff_seconds` | histogram | `name` | the wait before each retry |
//! | `palisade_retry_hedges_total` | counter | `name`, `result` | hedges: `sent`, `won` (its answer was the one returned), `refused` (by the budget) |
//! | `palisade_retry_hedge_delay_seconds` | gauge | `name` | the wait before a hedge, as the percentile last made it |
//!
//! An attempt's `outcome` is what came after it: `done` (its result was final),
//! `retried`, `cancelled` (another attempt of a hedged request answered first), or why a
//! retry the policy wanted was not made: `attempts_exhausted`, `budget_exhausted`,
//! `deadline`, `not_replayable`, `pushback` (the server said not to).

use metrics::{
    Counter, Gauge, Histogram, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};

/// `palisade_retry_attempts_total`: see the table above.
pub const ATTEMPTS_TOTAL: &str = "palisade_retry_attempts_total";
/// `palisade_retry_budget_exhausted_total`: see the table above.
pub const BUDGET_EXHAUSTED_TOTAL: &str = "palisade_retry_budget_exhausted_total";
/// `palisade_retry_backoff_seconds`: see the table above.
pub const BACKOFF_SECONDS: &str = "palisade_retry_backoff_seconds";
/// `palisade_retry_hedges_total`: see the table above.
pub const HEDGES_TOTAL: &str = "palisade_retry_hedges_total";
/// `palisade_retry_hedge_delay_seconds`: see the table above.
pub const HEDGE_DELAY_SECONDS: &str = "palisade_retry_hedge_delay_seconds";
/// Every metric above, for a test or a dashboard that must cover them all.
pub const ALL: &[&str] = &[
    ATTEMPTS_TOTAL,
    BUDGET_EXHAUSTED_TOTAL,
    BACKOFF_SECONDS,
    HEDGES_TOTAL,
    HEDGE_DELAY_SECONDS,
];

/// What followed an attempt.
#[derive(Debug, Clone, Copy)]
pub(crate) enum AttemptOutcome {
    Done,
    Retried,
    AttemptsExhausted,
    BudgetExhausted,
    Deadline,
    NotReplayable,
    Pushback,
    Cancelled,
}

/// What became of a hedge.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HedgeEvent {
    Sent,
    Won,
    Refused,
}

impl AttemptOutcome {
    const ALL: [AttemptOutcome; 8] = [
        AttemptOutcome::Done,
        AttemptOutcome::Retried,
        AttemptOutcome::AttemptsExhausted,
        AttemptOutcome::BudgetExhausted,
        AttemptOutcome::Deadline,
        AttemptOutcome::NotReplayable,
        AttemptOutcome::Pushback,
        AttemptOutcome::Cancelled,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Done => "done",
            AttemptOutcome::Retried => "retried",
            AttemptOutcome::AttemptsExhausted => "attempts_exhausted",
            AttemptOutcome::BudgetExhausted => "budget_exhausted",
            AttemptOutcome::Deadline => "deadline",
            AttemptOutcome::NotReplayable => "not_replayable",
            AttemptOutcome::Pushback => "pushback",
            AttemptOutcome::Cancelled => "cancelled",
        }
    }
}

pub(crate) struct RetryMetrics {
    attempts: [Counter; 8],
    budget_exhausted: Counter,
    backoff: Histogram,
    hedges: [Counter; 3],
    hedge_delay: Gauge,
}

impl RetryMetrics {
    pub(crate) fn new(name: &str) -> Self {
        describe_counter!(ATTEMPTS_TOTAL, "Attempts, by what followed them");
        describe_counter!(
            BUDGET_EXHAUSTED_TOTAL,
            "Retries refused by the retry budget"
        );
        describe_histogram!(
            BACKOFF_SECONDS,
            metrics::Unit::Seconds,
            "The wait before each retry"
        );
        describe_counter!(HEDGES_TOTAL, "Hedges sent, won, and refused by the budget");
        describe_gauge!(
            HEDGE_DELAY_SECONDS,
            metrics::Unit::Seconds,
            "The wait before a hedge"
        );
        Self {
            hedges: ["sent", "won", "refused"]
                .map(|r| counter!(HEDGES_TOTAL, "name" => name.to_owned(), "result" => r)),
            hedge_delay: gauge!(HEDGE_DELAY_SECONDS, "name" => name.to_owned()),
            attempts: AttemptOutcome::ALL.map(
                |o| counter!(ATTEMPTS_TOTAL, "name" => name.to_owned(), "outcome" => o.as_str()),
            ),
            budget_exhausted: counter!(BUDGET_EXHAUSTED_TOTAL, "name" => name.to_owned()),
            backoff: histogram!(BACKOFF_SECONDS, "name" => name.to_owned()),
        }
    }

    #[inline]
    pub(crate) fn attempt(&self, outcome: AttemptOutcome) {
        self.attempts[outcome as usize].increment(1);
        if let AttemptOutcome::BudgetExhausted = outcome {
            self.budget_exhausted.increment(1);
        }
    }

    pub(crate) fn backoff(&self, wait: std::time::Duration) {
        self.backoff.record(wait.as_secs_f64());
    }

    pub(crate) fn hedge(&self, event: HedgeEvent) {
        self.hedges[event as usize].increment(1);
    }

    pub(crate) fn hedge_delay(&self, delay: std::time::Duration) {
        self.hedge_delay.set(delay.as_secs_f64());
    }
}
