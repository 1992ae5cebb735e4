//! The balancer's metrics, recorded through the `metrics` facade.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `palisade_balance_discovery_kept_total` | counter | `source` | sets a source produced empty, for which the last good set was kept |
//! | `palisade_balance_no_endpoints_total` | counter | `name` | calls failed because no endpoint was ready in time |

use metrics::counter;

pub(crate) fn kept_last_good_set(source: &'static str) {
    counter!("palisade_balance_discovery_kept_total", "source" => source).increment(1);
}

pub(crate) fn no_endpoints(balancer: &str) {
    counter!("palisade_balance_no_endpoints_total", "name" => balancer.to_owned()).increment(1);
}
