//! [`HttpRateLimitLayer`]: the layer that limits rates in front of an HTTP or gRPC server.

use std::sync::Arc;

use tower_layer::Layer;

use super::HttpRateLimit;
use crate::config::RateLimitConfig;
use crate::limiter::Limiter;

/// Limits request rates in front of an HTTP or gRPC server: refusals are `429` +
/// `Retry-After` + the RateLimit fields + problem+json, or gRPC `RESOURCE_EXHAUSTED`, so it
/// drops into axum with no `HandleErrorLayer`.
///
/// Every service the layer makes shares its counts: apply it once, around the whole server
/// (a [`Scope`](super::Scope) limits a policy to some routes).
#[derive(Clone, Debug)]
pub struct HttpRateLimitLayer {
    limiter: Arc<Limiter>,
}

impl HttpRateLimitLayer {
    /// A layer that limits as `config` says.
    pub fn with_config(config: RateLimitConfig) -> Self {
        Self {
            limiter: Limiter::new(config, |policy| !policy.key.is_global()),
        }
    }
}

impl<S> Layer<S> for HttpRateLimitLayer {
    type Service = HttpRateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpRateLimit::new(inner, self.limiter.clone())
    }
}
