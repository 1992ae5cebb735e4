//! The rate limiter's metrics, recorded through the `metrics` facade.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `palisade_ratelimit_requests_total` | counter | `name`, `policy`, `outcome` | requests checked against a policy: `admitted` or `refused` |
//! | `palisade_ratelimit_store_calls_total` | counter | `name`, `result` | fleet mode's takes from its store (round trips): `ok`, or `failed` (an error or no answer in time; the request was then decided as `OnStoreError` says) |
//! | `palisade_ratelimit_evicted_total` | counter | `name`, `policy`, `kind` | keys dropped to keep a policy within `max_keys`: `idle` (no error) or `early` (a fresh burst a little early) |

use metrics::{Counter, counter, describe_counter};

use crate::keyed::Evicted;

/// `palisade_ratelimit_requests_total`: see the table above.
pub const REQUESTS_TOTAL: &str = "palisade_ratelimit_requests_total";
/// `palisade_ratelimit_evicted_total`: see the table above.
pub const EVICTED_TOTAL: &str = "palisade_ratelimit_evicted_total";
/// `palisade_ratelimit_store_calls_total`: see the table above.
pub const STORE_CALLS_TOTAL: &str = "palisade_ratelimit_store_calls_total";
/// Every metric above, for a test or a dashboard that must cover them all.
pub const ALL: &[&str] = &[REQUESTS_TOTAL, EVICTED_TOTAL, STORE_CALLS_TOTAL];

/// One policy's handles.
#[derive(Debug)]
pub(crate) struct PolicyMetrics {
    pub(crate) admitted: Counter,
    pub(crate) refused: Counter,
    evicted_idle: Counter,
    evicted_early: Counter,
}

impl PolicyMetrics {
    pub(crate) fn new(name: &str, policy: &str) -> Self {
        describe_counter!(
            REQUESTS_TOTAL,
            "Requests checked against a rate limit policy"
        );
        describe_counter!(
            EVICTED_TOTAL,
            "Keys dropped to keep a rate limit policy within its bound"
        );
        let requests = |outcome: &'static str| counter!(REQUESTS_TOTAL, "name" => name.to_owned(), "policy" => policy.to_owned(), "outcome" => outcome);
        let evicted = |kind: &'static str| counter!(EVICTED_TOTAL, "name" => name.to_owned(), "policy" => policy.to_owned(), "kind" => kind);
        Self {
            admitted: requests("admitted"),
            refused: requests("refused"),
            evicted_idle: evicted("idle"),
            evicted_early: evicted("early"),
        }
    }

    /// Counts the keys a keyed decision evicted: none, on all but a few requests, which
    /// then pay no call.
    #[inline]
    pub(crate) fn evicted(&self, evicted: Evicted) {
        if evicted != Evicted::default() {
            self.count_evicted(evicted);
        }
    }

    #[cold]
    fn count_evicted(&self, evicted: Evicted) {
        if evicted.idle > 0 {
            self.evicted_idle.increment(evicted.idle as u64);
        }
        if evicted.early > 0 {
            self.evicted_early.increment(evicted.early as u64);
            tracing::debug!(early = evicted.early, "rate limit keys evicted before idle");
        }
    }
}

/// A fleet layer's store calls.
#[cfg(feature = "http")]
#[derive(Debug)]
pub(crate) struct StoreMetrics {
    ok: Counter,
    failed: Counter,
}

#[cfg(feature = "http")]
impl StoreMetrics {
    pub(crate) fn new(name: &str) -> Self {
        describe_counter!(
            STORE_CALLS_TOTAL,
            "Takes from a fleet rate limit's store (round trips), by result"
        );
        let calls = |result: &'static str| counter!(STORE_CALLS_TOTAL, "name" => name.to_owned(), "result" => result);
        Self {
            ok: calls("ok"),
            failed: calls("failed"),
        }
    }

    /// A take was sent and answered.
    pub(crate) fn call(&self) {
        self.ok.increment(1);
    }

    /// A take failed: an error, or no answer in time.
    pub(crate) fn failed(&self) {
        self.failed.increment(1);
    }
}
