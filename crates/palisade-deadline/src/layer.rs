//! [`EnforceDeadlineLayer`]: the deadline layer of a server.

use std::sync::Arc;

use tower_layer::Layer;

use crate::config::DeadlineConfig;
use crate::metrics::DeadlineMetrics;
use crate::service::EnforceDeadline;

/// What every clone of a layer shares: its settings and its counters.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: DeadlineConfig,
    pub(crate) metrics: DeadlineMetrics,
}

/// Gives each request the deadline its caller sent (capped by the server's maximum) and
/// enforces it on the handler: see [the crate](crate).
#[derive(Debug, Clone)]
pub struct EnforceDeadlineLayer {
    shared: Arc<Shared>,
}

impl EnforceDeadlineLayer {
    /// The layer with the defaults, for service `name`.
    pub fn new(name: &str) -> Self {
        Self::with_config(DeadlineConfig::from(name))
    }

    /// The layer with `config`.
    pub fn with_config(config: DeadlineConfig) -> Self {
        let metrics = DeadlineMetrics::new(config.name());
        Self {
            shared: Arc::new(Shared { config, metrics }),
        }
    }
}

impl<S> Layer<S> for EnforceDeadlineLayer {
    type Service = EnforceDeadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EnforceDeadline::new(inner, self.shared.clone())
    }
}
