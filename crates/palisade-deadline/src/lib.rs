//! Deadlines for Tower HTTP and gRPC services: the caller's deadline read at the edge,
//! capped by the server's own maximum, handed to the handler without plumbing, enforced,
//! and passed on to every call the handler makes.
//!
//! A caller that gives up after 100 ms does not want the answer at 3 s; the server that
//! keeps working for it wastes what the callers still waiting need. gRPC clients say how
//! long they will wait (`grpc-timeout`), and a plain HTTP client can too (a header of
//! milliseconds, `x-request-timeout-ms` by default). tower's `Timeout` reads neither: it
//! cuts every request at one fixed duration, and the handler has no way to learn how much
//! time its request has left.
//!
//! [`EnforceDeadlineLayer`] does, for each request:
//!
//! - reads the caller's timeout — `grpc-timeout` for a gRPC call, the configured header
//!   otherwise — and caps it by the server's [`max`](DeadlineConfigBuilder::max) (30 s by
//!   default), which is also the deadline of a request that sent none;
//! - puts the [`Deadline`] where the handler finds it without plumbing: in the request's
//!   extensions, and as the task's [`current`] deadline while the handler runs;
//! - when the deadline passes before the handler has answered, drops the handler's future
//!   (its work stops at its next `.await`) and answers `504 Gateway Timeout` with a
//!   problem+json body, or gRPC `DEADLINE_EXCEEDED`;
//! - refuses a timeout header that does not read (`400` problem+json, or
//!   `INVALID_ARGUMENT`) rather than guessing at what the caller meant.
//!
//! The deadline bounds the time to the response's head: a body the handler streams after
//! it is not cut.
//!
//! [`PropagateDeadlineLayer`] is the client half (see [`propagate`]): on the handler's
//! clients, each outgoing call is bounded by what remains of the inherited deadline (less a
//! margin) and sends it on, so that a chain of palisade services stops its work when the
//! first caller gives up. palisade's retry and hedging read the same deadline, and start no
//! attempt that cannot finish in it.
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use palisade_deadline::{DeadlineConfig, EnforceDeadlineLayer};
//!
//! async fn report() -> String {
//!     // The time this request has left, wherever in the handler it is needed.
//!     let left = palisade_deadline::current().map(|d| d.remaining());
//!     format!("{left:?} left")
//! }
//!
//! let config = DeadlineConfig::builder("reports")
//!     .max(Duration::from_secs(5)) // no request holds the server longer
//!     .build()
//!     .unwrap();
//! let app: Router = Router::new()
//!     .route("/report", get(report))
//!     .layer(EnforceDeadlineLayer::with_config(config));
//! ```
//!
//! # Metrics
//!
//! See [`metrics`]: requests by how their deadline went, and where it came from.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub mod de;
mod error;
mod future;
mod layer;
pub mod metrics;
pub mod propagate;
mod service;
pub mod timeout;

pub use crate::config::{DeadlineConfig, DeadlineConfigBuilder};
pub use crate::error::{DeadlineExceeded, MalformedTimeout};
pub use crate::future::ResponseFuture;
pub use crate::layer::EnforceDeadlineLayer;
pub use crate::propagate::{PropagateConfig, PropagateDeadline, PropagateDeadlineLayer};
pub use crate::service::EnforceDeadline;
pub use palisade_core::deadline::{Deadline, current};
