//! The balancer's metrics, recorded through the `metrics` facade.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `palisade_balance_endpoints` | gauge | `name`, `state` | endpoints `ready`, `pending` (being readied) and `ejected` |
//! | `palisade_balance_ejections_total` | counter | `name` | endpoints taken out of the rotation |
//! | `palisade_balance_panic_total` | counter | `name` | ejections undone because the cap was reached |
//! | `palisade_balance_no_endpoints_total` | counter | `name` | calls failed because no endpoint was ready in time |
//! | `palisade_balance_discovery_kept_total` | counter | `name`, `source` | sets a discovery source produced empty, for which the last good set was kept |
//! | `palisade_balance_health_checks_total` | counter | `name`, `result` | health-check probes that `pass`ed or `fail`ed (timeouts fail); only with [health checks](crate::health) |
//! | `palisade_balance_requests_total` | counter | `name`, `endpoint` | requests sent to each endpoint (its key, as `Debug` prints it); only with [`endpoint_metrics`](crate::BalanceConfigBuilder::endpoint_metrics) |
//!
//! Every series but the per-endpoint ones is registered when the balancer (or the discovery
//! source) is made, so an alert on `increase(palisade_balance_ejections_total[5m]) > 0` sees
//! the first ejection of a process too.
//!
//! Endpoints have no series of their own unless asked: their ejection breakers are
//! [silent](palisade_breaker::BreakerConfigBuilder::silent), and the per-endpoint request
//! counter is opt-in. The `metrics` facade cannot delete a series, so a series per endpoint
//! outlives the endpoint (it stops changing, until the process restarts or the exporter's
//! idle timeout drops it): in a fleet whose endpoints come and go, such series pile up.

use metrics::{Counter, Gauge, counter, describe_counter, describe_gauge, gauge};

/// `palisade_balance_endpoints`: see the table above.
pub const ENDPOINTS: &str = "palisade_balance_endpoints";
/// `palisade_balance_ejections_total`: see the table above.
pub const EJECTIONS_TOTAL: &str = "palisade_balance_ejections_total";
/// `palisade_balance_panic_total`: see the table above.
pub const PANIC_TOTAL: &str = "palisade_balance_panic_total";
/// `palisade_balance_no_endpoints_total`: see the table above.
pub const NO_ENDPOINTS_TOTAL: &str = "palisade_balance_no_endpoints_total";
/// `palisade_balance_requests_total`: see the table above.
pub const REQUESTS_TOTAL: &str = "palisade_balance_requests_total";
/// `palisade_balance_discovery_kept_total`: see the table above.
pub const DISCOVERY_KEPT_TOTAL: &str = "palisade_balance_discovery_kept_total";
/// `palisade_balance_health_checks_total`: see the table above.
pub const HEALTH_CHECKS_TOTAL: &str = "palisade_balance_health_checks_total";
/// Every metric above, for a test or a dashboard that must cover them all.
pub const ALL: &[&str] = &[
    ENDPOINTS,
    EJECTIONS_TOTAL,
    PANIC_TOTAL,
    NO_ENDPOINTS_TOTAL,
    REQUESTS_TOTAL,
    DISCOVERY_KEPT_TOTAL,
    HEALTH_CHECKS_TOTAL,
];

/// The series of one balancer.
pub(crate) struct BalanceMetrics {
    name: String,
    ready: Gauge,
    pending: Gauge,
    ejected: Gauge,
    last: (usize, usize, usize),
    no_endpoints: Counter,
    ejections: Counter,
    panics: Counter,
    per_endpoint: bool,
}

impl BalanceMetrics {
    pub(crate) fn new(balancer: &str, per_endpoint: bool) -> Self {
        describe_gauge!(
            ENDPOINTS,
            "Endpoints by state: ready, pending (being readied), ejected"
        );
        describe_counter!(EJECTIONS_TOTAL, "Endpoints taken out of the rotation");
        describe_counter!(
            PANIC_TOTAL,
            "Ejections undone because the cap on ejected endpoints was reached"
        );
        describe_counter!(
            NO_ENDPOINTS_TOTAL,
            "Calls failed because no endpoint was ready in time"
        );
        let name = || balancer.to_owned();
        let state = |s: &'static str| gauge!(ENDPOINTS, "name" => name(), "state" => s);
        let mut metrics = Self {
            ready: state("ready"),
            pending: state("pending"),
            ejected: state("ejected"),
            last: (usize::MAX, 0, 0),
            no_endpoints: counter!(NO_ENDPOINTS_TOTAL, "name" => name()),
            ejections: counter!(EJECTIONS_TOTAL, "name" => name()),
            panics: counter!(PANIC_TOTAL, "name" => name()),
            name: name(),
            per_endpoint,
        };
        metrics.set(0, 0, 0);
        metrics
    }

    /// Records the counts of endpoints, when they changed.
    pub(crate) fn set(&mut self, ready: usize, pending: usize, ejected: usize) {
        if (ready, pending, ejected) != self.last {
            self.last = (ready, pending, ejected);
            self.ready.set(ready as f64);
            self.pending.set(pending as f64);
            self.ejected.set(ejected as f64);
        }
    }

    pub(crate) fn no_endpoints(&self) {
        self.no_endpoints.increment(1);
    }

    pub(crate) fn ejected(&self) {
        self.ejections.increment(1);
    }

    pub(crate) fn panicked(&self) {
        self.panics.increment(1);
    }

    /// The request counter of an endpoint that joins the rotation, if endpoints have series.
    pub(crate) fn requests(&self, endpoint: &impl std::fmt::Debug) -> Counter {
        if !self.per_endpoint {
            return Counter::noop();
        }
        counter!(
            REQUESTS_TOTAL,
            "name" => self.name.clone(),
            "endpoint" => format!("{endpoint:?}")
        )
    }
}

/// The counter of a discovery source's kept sets, registered when the source is made.
pub(crate) fn discovery_kept(name: &str, source: &'static str) -> Counter {
    describe_counter!(
        DISCOVERY_KEPT_TOTAL,
        "Sets a discovery source produced empty, for which the last good set was kept"
    );
    counter!(DISCOVERY_KEPT_TOTAL, "name" => name.to_owned(), "source" => source)
}

/// The counters of a balancer's probes, passed and failed, registered when its prober is
/// made.
pub(crate) fn health_checks(balancer: &str) -> (Counter, Counter) {
    describe_counter!(
        HEALTH_CHECKS_TOTAL,
        "Health-check probes by result: pass or fail (a timeout is a failure)"
    );
    let result = |r: &'static str| counter!(HEALTH_CHECKS_TOTAL, "name" => balancer.to_owned(), "result" => r);
    (result("pass"), result("fail"))
}
