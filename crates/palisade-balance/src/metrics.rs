//! The balancer's metrics, recorded through the `metrics` facade.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `palisade_balance_discovery_kept_total` | counter | `source` | sets a source produced empty, for which the last good set was kept |
//! | `palisade_balance_no_endpoints_total` | counter | `name` | calls failed because no endpoint was ready in time |
//! | `palisade_balance_endpoints` | gauge | `name`, `state` | endpoints `ready`, and `pending` (being readied) |
//! | `palisade_balance_requests_total` | counter | `name`, `endpoint` | requests sent to each endpoint (its key, as `Debug` prints it) |
//! | `palisade_balance_ejections_total` | counter | `name` | endpoints taken out of the rotation |
//! | `palisade_balance_panic_total` | counter | `name` | ejections undone because the cap was reached |

use metrics::{Gauge, counter, gauge};

/// The gauges of one balancer's endpoints.
pub(crate) struct EndpointGauges {
    ready: Gauge,
    pending: Gauge,
    last: (usize, usize),
}

impl EndpointGauges {
    pub(crate) fn new(balancer: &str) -> Self {
        let state = |s: &'static str| gauge!("palisade_balance_endpoints", "name" => balancer.to_owned(), "state" => s);
        Self {
            ready: state("ready"),
            pending: state("pending"),
            last: (0, 0),
        }
    }

    /// Records the counts, when they changed.
    pub(crate) fn set(&mut self, ready: usize, pending: usize) {
        if (ready, pending) != self.last {
            self.last = (ready, pending);
            self.ready.set(ready as f64);
            self.pending.set(pending as f64);
        }
    }
}

pub(crate) fn kept_last_good_set(source: &'static str) {
    counter!("palisade_balance_discovery_kept_total", "source" => source).increment(1);
}

pub(crate) fn no_endpoints(balancer: &str) {
    counter!("palisade_balance_no_endpoints_total", "name" => balancer.to_owned()).increment(1);
}

pub(crate) fn ejected(balancer: &str) {
    counter!("palisade_balance_ejections_total", "name" => balancer.to_owned()).increment(1);
}

pub(crate) fn panicked(balancer: &str) {
    counter!("palisade_balance_panic_total", "name" => balancer.to_owned()).increment(1);
}

/// The request counter of one endpoint, registered when it joins the rotation.
pub(crate) fn requests(balancer: &str, endpoint: &impl std::fmt::Debug) -> metrics::Counter {
    counter!(
        "palisade_balance_requests_total",
        "name" => balancer.to_owned(),
        "endpoint" => format!("{endpoint:?}")
    )
}
