//! A circuit breaker for Tower services.
//!
//! When a dependency fails, calling it anyway makes everything worse: callers wait on
//! timeouts, threads and connections pile up, and the dependency gets no room to recover.
//! A circuit breaker watches the outcomes of calls and, when they go bad, **opens**: calls
//! are refused at once, for a while, without reaching the dependency. Then it lets a few
//! **probes** through (**half-open**); if they succeed it **closes** and traffic resumes, if
//! one fails it opens again, for longer.
//!
//! ```text
//!            trip policy fires                 open duration has passed
//!   Closed ───────────────────────▶  Open  ──────────────────────────────▶ HalfOpen
//!     ▲                               ▲                                      │
//!     │                               └───────── a probe fails ──────────────┤
//!     └──────────────────── enough probes succeed ──────────────────────────┘
//! ```
//!
//! # What it does
//!
//! - **Trip policies** ([`BreakerConfig`]), combined (any trips): consecutive failures; a
//!   failure rate over a count-based or time-based sliding [`Window`] once it holds a
//!   minimum number of calls; a slow-call rate over the same window.
//! - **States** ([`State`]): closed, open, half-open (a number of probes at a time and the
//!   successes needed to close), plus forced-open and disabled (metrics only) through a
//!   [`BreakerHandle`], which also reads counts and offers a `watch` of transitions.
//! - **Open duration** ([`OpenDuration`]): fixed, or exponential with jitter and a cap,
//!   growing each time a probe fails.
//! - **Outcomes** come from a classifier ([`palisade_core::Classify`]): errors for a plain
//!   service, 5xx for HTTP, a set of `grpc-status` codes for gRPC — read from the trailers
//!   of a streaming gRPC response in HTTP mode.
//! - **Two modes** for [`CircuitBreaker`]: *fail-fast* (`call` refuses with a typed
//!   [`BreakerOpen`] carrying `retry_after`) and *gate* (`poll_ready` is `Pending` while open
//!   and wakes when a probe is due — for endpoints inside a balancer).
//! - **HTTP mode** ([`HttpCircuitBreakerLayer`]): a refusal is a `503` with `Retry-After`
//!   and problem+json, or gRPC `UNAVAILABLE`, so it drops into axum with no
//!   `HandleErrorLayer`.
//! - **Keyed breakers** ([`KeyedBreakers`]): a breaker per host, route or tenant, in
//!   bounded memory.
//! - **Cheap**: closed, a call takes no lock and allocates nothing (one atomic load to
//!   admit, a few relaxed atomic updates to record). A dropped call gives its probe slot back
//!   and counts as cancelled, never as a success.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use palisade_breaker::{BreakerConfig, BreakerOpen, CircuitBreakerLayer, OpenDuration, State};
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let breaker = CircuitBreakerLayer::with_config(
//!     BreakerConfig::builder("inventory")
//!
//!         .consecutive_failures(3)
//!         .open_duration(OpenDuration::fixed(Duration::from_secs(5)))
//!         .build()
//!         .unwrap(),
//! );
//! let handle = breaker.handle();
//! let mut svc = ServiceBuilder::new()
//!     .layer(breaker)
//!     .service(service_fn(|_: ()| async { Err::<(), _>("inventory is down") }));
//!
//! for _ in 0..3 {
//!     assert!(svc.ready().await.unwrap().call(()).await.is_err());
//! }
//! assert_eq!(handle.state(), State::Open);
//!
//! // Now calls are refused at once, without reaching the service.
//! let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
//! let open = err.downcast_ref::<BreakerOpen>().unwrap();
//! assert_eq!(open.retry_after(), Some(Duration::from_secs(5)));
//! # }
//! ```
//!
//! See `docs/breaker.md` in the repository for the behaviour in depth, the defaults beside
//! resilience4j, Polly, Envoy and Linkerd, and measured results.
//!
//! # Testing with paused time
//!
//! The breaker reads the CPU's time-stamp counter ([`palisade_core::clock::Clock`]), which
//! tokio's paused clock does not move. A test that pauses time (`start_paused`,
//! `tokio::time::advance`) turns on this crate's `test-util` feature (or `palisade`'s) in
//! its `[dev-dependencies]`: the breaker then reads tokio's clock, and its open durations
//! and time windows follow the test's.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub mod de;
mod error;
mod future;
pub mod guard;
mod handle;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
mod keyed;
mod layer;
mod machine;
pub mod metrics;
mod phase;
mod pick;
mod service;
mod shared;
mod state;
mod sync;
mod window;

pub use crate::config::{BreakerConfig, BreakerConfigBuilder, OpenDuration};
pub use crate::error::BreakerOpen;
pub use crate::future::ResponseFuture;
pub use crate::guard::CallPermit;
pub use crate::handle::{BreakerCounts, BreakerHandle};
#[cfg(feature = "http")]
pub use crate::http::{HttpCircuitBreaker, HttpCircuitBreakerLayer};
pub use crate::keyed::KeyedBreakers;
pub use crate::layer::CircuitBreakerLayer;
pub use crate::pick::PickBreaker;
pub use crate::service::CircuitBreaker;
pub use crate::state::{State, Transition};
pub use crate::window::{Window, WindowCounts};
