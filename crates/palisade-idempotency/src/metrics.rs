//! The layer's metrics, recorded through the `metrics` facade.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `palisade_idempotency_requests_total` | counter | `name`, `result` | keyed requests by what became of them: `executed` (ran and stored), `replayed`, `conflict` (409, first still running), `mismatch` (422), `rejected` (malformed or missing key, body too large, store unavailable), `released` (ran, key released: 5xx, error, panic, cancellation, too large to store, store write failed), `unprotected` (ran without a record because the store failed and the layer fails open) |
//! | `palisade_idempotency_store_errors_total` | counter | `name`, `op` | store operations that failed, by `op` (`claim`, `complete`, `release`, `extend`, `lookup`) |
//! | `palisade_idempotency_store_seconds` | histogram | `name`, `op` | how long store operations took |

use std::time::Duration;

use metrics::{counter, histogram};

pub(crate) fn request(name: &str, result: &'static str) {
    counter!("palisade_idempotency_requests_total", "name" => name.to_owned(), "result" => result)
        .increment(1);
}

pub(crate) fn store_op(name: &str, op: &'static str, took: Duration, failed: bool) {
    histogram!("palisade_idempotency_store_seconds", "name" => name.to_owned(), "op" => op)
        .record(took.as_secs_f64());
    if failed {
        counter!("palisade_idempotency_store_errors_total", "name" => name.to_owned(), "op" => op)
            .increment(1);
    }
}
