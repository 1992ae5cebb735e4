//! The drain's metrics, recorded through the `metrics` facade.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `palisade_registry_draining` | gauge | `name` | 1 from the drain's start, 0 before |
//! | `palisade_registry_in_flight` | gauge | `name` | requests inside the drain layer |
//! | `palisade_registry_drain_refused_total` | counter | `name` | requests refused once the grace period was over |
//!
//! Every series is registered, at zero, when the drain is made.

use metrics::{Counter, Gauge, counter, describe_counter, describe_gauge, gauge};

/// `palisade_registry_draining`: see the table above.
pub const DRAINING: &str = "palisade_registry_draining";
/// `palisade_registry_in_flight`: see the table above.
pub const IN_FLIGHT: &str = "palisade_registry_in_flight";
/// `palisade_registry_drain_refused_total`: see the table above.
pub const DRAIN_REFUSED_TOTAL: &str = "palisade_registry_drain_refused_total";
/// Every metric above, for a test or a dashboard that must cover them all.
pub const ALL: &[&str] = &[DRAINING, IN_FLIGHT, DRAIN_REFUSED_TOTAL];

/// The series of one drain.
#[derive(Debug)]
pub(crate) struct DrainMetrics {
    pub(crate) draining: Gauge,
    pub(crate) in_flight: Gauge,
    pub(crate) refused: Counter,
}

impl DrainMetrics {
    pub(crate) fn new(name: &str) -> Self {
        describe_gauge!(DRAINING, "1 once the instance has begun to drain");
        describe_gauge!(IN_FLIGHT, "Requests inside the drain layer");
        describe_counter!(
            DRAIN_REFUSED_TOTAL,
            "Requests refused because the instance was shutting down"
        );
        let metrics = Self {
            draining: gauge!(DRAINING, "name" => name.to_owned()),
            in_flight: gauge!(IN_FLIGHT, "name" => name.to_owned()),
            refused: counter!(DRAIN_REFUSED_TOTAL, "name" => name.to_owned()),
        };
        metrics.draining.set(0.0);
        metrics.in_flight.set(0.0);
        metrics.refused.increment(0);
        metrics
    }
}
