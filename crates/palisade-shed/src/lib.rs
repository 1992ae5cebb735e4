//! Load shedding for Tower services, with a concurrency limit nobody has to guess.
//!
//! A server past its capacity that accepts every request serves all of them late: queues
//! grow, every request waits, clients time out, and the work done for them is wasted — its
//! goodput falls as load rises. A shedder keeps the number of requests running at once at
//! what the server can take, and refuses the rest at once with an answer the client can act
//! on. The limit is not a number someone guessed (tower's `ConcurrencyLimit`, tower #793): a
//! [`Limit`](limit::Limit) algorithm moves it from the latency requests see.
//!
//! # What it does
//!
//! - **Adaptive limits** ([`limit`]): [`Gradient`](limit::Gradient) (default; compares
//!   recent latency with the server's unloaded latency, measured again periodically),
//!   [`Aimd`](limit::Aimd), or [`Fixed`](limit::Fixed). Changes are tracing events.
//! - **Admission**: under the limit, one compare-and-swap and no allocation. At the limit, a
//!   bounded [`Queue`] whose wait is bounded CoDel-style (5 ms under a standing queue, 100 ms
//!   otherwise) and served newest-first under backlog; a request that waits too long is
//!   refused, never dropped silently.
//! - **Priorities** ([`priority`]): critical, default, sheddable — from an extension, a
//!   header or a closure. Sheddable requests use at most half the limit and never wait;
//!   default ones 90 %; the rest is kept for critical ones.
//! - **The slot is held until the response is sent**: in HTTP mode until the body ends or is
//!   dropped.
//! - **Refusals**: HTTP mode ([`HttpShedLayer`]) answers `503` with `Retry-After` and
//!   problem+json, or gRPC `RESOURCE_EXHAUSTED` with `grpc-retry-pushback-ms`; the generic
//!   layer ([`ShedLayer`]) returns a typed [`Overloaded`] saying why.
//! - **Observability**: metrics ([`metrics`]) and a [`ShedHandle`] to read the limit.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use palisade_shed::{HttpShedLayer, ShedConfig, limit::Gradient};
//!
//! let shed = HttpShedLayer::with_config(
//!     ShedConfig::builder("api")
//!
//!         .limit(Gradient::new(4, 20, 500).unwrap())
//!         .build()
//!         .unwrap(),
//! );
//! let handle = shed.handle();
//! let app: axum::Router = axum::Router::new()
//!     .route("/", axum::routing::get(|| async { "hello" }))
//!     .layer(shed); // refusals are 503 + Retry-After + problem+json
//! assert_eq!(handle.limit(), 20);
//! ```
//!
//! # Testing with paused time
//!
//! The limiter reads the CPU's time-stamp counter ([`palisade_core::clock::Clock`]), which
//! tokio's paused clock does not move. A test that pauses time (`start_paused`,
//! `tokio::time::advance`) turns on this crate's `test-util` feature (or `palisade`'s) in
//! its `[dev-dependencies]`: the limiter then reads tokio's clock, and the latencies it
//! learns from are the test's.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod admission;
mod config;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub mod de;
mod error;
mod future;
mod handle;
mod layer;
mod limiter;
mod service;

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
pub mod limit;
pub mod metrics;
pub mod priority;

pub use crate::config::{Queue, ShedConfig, ShedConfigBuilder};
pub use crate::error::{Overloaded, Reason};
pub use crate::future::ResponseFuture;
pub use crate::handle::ShedHandle;
#[cfg(feature = "http")]
pub use crate::http::HttpShedLayer;
pub use crate::layer::ShedLayer;
pub use crate::service::Shed;
