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

const RESULTS: [&str; 7] = [
    "executed",
    "replayed",
    "conflict",
    "mismatch",
    "rejected",
    "released",
    "unprotected",
];
const OPS: [&str; 5] = ["claim", "complete", "release", "extend", "lookup"];

/// One layer's handles.
pub(crate) struct IdempotencyMetrics {
    requests: [Counter; RESULTS.len()],
    store_seconds: [Histogram; OPS.len()],
    store_errors: [Counter; OPS.len()],
}

impl IdempotencyMetrics {
    pub(crate) fn new(name: &str) -> Self {
        describe_counter!(
            "palisade_idempotency_requests_total",
            "Keyed requests, by what became of them"
        );
        describe_counter!(
            "palisade_idempotency_store_errors_total",
            "Idempotency store operations that failed"
        );
        describe_histogram!(
            "palisade_idempotency_store_seconds",
            metrics::Unit::Seconds,
            "How long idempotency store operations took"
        );
        Self {
            requests: RESULTS.map(|result| {
                counter!("palisade_idempotency_requests_total", "name" => name.to_owned(), "result" => result)
            }),
            store_seconds: OPS.map(|op| {
                histogram!("palisade_idempotency_store_seconds", "name" => name.to_owned(), "op" => op)
            }),
            store_errors: OPS.map(|op| {
                counter!("palisade_idempotency_store_errors_total", "name" => name.to_owned(), "op" => op)
            }),
        }
    }

    /// Counts a keyed request under `result`, one of [`RESULTS`].
    pub(crate) fn request(&self, result: &'static str) {
        if let Some(i) = RESULTS.iter().position(|r| *r == result) {
            self.requests[i].increment(1);
        } else {
            debug_assert!(false, "an unknown result: {result}");
        }
    }

    /// Times a store operation `op`, one of [`OPS`], and counts it if it failed.
    pub(crate) fn store_op(&self, op: &'static str, took: Duration, failed: bool) {
        let Some(i) = OPS.iter().position(|o| *o == op) else {
            debug_assert!(false, "an unknown store operation: {op}");
            return;
        };
        self.store_seconds[i].record(took.as_secs_f64());
        if failed {
            self.store_errors[i].increment(1);
        }
    }
}
