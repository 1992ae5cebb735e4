//! The layers: [`RetryLayer`] for any service whose requests are `Clone`, and
//! [`HttpRetryLayer`] for HTTP services with any request body.

use std::sync::Arc;

use tower_layer::Layer;

use crate::budget::Budget;
use crate::config::RetryConfig;
use crate::http::ReplayBodies;
use crate::policy::{HttpPolicy, RetryErrors};
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

/// Retries HTTP and gRPC requests with any body, which it records as the first attempt
/// sends it ([`ReplayBodies`]); what is retried is an [`HttpPolicy`] by default.
///
/// Errors of the inner service (transport errors) reach the caller as `BoxError` after the
/// last attempt; responses, retried or not, are returned as the server sent them.
#[derive(Clone)]
pub struct HttpRetryLayer<P = HttpPolicy> {
    shared: Arc<Shared>,
    policy: P,
    replay: ReplayBodies,
}

impl HttpRetryLayer {
    /// A layer called `name` with the defaults and the default [`HttpPolicy`].
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self::with_config(RetryConfig::from(name.into()))
    }

    /// A layer that retries as `config` says, with the default [`HttpPolicy`].
    pub fn with_config(config: RetryConfig) -> Self {
        let replay = ReplayBodies::new(config.replay_limit, config.idempotency_keys);
        Self {
            shared: Arc::new(Shared::new(config)),
            policy: HttpPolicy::default(),
            replay,
        }
    }
}

impl<P> HttpRetryLayer<P> {
    /// The same layer, drawing on `budget` instead of the one its configuration made: see
    /// [`RetryLayer::with_budget`].
    pub fn with_budget(self, budget: impl Budget + 'static) -> Self {
        Self {
            shared: self.shared.rebudgeted(budget),
            policy: self.policy,
            replay: self.replay,
        }
    }

    /// The same layer with another policy.
    pub fn policy<P2>(self, policy: P2) -> HttpRetryLayer<P2> {
        HttpRetryLayer {
            shared: self.shared,
            policy,
            replay: self.replay,
        }
    }
}

impl<S, P: Clone> Layer<S> for HttpRetryLayer<P> {
    type Service = Retry<S, P, ReplayBodies>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::new(inner, self.shared.clone(), self.policy.clone(), self.replay)
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

impl<P: std::fmt::Debug> std::fmt::Debug for HttpRetryLayer<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRetryLayer")
            .field("config", &self.shared.config)
            .field("policy", &self.policy)
            .finish()
    }
}
