//! [`HttpCircuitBreakerLayer`]: the layer that puts a breaker in front of an HTTP service.

use std::sync::Arc;

use palisade_core::HttpClassifier;
use tower_layer::Layer;

use super::HttpCircuitBreaker;
use crate::config::BreakerConfig;
use crate::handle::BreakerHandle;
use crate::keyed::KeyedBreakers;
use crate::shared::Shared;

/// Puts a circuit breaker in front of an HTTP service (an axum `Router`, a tonic server, a
/// hyper client); refusals are responses: `503` + `Retry-After` + problem+json, or gRPC
/// `UNAVAILABLE` + `grpc-retry-pushback-ms`.
///
/// Calls are classified by [`HttpClassifier`] (5xx and errors fail, 4xx are ignored; gRPC
/// by status) unless [`classifier`](Self::classifier) says otherwise.
#[derive(Clone, Debug)]
pub struct HttpCircuitBreakerLayer<C = HttpClassifier, P = BreakerHandle> {
    breakers: P,
    classifier: C,
}

impl HttpCircuitBreakerLayer {
    /// A layer with one new breaker called `name`, with the defaults.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self::with_config(BreakerConfig::from(name.into()))
    }

    /// A layer with one new breaker configured by `config`.
    pub fn with_config(config: BreakerConfig) -> Self {
        Self {
            breakers: BreakerHandle::new(Shared::new(config)),
            classifier: HttpClassifier::default(),
        }
    }
}

impl<K, F> HttpCircuitBreakerLayer<HttpClassifier, KeyedBreakers<K, F>> {
    /// A layer with a breaker per key (a route, a tenant, ...).
    pub fn keyed(breakers: KeyedBreakers<K, F>) -> Self {
        Self {
            breakers,
            classifier: HttpClassifier::default(),
        }
    }
}

impl<C> HttpCircuitBreakerLayer<C, BreakerHandle> {
    /// The handle of the layer's breaker.
    pub fn handle(&self) -> BreakerHandle {
        self.breakers.clone()
    }
}

impl<C, P> HttpCircuitBreakerLayer<C, P> {
    /// Classifies calls with `classifier`.
    pub fn classifier<C2>(self, classifier: C2) -> HttpCircuitBreakerLayer<C2, P> {
        HttpCircuitBreakerLayer {
            breakers: self.breakers,
            classifier,
        }
    }
}

impl<S, C: Clone, P: Clone> Layer<S> for HttpCircuitBreakerLayer<C, P> {
    type Service = HttpCircuitBreaker<S, C, P>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpCircuitBreaker::new(inner, self.breakers.clone(), self.classifier.clone())
    }
}
