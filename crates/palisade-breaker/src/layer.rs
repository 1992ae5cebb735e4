//! The layers that put a breaker in front of a service.

use std::sync::Arc;

use palisade_core::ErrorsAsFailures;
use tower_layer::Layer;

use crate::config::BreakerConfig;
use crate::handle::BreakerHandle;
use crate::keyed::KeyedBreakers;
use crate::service::CircuitBreaker;
use crate::shared::Shared;

/// Puts a circuit breaker in front of any service; errors become `BoxError`s (`tower::BoxError`).
///
/// Every service the layer makes (and every clone of the layer) shares one breaker, so the
/// layer can go on an axum `Router` whose services are cloned per request. For a breaker
/// per endpoint, make a layer per endpoint from one [`BreakerConfig`]; for a breaker per
/// request key, use [`keyed`](Self::keyed).
///
/// Calls are classified by [`ErrorsAsFailures`] unless [`classifier`](Self::classifier)
/// says otherwise.
#[derive(Clone, Debug)]
pub struct CircuitBreakerLayer<C = ErrorsAsFailures, P = BreakerHandle> {
    breakers: P,
    classifier: C,
    gate: Option<BreakerHandle>,
}

impl CircuitBreakerLayer {
    /// A layer with one new breaker called `name`, with the defaults, in fail-fast mode.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self::with_config(BreakerConfig::from(name.into()))
    }

    /// A layer with one new breaker configured by `config`, in fail-fast mode.
    pub fn with_config(config: BreakerConfig) -> Self {
        Self {
            breakers: BreakerHandle::new(Shared::new(config)),
            classifier: ErrorsAsFailures,
            gate: None,
        }
    }
}

impl<K, F> CircuitBreakerLayer<ErrorsAsFailures, KeyedBreakers<K, F>> {
    /// A layer with a breaker per key (fail-fast mode only: a key needs the request, which
    /// `poll_ready` does not have).
    pub fn keyed(breakers: KeyedBreakers<K, F>) -> Self {
        Self {
            breakers,
            classifier: ErrorsAsFailures,
            gate: None,
        }
    }
}

impl<C> CircuitBreakerLayer<C, BreakerHandle> {
    /// The handle of the layer's breaker.
    pub fn handle(&self) -> BreakerHandle {
        self.breakers.clone()
    }

    /// Switches to gate mode: `poll_ready` is `Pending` while the breaker is open, and wakes
    /// when a probe is due. This is the mode for an endpoint inside a load balancer.
    pub fn gate(mut self) -> Self {
        self.gate = Some(self.breakers.clone());
        self
    }
}

impl<C, P> CircuitBreakerLayer<C, P> {
    /// Classifies calls with `classifier`.
    pub fn classifier<C2>(self, classifier: C2) -> CircuitBreakerLayer<C2, P> {
        CircuitBreakerLayer {
            breakers: self.breakers,
            classifier,
            gate: self.gate,
        }
    }
}

impl<S, C: Clone, P: Clone> Layer<S> for CircuitBreakerLayer<C, P> {
    type Service = CircuitBreaker<S, C, P>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::new(
            inner,
            self.breakers.clone(),
            self.classifier.clone(),
            self.gate.clone(),
        )
    }
}
