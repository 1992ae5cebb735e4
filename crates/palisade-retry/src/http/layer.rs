//! [`HttpRetryLayer`]: retries for HTTP and gRPC services, with any request body.

use std::sync::Arc;

use tower_layer::Layer;

use super::ReplayBodies;
use crate::budget::Budget;
use crate::config::RetryConfig;
use crate::policy::HttpPolicy;
use crate::service::Retry;
use crate::shared::Shared;

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
    /// [`RetryLayer::with_budget`](crate::RetryLayer::with_budget).
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

impl<P: std::fmt::Debug> std::fmt::Debug for HttpRetryLayer<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRetryLayer")
            .field("config", &self.shared.config)
            .field("policy", &self.policy)
            .finish()
    }
}
