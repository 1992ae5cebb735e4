//! The retry layer's metrics, recorded through the `metrics` facade.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `palisade_retry_attempts_total` | counter | `name`, `outcome` | attempts, by what followed them (below) |
//! | `palisade_retry_budget_exhausted_total` | counter | `name` | retries the budget refused |
//! | `palisade_retry_backoff_seconds` | histogram | `name` | the wait before each retry |
//!
//! An attempt's `outcome` is what came after it: `done` (its result was final),
//! `retried`, or why a retry the policy wanted was not made: `attempts_exhausted`,
//! `budget_exhausted`, `deadline`, `not_replayable`, `pushback` (the server said not to).

use metrics::{Counter, Histogram, counter, describe_counter, describe_histogram, histogram};

/// `palisade_retry_attempts_total`: see the table above.
pub const ATTEMPTS_TOTAL: &str = "palisade_retry_attempts_total";
/// `palisade_retry_budget_exhausted_total`: see the table above.
pub const BUDGET_EXHAUSTED_TOTAL: &str = "palisade_retry_budget_exhausted_total";
/// `palisade_retry_backoff_seconds`: see the table above.
pub const BACKOFF_SECONDS: &str = "palisade_retry_backoff_seconds";
/// Every metric above, for a test or a dashboard that must cover them all.
pub const ALL: &[&str] = &[ATTEMPTS_TOTAL, BUDGET_EXHAUSTED_TOTAL, BACKOFF_SECONDS];

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
}

impl AttemptOutcome {
    const ALL: [AttemptOutcome; 7] = [
        AttemptOutcome::Done,
        AttemptOutcome::Retried,
        AttemptOutcome::AttemptsExhausted,
        AttemptOutcome::BudgetExhausted,
        AttemptOutcome::Deadline,
        AttemptOutcome::NotReplayable,
        AttemptOutcome::Pushback,
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
        }
    }
}

pub(crate) struct RetryMetrics {
    attempts: [Counter; 7],
    budget_exhausted: Counter,
    backoff: Histogram,
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
        Self {
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
}
