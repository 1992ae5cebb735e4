//! `ServiceBuilder` methods for palisade's layers.

use tower::ServiceBuilder;
use tower_layer::Stack;

/// Adds palisade's layers to a `tower::ServiceBuilder` by name.
pub trait ServiceBuilderExt<L>: sealed::Sealed {
    /// A circuit breaker in fail-fast mode, over any service (errors become `BoxError`s).
    #[cfg(feature = "breaker")]
    fn circuit_breaker(
        self,
        config: palisade_breaker::BreakerConfig,
    ) -> ServiceBuilder<Stack<palisade_breaker::CircuitBreakerLayer, L>>;

    /// A circuit breaker in HTTP mode: refusals are `503` responses or gRPC `UNAVAILABLE`.
    #[cfg(feature = "breaker")]
    fn http_circuit_breaker(
        self,
        config: palisade_breaker::BreakerConfig,
    ) -> ServiceBuilder<Stack<palisade_breaker::HttpCircuitBreakerLayer, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    #[cfg(feature = "breaker")]
    fn circuit_breaker(
        self,
        config: palisade_breaker::BreakerConfig,
    ) -> ServiceBuilder<Stack<palisade_breaker::CircuitBreakerLayer, L>> {
        self.layer(palisade_breaker::CircuitBreakerLayer::new(config))
    }

    #[cfg(feature = "breaker")]
    fn http_circuit_breaker(
        self,
        config: palisade_breaker::BreakerConfig,
    ) -> ServiceBuilder<Stack<palisade_breaker::HttpCircuitBreakerLayer, L>> {
        self.layer(palisade_breaker::HttpCircuitBreakerLayer::new(config))
    }
}

mod sealed {
    pub trait Sealed {}
    impl<L> Sealed for tower::ServiceBuilder<L> {}
}
