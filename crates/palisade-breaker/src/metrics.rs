//! The breaker's metrics, recorded through the `metrics` facade.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `palisade_breaker_state` | gauge | `name`, `state` | 1 for the current state, 0 for the others |
//! | `palisade_breaker_calls_total` | counter | `name`, `outcome` | calls that ran, by outcome: `success`, `failure`, `ignored`, `cancelled` |
//! | `palisade_breaker_slow_calls_total` | counter | `name` | calls at or beyond the slow-call threshold |
//! | `palisade_breaker_rejected_total` | counter | `name` | calls refused |
//! | `palisade_breaker_transitions_total` | counter | `name`, `from`, `to` | changes of state |
//!
//! Handles are registered once, when the breaker is made — every series above, the
//! transitions between every pair of states included, so that an alert on
//! `increase(palisade_breaker_transitions_total{to="open"}[5m]) > 0` sees the first opening
//! of a process too — and recording a call is an increment on a handle. Install the
//! recorder (e.g. `metrics-exporter-prometheus`) before building layers.
//!
//! A [`silent`](crate::BreakerConfigBuilder::silent) breaker records nothing: the ejection
//! breaker of each endpoint inside a palisade balancer is one, and the balancer reports
//! ejections itself (`palisade_balance_*`), with no series per endpoint to outlive it.

use metrics::{Counter, Gauge, counter, describe_counter, describe_gauge, gauge};
use palisade_core::Outcome;

use crate::state::{State, Transition};

/// `palisade_breaker_state`: see the table above.
pub const STATE: &str = "palisade_breaker_state";
/// `palisade_breaker_calls_total`: see the table above.
pub const CALLS_TOTAL: &str = "palisade_breaker_calls_total";
/// `palisade_breaker_slow_calls_total`: see the table above.
pub const SLOW_CALLS_TOTAL: &str = "palisade_breaker_slow_calls_total";
/// `palisade_breaker_rejected_total`: see the table above.
pub const REJECTED_TOTAL: &str = "palisade_breaker_rejected_total";
/// `palisade_breaker_transitions_total`: see the table above.
pub const TRANSITIONS_TOTAL: &str = "palisade_breaker_transitions_total";
/// Every metric above, for a test or a dashboard that must cover them all.
pub const ALL: &[&str] = &[
    STATE,
    CALLS_TOTAL,
    SLOW_CALLS_TOTAL,
    REJECTED_TOTAL,
    TRANSITIONS_TOTAL,
];

pub(crate) struct BreakerMetrics {
    success: Counter,
    failure: Counter,
    ignored: Counter,
    cancelled: Counter,
    slow: Counter,
    rejected: Counter,
    state: [Gauge; 5],
    /// Indexed by `from × 5 + to`.
    transitions: [Counter; 25],
}

impl BreakerMetrics {
    pub(crate) fn new(name: &str, silent: bool) -> Self {
        if silent {
            return Self {
                success: Counter::noop(),
                failure: Counter::noop(),
                ignored: Counter::noop(),
                cancelled: Counter::noop(),
                slow: Counter::noop(),
                rejected: Counter::noop(),
                state: std::array::from_fn(|_| Gauge::noop()),
                transitions: std::array::from_fn(|_| Counter::noop()),
            };
        }
        describe_gauge!(STATE, "1 for the breaker's current state, 0 for the others");
        describe_counter!(CALLS_TOTAL, "Calls through the breaker, by outcome");
        describe_counter!(
            SLOW_CALLS_TOTAL,
            "Calls at or beyond the slow-call threshold"
        );
        describe_counter!(REJECTED_TOTAL, "Calls refused by the breaker");
        describe_counter!(TRANSITIONS_TOTAL, "Breaker state changes");
        let calls = |outcome: &'static str| counter!(CALLS_TOTAL, "name" => name.to_owned(), "outcome" => outcome);
        let metrics = Self {
            success: calls("success"),
            failure: calls("failure"),
            ignored: calls("ignored"),
            cancelled: calls("cancelled"),
            slow: counter!(SLOW_CALLS_TOTAL, "name" => name.to_owned()),
            rejected: counter!(REJECTED_TOTAL, "name" => name.to_owned()),
            state: State::ALL
                .map(|s| gauge!(STATE, "name" => name.to_owned(), "state" => s.as_str())),
            transitions: std::array::from_fn(|i| {
                let (from, to) = (State::ALL[i / 5], State::ALL[i % 5]);
                if from == to {
                    // Never a change of state: no series.
                    return Counter::noop();
                }
                counter!(
                    TRANSITIONS_TOTAL,
                    "name" => name.to_owned(),
                    "from" => from.as_str(),
                    "to" => to.as_str()
                )
            }),
        };
        metrics.set_state(State::Closed);
        metrics
    }

    #[inline]
    pub(crate) fn call(&self, outcome: Outcome, slow: bool) {
        match outcome {
            Outcome::Success => self.success.increment(1),
            Outcome::Failure => self.failure.increment(1),
            Outcome::Ignored => self.ignored.increment(1),
        }
        if slow {
            self.slow.increment(1);
        }
    }

    pub(crate) fn cancelled(&self) {
        self.cancelled.increment(1);
    }

    pub(crate) fn rejected(&self) {
        self.rejected.increment(1);
    }

    pub(crate) fn transition(&self, t: Transition) {
        self.transitions[t.from.index() * 5 + t.to.index()].increment(1);
        self.set_state(t.to);
    }

    fn set_state(&self, current: State) {
        for (gauge, state) in self.state.iter().zip(State::ALL) {
            gauge.set(if state == current { 1.0 } else { 0.0 });
        }
    }
}
