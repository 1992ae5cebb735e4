//! The layer: shared configuration and store, cheap to clone.

use std::sync::Arc;

use tower_layer::Layer;

use crate::config::IdempotencyConfig;
use crate::scope::Scope;
use crate::service::Idempotency;
use crate::shared::Shared;
use crate::store::Store;

/// Applies [`Idempotency`] to a service: see the [crate documentation](crate).
#[derive(Clone)]
pub struct IdempotencyLayer {
    shared: Arc<Shared>,
}

impl IdempotencyLayer {
    /// A layer called `name` with the defaults, its records in `store` (a
    /// [`MemoryStore`](crate::store::MemoryStore) for one instance, a `RedisStore` for
    /// many), its keys scoped by `scope`.
    pub fn new(name: impl Into<Arc<str>>, store: impl Store, scope: Scope) -> Self {
        Self::with_config(store, IdempotencyConfig::defaults(name.into(), scope))
    }

    /// A layer configured by `config`, its records in `store`.
    pub fn with_config(store: impl Store, config: IdempotencyConfig) -> Self {
        Self::with_shared_store(Arc::new(store), config)
    }

    /// A layer over a store chosen at run time, or shared with other layers.
    pub fn with_shared_store(store: Arc<dyn Store>, config: IdempotencyConfig) -> Self {
        Self {
            shared: Arc::new(Shared::new(store, config)),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &IdempotencyConfig {
        &self.shared.config
    }
}

impl std::fmt::Debug for IdempotencyLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyLayer")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for IdempotencyLayer {
    type Service = Idempotency<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Idempotency::new(inner, self.shared.clone())
    }
}
