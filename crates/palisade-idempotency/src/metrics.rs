//! The layer's metrics, recorded through the `metrics` facade.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `palisade_idempotency_requests_total` | counter | `name`, `result` | keyed requests by what became of them: `executed` (ran and stored), `replayed`, `conflict` (409, first still running), `mismatch` (422), `rejected` (malformed or missing key, body too large, store unavailable), `released` (ran, key released: 5xx, error, panic, cancellation, too large to store, store write failed), `unprotected` (ran without a record because the store failed and the layer fails open) |
//! | `palisade_idempotency_store_errors_total` | counter | `name`, `op` | store operations that failed, by `op` (`claim`, `complete`, `release`, `extend`, `lookup`) |
//! | `palisade_idempotency_store_seconds` | histogram | `name`, `op` | how long store operations took |
//!
//! Handles are registered once, when the layer is made, so recording is an operation on a
//! handle rather than a lookup of its name and labels; install the recorder (e.g.
//! `metrics-exporter-prometheus`) before building layers.

use std::time::Duration;

use metrics::{Counter, Histogram, counter, describe_counter, describe_histogram, histogram};

/// `palisade_idempotency_requests_total`: see the table above.
pub const REQUESTS_TOTAL: &str = "palisade_idempotency_requests_total";
/// `palisade_idempotency_store_errors_total`: see the table above.
pub const STORE_ERRORS_TOTAL: &str = "palisade_idempotency_store_errors_total";
/// `palisade_idempotency_store_seconds`: see the table above.
pub const STORE_SECONDS: &str = "palisade_idempotency_store_seconds";
/// Every metric above, for a test or a dashboard that must cover them all.
pub const ALL: &[&str] = &[REQUESTS_TOTAL, STORE_ERRORS_TOTAL, STORE_SECONDS];

/// What became of a keyed request: the `result` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Executed,
    Replayed,
    Conflict,
    Mismatch,
    Rejected,
    Released,
    Unprotected,
}

impl Outcome {
    const ALL: [Outcome; 7] = [
        Outcome::Executed,
        Outcome::Replayed,
        Outcome::Conflict,
        Outcome::Mismatch,
        Outcome::Rejected,
        Outcome::Released,
        Outcome::Unprotected,
    ];

    fn label(self) -> &'static str {
        match self {
            Outcome::Executed => "executed",
            Outcome::Replayed => "replayed",
            Outcome::Conflict => "conflict",
            Outcome::Mismatch => "mismatch",
            Outcome::Rejected => "rejected",
            Outcome::Released => "released",
            Outcome::Unprotected => "unprotected",
        }
    }
}

/// A store operation: the `op` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Claim,
    Complete,
    Release,
    Extend,
    Lookup,
}

impl Op {
    const ALL: [Op; 5] = [Op::Claim, Op::Complete, Op::Release, Op::Extend, Op::Lookup];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Op::Claim => "claim",
            Op::Complete => "complete",
            Op::Release => "release",
            Op::Extend => "extend",
            Op::Lookup => "lookup",
        }
    }
}

/// One layer's handles.
pub(crate) struct IdempotencyMetrics {
    // Indexed by the enums' discriminants: recording is an index, not a lookup.
    requests: [Counter; Outcome::ALL.len()],
    store_seconds: [Histogram; Op::ALL.len()],
    store_errors: [Counter; Op::ALL.len()],
}

impl IdempotencyMetrics {
    pub(crate) fn new(name: &str) -> Self {
        describe_counter!(REQUESTS_TOTAL, "Keyed requests, by what became of them");
        describe_counter!(
            STORE_ERRORS_TOTAL,
            "Idempotency store operations that failed"
        );
        describe_histogram!(
            STORE_SECONDS,
            metrics::Unit::Seconds,
            "How long idempotency store operations took"
        );
        Self {
            requests: Outcome::ALL.map(|result| {
                counter!(REQUESTS_TOTAL, "name" => name.to_owned(), "result" => result.label())
            }),
            store_seconds: Op::ALL.map(|op| {
                histogram!(STORE_SECONDS, "name" => name.to_owned(), "op" => op.label())
            }),
            store_errors: Op::ALL.map(|op| {
                counter!(STORE_ERRORS_TOTAL, "name" => name.to_owned(), "op" => op.label())
            }),
        }
    }

    /// Counts a keyed request under what became of it.
    pub(crate) fn request(&self, result: Outcome) {
        self.requests[result as usize].increment(1);
    }

    /// Times a store operation, and counts it if it failed.
    pub(crate) fn store_op(&self, op: Op, took: Duration, failed: bool) {
        self.store_seconds[op as usize].record(took.as_secs_f64());
        if failed {
            self.store_errors[op as usize].increment(1);
        }
    }
}
