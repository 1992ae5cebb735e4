//! Rate limits for Tower services: a quota for each caller, in bounded memory, said in the
//! headers clients read.
//!
//! A rate limit protects a service from any one caller: a client in a retry loop, a
//! scraper, a tenant whose batch job fires all at once. Each [`Policy`] gives a [`Quota`] —
//! `count` requests every `period`, at most `burst` at once — to each key its
//! [`KeySource`](http::KeySource) makes (everyone together, the client's address, a header,
//! a tenant placed by authentication); a request over the quota is refused at once.
//!
//! # What it does
//!
//! - **GCRA** ([`Quota`]): one timestamp per key, no timer, exact arithmetic in integer
//!   nanoseconds — the `RateLimit` fields and `Retry-After` are exact, not estimates.
//! - **Keys a client cannot choose** ([`http::TrustedProxies`]): the client address behind a
//!   load balancer only through proxies you name, `X-Forwarded-For` or `Forwarded` read
//!   right to left; never a header's leftmost value, which the client writes.
//! - **Bounded memory**: at most [`max_keys`](Policy::max_keys) keys a policy; a flood of
//!   new keys (an attacker cycling addresses) evicts idle keys first — exact, since an idle
//!   key holds nothing a new one does not — then the keys nearest to idle.
//! - **Several policies** ([`RateLimitConfigBuilder::policy`]): per route, per method, tiers
//!   by a header ([`http::Scope`]); checked in order, the first that refuses wins and the
//!   quota the others gave is handed back.
//! - **Refusals** ([`RateLimited`]): HTTP `429` with `Retry-After`, the IETF
//!   `RateLimit-Policy` and `RateLimit` fields and problem+json; gRPC `RESOURCE_EXHAUSTED`
//!   with `grpc-retry-pushback-ms`; a typed error in generic mode. Admitted responses carry
//!   the fields too, so a client can slow down before it is refused.
//! - **One limit for a fleet** ([`fleet`], [`store`]): every instance takes from the same
//!   counts in Redis (one server or a Redis Cluster; one script a decision, on Redis's
//!   clock), exactly or in leases that spare most round trips; a store that fails admits,
//!   refuses, or falls back to a local share, as configured.
//! - **Observability**: [`metrics`] per policy, refusals at DEBUG.
//!
//! palisade's own clients read a `429` as a hint: the retry layer and the balancer wait what
//! `Retry-After`, or else the `RateLimit` field, says.
//!
//! # Example
//!
//! ```
//! use palisade_ratelimit::{HttpRateLimitLayer, Policy, Quota, RateLimitConfig};
//! use palisade_ratelimit::http::{KeySource, TrustedProxies};
//!
//! let proxies = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
//! let config = RateLimitConfig::builder("api")
//!     // Each client address: 10 requests a second, 20 at once.
//!     .policy(Policy::new("per-client", Quota::per_second(10).burst(20)).key(KeySource::client_ip(proxies)))
//!     // And the whole server: 1000 a second.
//!     .policy(Policy::new("server", Quota::per_second(1000)))
//!     .build()
//!     .unwrap();
//! let app: axum::Router = axum::Router::new()
//!     .route("/", axum::routing::get(|| async { "hello" }))
//!     .layer(HttpRateLimitLayer::with_config(config)); // refusals are 429 + RateLimit fields
//! # let _ = app;
//! ```
//!
//! # Bounded memory
//!
//! Keys live in shards, each with a fixed share of `max_keys`. A shard that is full when a
//! new key arrives drops every idle key (its TAT has passed: it holds exactly what a new key
//! would), and if none is idle, the eighth of its keys nearest to idle, which then get a
//! fresh burst a little early. That is the only error the bound can cause, and it falls on
//! the quietest keys; the busiest, which a limit exists for, are the last to go. Each
//! eviction is counted (`palisade_ratelimit_evicted_total`, `kind` = `idle` or `early`).
//!
//! # Testing with paused time
//!
//! The limiter reads the CPU's time-stamp counter ([`palisade_core::clock::Clock`]), which
//! tokio's paused clock does not move. A test that pauses time (`start_paused`,
//! `tokio::time::advance`) turns on this crate's `test-util` feature (or `palisade`'s) in
//! its `[dev-dependencies]`: the limiter then reads tokio's clock, and quotas refill exactly
//! as far as the test advances it.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub mod de;
mod error;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod fleet;
mod future;
mod gcra;
mod key;
mod keyed;
mod layer;
mod limiter;
mod quota;
mod service;

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
pub mod metrics;
pub mod store;

pub use crate::config::{DEFAULT_MAX_KEYS, Policy, RateLimitConfig, RateLimitConfigBuilder};
pub use crate::error::RateLimited;
pub use crate::future::ResponseFuture;
#[cfg(feature = "http")]
pub use crate::http::HttpRateLimitLayer;
pub use crate::key::Key;
pub use crate::layer::{Global, KeyFn, KeyOf, RateLimitLayer};
pub use crate::quota::Quota;
pub use crate::service::RateLimit;
