//! The balancer's metrics, recorded through the `metrics` facade.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `palisade_balance_discovery_kept_total` | counter | `source` | sets a source produced empty, for which the last good set was kept |

use metrics::counter;

pub(crate) fn kept_last_good_set(source: &'static str) {
    counter!("palisade_balance_discovery_kept_total", "source" => source).increment(1);
}
