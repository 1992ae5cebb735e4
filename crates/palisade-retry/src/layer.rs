//! [`RetryLayer`]: retries for any service whose requests are `Clone`.

use std::sync::Arc;

use tower_layer::Layer;

use crate::budget::Budget;
use crate::config::RetryConfig;
use crate::policy::RetryErrors;
use crate::replay::CloneRequests;
use crate::service::Retry;
use crate::shared::Shared;

/// Retries requests that are `Clone`, under a budget; every error is retried by default
/// ([`RetryErrors`]), or what a [`Policy`](crate::policy::Policy) says.
///
/// Cheap to clone: every clone, and every service it makes, shares one budget, one jitter
/// sequence and one set of metrics.
#[derive(Clone)]
pub struct RetryLayer<P = RetryErrors> {
    shared: Arc<Shared>,
    policy: P,
}

impl RetryLayer {
    /// A layer called `name` that retries errors, with the defaults.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self::with_config(RetryConfig::from(name.into()))
    }

    /// A layer that retries errors as `config` says.
    pub fn with_config(config: RetryConfig) -> Self {
        Self {
            shared: Arc::new(Shared::new(config)),
            policy: RetryErrors,
        }
    }
}

impl<P> RetryLayer<P> {
    /// The same layer, drawing on `budget` instead of the one its configuration made.
    ///
    /// The way to bound several layers by one budget — a client's retries across all of its
    /// dependencies — or to use a [`Budget`] of your own:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use palisade_retry::{RetryLayer, budget::PercentBudget};
    ///
    /// let budget = Arc::new(PercentBudget::default());
    /// let orders = RetryLayer::new("orders").with_budget(budget.clone());
    /// let stock = RetryLayer::new("stock").with_budget(budget);
    /// # let _ = (orders, stock);
    /// ```
    pub fn with_budget(self, budget: impl Budget + 'static) -> Self {
        Self {
            shared: self.shared.rebudgeted(budget),
            policy: self.policy,
        }
    }

    /// The same layer with another policy.
    pub fn policy<P2>(self, policy: P2) -> RetryLayer<P2> {
        RetryLayer {
            shared: self.shared,
            policy,
        }
    }
}

impl<S, P: Clone> Layer<S> for RetryLayer<P> {
    type Service = Retry<S, P, CloneRequests>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::new(
            inner,
            self.shared.clone(),
            self.policy.clone(),
            CloneRequests,
        )
    }
}

impl<P: std::fmt::Debug> std::fmt::Debug for RetryLayer<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryLayer")
            .field("config", &self.shared.config)
            .field("policy", &self.policy)
            .finish()
    }
}
