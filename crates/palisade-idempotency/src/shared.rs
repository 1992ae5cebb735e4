//! The state a layer shares with every service it makes: the configuration, the store, the
//! breaker in front of the store, and the metrics' handles. It lives apart from both so that the layer (which makes it) and
//! the service (which reads it on each request) depend on it, not on each other.

use std::sync::Arc;
use std::time::Duration;

use palisade_breaker::{BreakerConfig, BreakerHandle, OpenDuration};

use crate::config::IdempotencyConfig;
use crate::metrics::IdempotencyMetrics;
use crate::store::Store;

/// What every service made by one layer shares.
pub(crate) struct Shared {
    pub(crate) config: IdempotencyConfig,
    pub(crate) store: Arc<dyn Store>,
    /// Opens when the store keeps failing, so that keyed requests are refused (or run
    /// unprotected, with `fail_open`) at once instead of each waiting out the store's
    /// timeout: see [`store_breaker`].
    pub(crate) store_breaker: BreakerHandle,
    pub(crate) metrics: IdempotencyMetrics,
}

/// The breaker in front of a layer's store, named `{name}-store` in its metrics: three
/// failed operations in a row open it for 1 s, doubling up to 5 s while its probe keeps
/// failing; one operation that succeeds closes it.
///
/// The ceiling is low on purpose: every second it stays open after the store is back is a
/// second of needless 503s, while a probe costs one request. And on a Redis Cluster a probe
/// can land on the one shard still failing over while the others are fine; with a 30 s
/// ceiling, a failover of a few seconds kept the whole store refused for a minute in the
/// cluster failover test.
pub(crate) fn store_breaker(layer: &str) -> BreakerHandle {
    let config = BreakerConfig::builder(format!("{layer}-store"))
        .consecutive_failures(3)
        .no_failure_rate()
        .open_duration(OpenDuration::exponential(
            Duration::from_secs(1),
            Duration::from_secs(5),
        ))
        .half_open_probes(1)
        .successes_to_close(1)
        .build()
        .expect("a valid store breaker configuration");
    BreakerHandle::standalone(config)
}

impl Shared {
    /// The shared state of a layer configured by `config`, its records in `store`.
    pub(crate) fn new(store: Arc<dyn Store>, config: IdempotencyConfig) -> Self {
        Self {
            metrics: IdempotencyMetrics::new(&config.name),
            store_breaker: store_breaker(&config.name),
            config,
            store,
        }
    }
}
