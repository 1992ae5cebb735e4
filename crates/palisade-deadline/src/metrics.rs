//! The deadline layer's metrics, recorded through the `metrics` facade.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `palisade_deadline_requests_total` | counter | `name`, `result` | requests, by how their deadline went: `met` (answered in time), `exceeded` (cut at the deadline: `504` / `DEADLINE_EXCEEDED`), `malformed` (a timeout header that did not read: `400` / `INVALID_ARGUMENT`) |
//! | `palisade_deadline_inherited_total` | counter | `name`, `from` | where a request's deadline came from: `caller` (its `grpc-timeout` or header, within the maximum), `capped` (the caller's, cut to the maximum), `server` (none sent: the maximum) |
//! | `palisade_deadline_calls_total` | counter | `name`, `result` | outgoing calls through [`PropagateDeadline`](crate::PropagateDeadline), by how their deadline went: `met`, `exceeded` (cut at the deadline), `expired` (not sent: no time was left), `unbounded` (no deadline: passed through) |
//!
//! Handles are registered once, when the layer is made; recording is an increment.

use metrics::{Counter, counter, describe_counter};

/// `palisade_deadline_requests_total`: see the table above.
pub const REQUESTS_TOTAL: &str = "palisade_deadline_requests_total";
/// `palisade_deadline_inherited_total`: see the table above.
pub const INHERITED_TOTAL: &str = "palisade_deadline_inherited_total";
/// `palisade_deadline_calls_total`: see the table above.
pub const CALLS_TOTAL: &str = "palisade_deadline_calls_total";
/// Every metric above, for a test or a dashboard that must cover them all.
pub const ALL: &[&str] = &[REQUESTS_TOTAL, INHERITED_TOTAL, CALLS_TOTAL];

/// How a request's deadline went.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome {
    Met,
    Exceeded,
    Malformed,
}

/// Where a request's deadline came from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source {
    Caller,
    Capped,
    Server,
}

/// One layer's counters.
#[derive(Debug)]
pub(crate) struct DeadlineMetrics {
    met: Counter,
    exceeded: Counter,
    malformed: Counter,
    caller: Counter,
    capped: Counter,
    server: Counter,
}

impl DeadlineMetrics {
    pub(crate) fn new(name: &str) -> Self {
        describe_counter!(REQUESTS_TOTAL, "requests, by how their deadline went");
        describe_counter!(INHERITED_TOTAL, "where requests' deadlines came from");
        let result = |result: &'static str| counter!(REQUESTS_TOTAL, "name" => name.to_owned(), "result" => result);
        let from = |from: &'static str| counter!(INHERITED_TOTAL, "name" => name.to_owned(), "from" => from);
        Self {
            met: result("met"),
            exceeded: result("exceeded"),
            malformed: result("malformed"),
            caller: from("caller"),
            capped: from("capped"),
            server: from("server"),
        }
    }

    pub(crate) fn result(&self, result: Outcome) {
        match result {
            Outcome::Met => &self.met,
            Outcome::Exceeded => &self.exceeded,
            Outcome::Malformed => &self.malformed,
        }
        .increment(1);
    }

    pub(crate) fn inherited(&self, from: Source) {
        match from {
            Source::Caller => &self.caller,
            Source::Capped => &self.capped,
            Source::Server => &self.server,
        }
        .increment(1);
    }
}

/// How an outgoing call's deadline went.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CallOutcome {
    Met,
    Exceeded,
    Expired,
    Unbounded,
}

/// One client layer's counters.
#[derive(Debug)]
pub(crate) struct CallMetrics {
    met: Counter,
    exceeded: Counter,
    expired: Counter,
    unbounded: Counter,
}

impl CallMetrics {
    pub(crate) fn new(name: &str) -> Self {
        describe_counter!(CALLS_TOTAL, "outgoing calls, by how their deadline went");
        let result = |result: &'static str| counter!(CALLS_TOTAL, "name" => name.to_owned(), "result" => result);
        Self {
            met: result("met"),
            exceeded: result("exceeded"),
            expired: result("expired"),
            unbounded: result("unbounded"),
        }
    }

    pub(crate) fn call(&self, outcome: CallOutcome) {
        match outcome {
            CallOutcome::Met => &self.met,
            CallOutcome::Exceeded => &self.exceeded,
            CallOutcome::Expired => &self.expired,
            CallOutcome::Unbounded => &self.unbounded,
        }
        .increment(1);
    }
}
