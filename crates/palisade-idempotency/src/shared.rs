//! The state a layer shares with every service it makes: the configuration, the store and
//! the metrics' handles. It lives apart from both so that the layer (which makes it) and
//! the service (which reads it on each request) depend on it, not on each other.

use std::sync::Arc;

use crate::config::IdempotencyConfig;
use crate::metrics::IdempotencyMetrics;
use crate::store::Store;

/// What every service made by one layer shares.
pub(crate) struct Shared {
    pub(crate) config: IdempotencyConfig,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) metrics: IdempotencyMetrics,
}

impl Shared {
    /// The shared state of a layer configured by `config`, its records in `store`.
    pub(crate) fn new(store: Arc<dyn Store>, config: IdempotencyConfig) -> Self {
        Self {
            metrics: IdempotencyMetrics::new(&config.name),
            config,
            store,
        }
    }
}
