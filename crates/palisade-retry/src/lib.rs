//! Retries for Tower services that cannot turn an outage into a retry storm.
//!
//! A retry turns a transient failure into a success; a retry of every failure turns an
//! outage into three times the load on a dependency that is trying to recover. This layer
//! retries what its [`Policy`](policy::Policy) says may be retried — within a per-request
//! limit of attempts, a per-attempt timeout and a deadline — and only as far as a
//! [`Budget`](budget::Budget) shared by the whole client allows: by default retries are at
//! most 20 % of recent requests plus 10 a second (Finagle's design), and stop altogether
//! while more than a third of attempts fail (gRPC's retry throttling) — so an outage costs
//! its dependency almost no retries (1.002× its load, not 3×), while transient failures are
//! retried in full.
//!
//! # What it does
//!
//! - **Any request type.** [`RetryLayer`] retries requests that are `Clone`.
//!   [`HttpRetryLayer`] retries `http::Request<B>` with **any body**, recording the body as
//!   the first attempt streams it (up to 64 KiB by default) and replaying it byte for byte —
//!   so it works for hyper and tonic clients, which tower's `Retry` cannot serve.
//! - **What is retried** ([`HttpPolicy`](policy::HttpPolicy)): transport errors, 502, 503,
//!   504 and 429, gRPC `UNAVAILABLE`; only idempotent methods, or requests carrying an
//!   `Idempotency-Key`. Replace the policy for anything else.
//! - **Attempts**: [`max_attempts`](RetryConfigBuilder::max_attempts) counts the first one;
//!   a per-attempt timeout ([`AttemptTimedOut`], retried) and a deadline over all attempts
//!   ([`DeadlineExceeded`]).
//! - **Backoff** ([`Backoff`](backoff::Backoff)): exponential with full jitter by default,
//!   equal or decorrelated jitter as options, capped. `Retry-After` and
//!   `grpc-retry-pushback-ms` override it (capped; a negative pushback stops retries).
//! - **Budgets** ([`budget`]): a percentage of recent requests plus a floor
//!   ([`PercentBudget`](budget::PercentBudget)), gRPC's token bucket
//!   ([`TokenBudget`](budget::TokenBudget)), or both ([`ThrottledBudget`](budget::ThrottledBudget),
//!   the default). Lock-free, one per layer (shared by its clones), and
//!   across layers when you hand them the same one
//!   ([`with_budget`](RetryLayer::with_budget)). When the budget is empty the last response
//!   or error is returned as it was.
//! - **Hedged requests** ([`hedge`]): an answer that is merely slow is raced by another
//!   attempt after a fixed delay or a percentile of recent latency; hedges draw on the same
//!   budget, and on a share of recent requests of their own, so hedging stops by itself in
//!   an overload.
//! - **Deadlines that travel**: a request handled under palisade-deadline's server layer
//!   carries its caller's deadline; no retry or hedge is started that cannot finish in it.
//! - **gRPC's retry design** (`service_config`, feature `service-config`): a gRPC service
//!   config's `retryPolicy`, `hedgingPolicy`, `retryThrottling` and `timeout`, per method.
//! - **Safe POST retries**: with [`idempotency_keys`](RetryConfigBuilder::idempotency_keys),
//!   a non-idempotent request gets an `Idempotency-Key` before its first attempt, so every
//!   attempt is the same operation to a server that honours the key.
//! - **Metrics and events** ([`metrics`]): attempts by what followed them, refusals by the
//!   budget, the backoffs; a `tracing` event for each retry with its reason.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use palisade_retry::{RetryConfig, RetryLayer};
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! // A dependency that fails its first two calls.
//! let calls = Arc::new(AtomicU32::new(0));
//! let flaky = service_fn({
//!     let calls = calls.clone();
//!     move |req: &'static str| {
//!         let n = calls.fetch_add(1, Ordering::SeqCst);
//!         async move { if n < 2 { Err("unavailable") } else { Ok(req.len()) } }
//!     }
//! });
//! let mut svc = ServiceBuilder::new()
//!     .layer(RetryLayer::new("inventory"))
//!     .service(flaky);
//! assert_eq!(svc.ready().await.unwrap().call("sku-42").await.unwrap(), 6);
//! assert_eq!(calls.load(Ordering::SeqCst), 3, "one call and two retries");
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod error;
mod future;
mod layer;
mod replay;
mod retrying;
mod service;
mod shared;

pub mod backoff;
pub mod budget;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub mod de;
pub mod hedge;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
pub mod metrics;
pub mod policy;
#[cfg(feature = "service-config")]
#[cfg_attr(docsrs, doc(cfg(feature = "service-config")))]
pub mod service_config;

pub use crate::config::{RetryConfig, RetryConfigBuilder};
pub use crate::error::{AttemptTimedOut, DeadlineExceeded};
pub use crate::future::ResponseFuture;
#[cfg(feature = "http")]
pub use crate::http::HttpRetryLayer;
pub use crate::layer::RetryLayer;
pub use crate::replay::{CloneRequests, Replay};
pub use crate::service::Retry;
