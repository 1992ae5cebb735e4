//! `ServiceBuilder` methods for palisade's layers.

use tower::ServiceBuilder;
#[cfg(any(
    feature = "breaker",
    feature = "retry",
    feature = "shed",
    feature = "ratelimit",
    feature = "idempotency",
    feature = "deadline"
))]
use tower_layer::Stack;

/// Adds palisade's layers to a `tower::ServiceBuilder` by name.
///
/// No method shares a name with one of `ServiceBuilder`'s own (an inherent method would win
/// and the call would fail far from its cause: tower's `retry` takes a policy, so palisade's
/// generic retry is [`retry_on_error`](Self::retry_on_error)), nor with tower-http's
/// `ServiceBuilderExt`, which can be in scope beside this trait. The
/// [`prelude`](crate::prelude) brings it in as `_`, so that its name cannot collide either.
pub trait PalisadeBuilderExt<L>: sealed::Sealed {
    /// A circuit breaker in fail-fast mode, over any service (errors become `BoxError`s).
    #[cfg(feature = "breaker")]
    fn circuit_breaker(
        self,
        config: impl Into<palisade_breaker::BreakerConfig>,
    ) -> ServiceBuilder<Stack<palisade_breaker::CircuitBreakerLayer, L>>;

    /// A circuit breaker in HTTP mode: refusals are `503` responses or gRPC `UNAVAILABLE`.
    #[cfg(all(feature = "breaker", feature = "http"))]
    fn http_circuit_breaker(
        self,
        config: impl Into<palisade_breaker::BreakerConfig>,
    ) -> ServiceBuilder<Stack<palisade_breaker::HttpCircuitBreakerLayer, L>>;

    /// Retries under a budget, for requests that are `Clone`; every error is retried.
    #[cfg(feature = "retry")]
    fn retry_on_error(
        self,
        config: impl Into<palisade_retry::RetryConfig>,
    ) -> ServiceBuilder<Stack<palisade_retry::RetryLayer, L>>;

    /// Retries HTTP and gRPC requests with any body, as [`palisade_retry::policy::HttpPolicy`]
    /// says.
    #[cfg(all(feature = "retry", feature = "http"))]
    fn http_retry(
        self,
        config: impl Into<palisade_retry::RetryConfig>,
    ) -> ServiceBuilder<Stack<palisade_retry::HttpRetryLayer, L>>;

    /// Load shedding in front of any service: refusals are `Overloaded` errors.
    #[cfg(feature = "shed")]
    fn shed(
        self,
        config: impl Into<palisade_shed::ShedConfig>,
    ) -> ServiceBuilder<Stack<palisade_shed::ShedLayer, L>>;

    /// Load shedding in front of an HTTP or gRPC server: refusals are `503` responses or
    /// gRPC `RESOURCE_EXHAUSTED`.
    #[cfg(all(feature = "shed", feature = "http"))]
    fn http_shed(
        self,
        config: impl Into<palisade_shed::ShedConfig>,
    ) -> ServiceBuilder<Stack<palisade_shed::HttpShedLayer, L>>;

    /// Rate limits in front of any service, one count for all requests: refusals are
    /// `RateLimited` errors. (Keyed: `.layer(RateLimitLayer::with_config(c).key_fn(f))`.)
    /// Not `rate_limit`: that is tower's own, which makes callers wait.
    #[cfg(feature = "ratelimit")]
    fn limit_rate(
        self,
        config: palisade_ratelimit::RateLimitConfig,
    ) -> ServiceBuilder<Stack<palisade_ratelimit::RateLimitLayer, L>>;

    /// Rate limits in front of an HTTP or gRPC server: refusals are `429` with the RateLimit
    /// fields, or gRPC `RESOURCE_EXHAUSTED`.
    #[cfg(all(feature = "ratelimit", feature = "http"))]
    fn http_rate_limit(
        self,
        config: palisade_ratelimit::RateLimitConfig,
    ) -> ServiceBuilder<Stack<palisade_ratelimit::HttpRateLimitLayer, L>>;

    /// Idempotency keys in front of an HTTP or gRPC server, with records in `store`.
    #[cfg(feature = "idempotency")]
    fn idempotency(
        self,
        store: impl palisade_idempotency::store::Store,
        config: palisade_idempotency::IdempotencyConfig,
    ) -> ServiceBuilder<Stack<palisade_idempotency::IdempotencyLayer, L>>;

    /// The caller's deadline, read and enforced on the handler of an HTTP or gRPC server.
    #[cfg(feature = "deadline")]
    fn enforce_deadline(
        self,
        config: impl Into<palisade_deadline::DeadlineConfig>,
    ) -> ServiceBuilder<Stack<palisade_deadline::EnforceDeadlineLayer, L>>;

    /// Each outgoing HTTP or gRPC call bounded by the deadline its request inherited (and
    /// its own timeout), with what is left of it sent on.
    #[cfg(feature = "deadline")]
    fn propagate_deadline(
        self,
        config: impl Into<palisade_deadline::PropagateConfig>,
    ) -> ServiceBuilder<Stack<palisade_deadline::PropagateDeadlineLayer, L>>;
}

impl<L> PalisadeBuilderExt<L> for ServiceBuilder<L> {
    #[cfg(feature = "breaker")]
    fn circuit_breaker(
        self,
        config: impl Into<palisade_breaker::BreakerConfig>,
    ) -> ServiceBuilder<Stack<palisade_breaker::CircuitBreakerLayer, L>> {
        self.layer(palisade_breaker::CircuitBreakerLayer::with_config(
            config.into(),
        ))
    }

    #[cfg(all(feature = "breaker", feature = "http"))]
    fn http_circuit_breaker(
        self,
        config: impl Into<palisade_breaker::BreakerConfig>,
    ) -> ServiceBuilder<Stack<palisade_breaker::HttpCircuitBreakerLayer, L>> {
        self.layer(palisade_breaker::HttpCircuitBreakerLayer::with_config(
            config.into(),
        ))
    }

    #[cfg(feature = "retry")]
    fn retry_on_error(
        self,
        config: impl Into<palisade_retry::RetryConfig>,
    ) -> ServiceBuilder<Stack<palisade_retry::RetryLayer, L>> {
        self.layer(palisade_retry::RetryLayer::with_config(config.into()))
    }

    #[cfg(all(feature = "retry", feature = "http"))]
    fn http_retry(
        self,
        config: impl Into<palisade_retry::RetryConfig>,
    ) -> ServiceBuilder<Stack<palisade_retry::HttpRetryLayer, L>> {
        self.layer(palisade_retry::HttpRetryLayer::with_config(config.into()))
    }

    #[cfg(feature = "shed")]
    fn shed(
        self,
        config: impl Into<palisade_shed::ShedConfig>,
    ) -> ServiceBuilder<Stack<palisade_shed::ShedLayer, L>> {
        self.layer(palisade_shed::ShedLayer::with_config(config.into()))
    }

    #[cfg(all(feature = "shed", feature = "http"))]
    fn http_shed(
        self,
        config: impl Into<palisade_shed::ShedConfig>,
    ) -> ServiceBuilder<Stack<palisade_shed::HttpShedLayer, L>> {
        self.layer(palisade_shed::HttpShedLayer::with_config(config.into()))
    }

    #[cfg(feature = "deadline")]
    fn enforce_deadline(
        self,
        config: impl Into<palisade_deadline::DeadlineConfig>,
    ) -> ServiceBuilder<Stack<palisade_deadline::EnforceDeadlineLayer, L>> {
        self.layer(palisade_deadline::EnforceDeadlineLayer::with_config(
            config.into(),
        ))
    }

    #[cfg(feature = "deadline")]
    fn propagate_deadline(
        self,
        config: impl Into<palisade_deadline::PropagateConfig>,
    ) -> ServiceBuilder<Stack<palisade_deadline::PropagateDeadlineLayer, L>> {
        self.layer(palisade_deadline::PropagateDeadlineLayer::with_config(
            config.into(),
        ))
    }

    #[cfg(feature = "ratelimit")]
    fn limit_rate(
        self,
        config: palisade_ratelimit::RateLimitConfig,
    ) -> ServiceBuilder<Stack<palisade_ratelimit::RateLimitLayer, L>> {
        self.layer(palisade_ratelimit::RateLimitLayer::with_config(config))
    }

    #[cfg(all(feature = "ratelimit", feature = "http"))]
    fn http_rate_limit(
        self,
        config: palisade_ratelimit::RateLimitConfig,
    ) -> ServiceBuilder<Stack<palisade_ratelimit::HttpRateLimitLayer, L>> {
        self.layer(palisade_ratelimit::HttpRateLimitLayer::with_config(config))
    }

    #[cfg(feature = "idempotency")]
    fn idempotency(
        self,
        store: impl palisade_idempotency::store::Store,
        config: palisade_idempotency::IdempotencyConfig,
    ) -> ServiceBuilder<Stack<palisade_idempotency::IdempotencyLayer, L>> {
        self.layer(palisade_idempotency::IdempotencyLayer::with_config(
            store, config,
        ))
    }
}

mod sealed {
    pub trait Sealed {}
    impl<L> Sealed for tower::ServiceBuilder<L> {}
}
