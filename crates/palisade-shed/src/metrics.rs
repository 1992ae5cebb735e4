//! The shedder's metrics, recorded through the `metrics` facade.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `palisade_shed_limit` | gauge | `name` | the concurrency limit |
//! | `palisade_shed_inflight` | gauge | `name` | requests running |
//! | `palisade_shed_queued` | gauge | `name` | requests waiting |
//! | `palisade_shed_rejected_total` | counter | `name`, `class`, `reason` | refusals, by priority and reason (`limit`, `queue_full`, `queue_timeout`) |
//! | `palisade_shed_latency_seconds` | histogram | `name` | from admission to response, of the requests that ran |

use metrics::{
    Counter, Gauge, Histogram, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};

use crate::error::Reason;
use crate::priority::Priority;

/// `palisade_shed_limit`: see the table above.
pub const LIMIT: &str = "palisade_shed_limit";
/// `palisade_shed_inflight`: see the table above.
pub const INFLIGHT: &str = "palisade_shed_inflight";
/// `palisade_shed_queued`: see the table above.
pub const QUEUED: &str = "palisade_shed_queued";
/// `palisade_shed_rejected_total`: see the table above.
pub const REJECTED_TOTAL: &str = "palisade_shed_rejected_total";
/// `palisade_shed_latency_seconds`: see the table above.
pub const LATENCY_SECONDS: &str = "palisade_shed_latency_seconds";
/// Every metric above, for a test or a dashboard that must cover them all.
pub const ALL: &[&str] = &[LIMIT, INFLIGHT, QUEUED, REJECTED_TOTAL, LATENCY_SECONDS];

pub(crate) struct ShedMetrics {
    limit: Gauge,
    inflight: Gauge,
    queued: Gauge,
    rejected: [[Counter; 3]; 3],
    latency: Histogram,
}

impl ShedMetrics {
    pub(crate) fn new(name: &str) -> Self {
        describe_gauge!(LIMIT, "The concurrency limit");
        describe_gauge!(INFLIGHT, "Requests running");
        describe_gauge!(QUEUED, "Requests waiting for a slot");
        describe_counter!(REJECTED_TOTAL, "Requests refused, by priority and reason");
        describe_histogram!(
            LATENCY_SECONDS,
            metrics::Unit::Seconds,
            "From admission to response"
        );
        Self {
            limit: gauge!(LIMIT, "name" => name.to_owned()),
            inflight: gauge!(INFLIGHT, "name" => name.to_owned()),
            queued: gauge!(QUEUED, "name" => name.to_owned()),
            rejected: Priority::ALL.map(|class| {
                Reason::ALL.map(|reason| {
                    counter!(
                        REJECTED_TOTAL,
                        "name" => name.to_owned(),
                        "class" => class.as_str(),
                        "reason" => reason.as_str()
                    )
                })
            }),
            latency: histogram!(LATENCY_SECONDS, "name" => name.to_owned()),
        }
    }

    pub(crate) fn limit(&self, limit: usize) {
        self.limit.set(limit as f64);
    }

    pub(crate) fn inflight(&self, n: usize) {
        self.inflight.set(n as f64);
    }

    pub(crate) fn queued(&self, n: usize) {
        self.queued.set(n as f64);
    }

    pub(crate) fn rejected(&self, class: Priority, reason: Reason) {
        self.rejected[class as usize][reason as usize].increment(1);
    }

    pub(crate) fn latency(&self, latency: std::time::Duration) {
        self.latency.record(latency.as_secs_f64());
    }
}
