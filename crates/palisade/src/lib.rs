//! Resilience layers for Tower, in one crate.
//!
//! palisade is a set of independent Tower layers that give any `tower::Service` — an axum
//! `Router`, a tonic server or `Channel`, a hyper client — the resilience patterns of
//! distributed systems, in-process, at a cost close to zero. Each layer lives in its own
//! crate; this one re-exports them behind features named after them, with a [`prelude`] and
//! a [`PalisadeBuilderExt`] so a stack reads as one chain.
//!
//! | feature | crate | what it does |
//! |---|---|---|
//! | `http` (default) | every layer | the HTTP and gRPC modes: `Http*Layer`s, HTTP classifiers, refusals as `503` + problem+json or gRPC statuses |
//! | `breaker` (default) | [`palisade-breaker`](breaker) | circuit breaker: fail-fast, gate mode for balancers, keyed, HTTP/gRPC-aware |
//! | `retry` (default) | [`palisade-retry`](retry) | retries under a budget, replayable HTTP bodies, server hints, idempotency keys |
//! | `shed` (default) | [`palisade-shed`](shed) | load shedding: adaptive concurrency limits, a CoDel-bounded queue, priorities |
//! | `ratelimit` (default) | [`palisade-ratelimit`](ratelimit) | rate limits: GCRA quotas per key in bounded memory, client keys behind trusted proxies, `429` with the IETF RateLimit fields |
//! | `balance` (default) | [`palisade-balance`](balance) | discovery (static, watch) and failure-aware P2C balancing with ejection, hyper-util HTTP endpoints |
//! | `idempotency` (default) | [`palisade-idempotency`](idempotency) | idempotency keys: a retried POST runs once; in memory, or on Redis with `redis` |
//! | `registry` (default) | [`palisade-registry`](registry) | the graceful drain: readiness fails first, a grace period for the balancers in front, then `503` + `Retry-After` / `UNAVAILABLE` while the requests in flight finish |
//! | `deadline` | [`palisade-deadline`](deadline) | deadlines: the caller's `grpc-timeout` or timeout header read at the edge, capped, handed to the handler, enforced with `504` / `DEADLINE_EXCEEDED`, and passed on by every outgoing call |
//! | `client` (default) | this crate | [`client::BoxClient`]: any HTTP client stack as one `Clone + Send + Sync` type, for axum state |
//! | `grpc` | [`palisade-balance`](balance) | a tonic `Channel` per endpoint (`balance::grpc`) |
//! | `grpc-service-config` | [`palisade-retry`](retry) | gRPC's retry and hedging design (gRFC A6) read from a service config's JSON, per method (`retry::service_config`) |
//! | `dns` | [`palisade-balance`](balance) | DNS discovery (A/AAAA, SRV) through hickory-resolver |
//! | `etcd` | [`palisade-registry`](registry), [`palisade-balance`](balance) | a service registry on etcd: registration under a lease with heartbeats (`registry::etcd`), discovery by watch (`balance::discover::EtcdDiscover`); etcd-client builds with `protoc` |
//! | `redis` | [`palisade-idempotency`](idempotency) | the Redis store for idempotency records |
//! | `postgres` | [`palisade-idempotency`](idempotency) | the Postgres store, and the handler's transaction committed with the record of its response |
//! | `axum` | [`palisade-idempotency`](idempotency) | axum extractors (the Postgres store's `KeyedTransaction`) |
//! | `serde` | every layer | `Deserialize` for every configuration; [`config::deserialize`] names a bad field by its path |
//! | `toml` | every layer | `config::from_toml`: a whole stack's configuration from a TOML file |
//! | `full` | all of them | every layer and every integration |
//!
//! The default is the layers without a network integration — no tonic, no hickory, no
//! Redis: 83 crates in `cargo tree -e normal`, against 210 with `full`; a breaker alone
//! without `http` (`default-features = false, features = ["breaker"]`) is 27. Turn on what you
//! use.
//!
//! ```
//! use std::time::Duration;
//! use palisade::prelude::*;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let config = BreakerConfig::builder("search").build().unwrap();
//! let svc = ServiceBuilder::new()
//!     .circuit_breaker(config)
//!     .service(service_fn(|q: &'static str| async move { Ok::<_, std::io::Error>(q.len()) }));
//! assert_eq!(svc.oneshot("palisade").await.unwrap(), 8);
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "balance")]
#[doc(inline)]
pub use palisade_balance as balance;
#[cfg(feature = "breaker")]
#[doc(inline)]
pub use palisade_breaker as breaker;
#[doc(inline)]
pub use palisade_core as core;
#[cfg(feature = "deadline")]
#[doc(inline)]
pub use palisade_deadline as deadline;
#[cfg(feature = "idempotency")]
#[doc(inline)]
pub use palisade_idempotency as idempotency;
#[cfg(feature = "ratelimit")]
#[doc(inline)]
pub use palisade_ratelimit as ratelimit;
#[cfg(feature = "registry")]
#[doc(inline)]
pub use palisade_registry as registry;
#[cfg(feature = "retry")]
#[doc(inline)]
pub use palisade_retry as retry;
#[cfg(feature = "shed")]
#[doc(inline)]
pub use palisade_shed as shed;

mod builder_ext;
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod client;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub mod config;

pub use crate::builder_ext::PalisadeBuilderExt;

/// The types most stacks need.
pub mod prelude {
    #[cfg(feature = "balance")]
    pub use palisade_balance::{
        Balance, BalanceConfig, NoReadyEndpoints, SlowStart, health::HealthCheck,
    };
    #[cfg(all(feature = "breaker", feature = "http"))]
    pub use palisade_breaker::HttpCircuitBreakerLayer;
    #[cfg(feature = "breaker")]
    pub use palisade_breaker::{
        BreakerConfig, BreakerHandle, BreakerOpen, CircuitBreakerLayer, OpenDuration, Window,
    };
    pub use palisade_core::{ConfigError, Outcome};
    #[cfg(feature = "http")]
    pub use palisade_core::{GrpcClassifier, HttpClassifier};
    #[cfg(feature = "deadline")]
    pub use palisade_deadline::{
        Deadline, DeadlineConfig, EnforceDeadlineLayer, PropagateConfig, PropagateDeadlineLayer,
    };
    #[cfg(feature = "idempotency")]
    pub use palisade_idempotency::{
        IdempotencyConfig, IdempotencyLayer, Scope, store::MemoryStore,
    };
    #[cfg(all(feature = "ratelimit", feature = "http"))]
    pub use palisade_ratelimit::HttpRateLimitLayer;
    #[cfg(feature = "ratelimit")]
    pub use palisade_ratelimit::{Policy, Quota, RateLimitConfig, RateLimitLayer, RateLimited};
    #[cfg(feature = "registry")]
    pub use palisade_registry::{Drain, DrainConfig};
    #[cfg(all(feature = "retry", feature = "http"))]
    pub use palisade_retry::HttpRetryLayer;
    #[cfg(feature = "retry")]
    pub use palisade_retry::{
        AttemptTimedOut, DeadlineExceeded, RetryConfig, RetryLayer,
        backoff::Backoff,
        budget::{Budget, PercentBudget, ThrottledBudget, TokenBudget},
        hedge::Hedge,
    };
    #[cfg(all(feature = "shed", feature = "http"))]
    pub use palisade_shed::HttpShedLayer;
    #[cfg(feature = "shed")]
    pub use palisade_shed::{
        Overloaded, ShedConfig, ShedHandle, ShedLayer,
        limit::{Aimd, Fixed, Gradient},
        priority::Priority,
    };

    // As `_`: its methods, without a name to collide with tower-http's `ServiceBuilderExt`.
    // (The breaker's `State` is not here either: axum's `State` extractor has the name.)
    pub use crate::PalisadeBuilderExt as _;
}
