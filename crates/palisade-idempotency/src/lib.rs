//! Idempotency keys for Tower HTTP and gRPC services: a retried POST runs once.
//!
//! A client that times out does not know whether its request ran. Retrying a GET is safe;
//! retrying "create this order" or "charge this card" may do it twice. The
//! [IETF draft](https://datatracker.ietf.org/doc/draft-ietf-httpapi-idempotency-key-header/)
//! and Stripe's API settle it with a key the client sends with the request and again with
//! each retry: `Idempotency-Key: "8e03978e-40d5-43e8-bc93-6894a57f9324"`. This layer gives
//! any tower HTTP service (axum, tonic, hyper) those semantics:
//!
//! - the **first** request with a key runs, and its response is stored;
//! - a **later** one with the same key gets the stored response back, byte for byte, marked
//!   `Idempotent-Replayed: true` — the handler is not called;
//! - a **concurrent duplicate** (the first still running) gets `409 Conflict` with
//!   `Retry-After`, or, if configured, waits for the first to finish and gets its response;
//! - a key **reused for a different request** (method, path, query or body differ) gets
//!   `422 Unprocessable Content`;
//! - a malformed key gets `400` with a problem+json body saying what is wrong; a keyed body
//!   over the buffering limit `413`.
//!
//! The claim is atomic (of a thousand concurrent duplicates exactly one runs), held with a
//! lease renewed while the handler runs, and every write names its owner, so a holder whose
//! lease ran out cannot overwrite its successor's record. Outcomes that mean "not now" — a
//! 5xx, `401`, `403`, `408`, `425`, `429`, an error, a panic, a client that went away, a
//! response too large to store, a failed store write — release the key so a retry runs
//! (see [`policy`]). Keys are looked up within a [`Scope`] the application must choose —
//! the caller's identity — so no caller can ever receive another's response.
//!
//! Records live in a [`store::Store`]: [`store::MemoryStore`] for one instance, or
//! `store::RedisStore` (feature `redis`) for a fleet. If the store fails, keyed requests
//! are refused with 503 and `Retry-After` (fail closed) unless
//! [`fail_open`](IdempotencyConfigBuilder::fail_open) is chosen.
//!
//! gRPC works the same way through tonic: the key is the `idempotency-key` metadata entry,
//! a replay carries the stored trailers (`grpc-status` among them), and refusals are gRPC
//! statuses (`INVALID_ARGUMENT`, `FAILED_PRECONDITION`, `UNAVAILABLE` with
//! `grpc-retry-pushback-ms`).
//!
//! # Example
//!
//! ```
//! use axum::{Router, routing::post};
//! use palisade_idempotency::{IdempotencyConfig, IdempotencyLayer, Scope, store::MemoryStore};
//!
//! let config = IdempotencyConfig::builder("orders", Scope::from_fn(|request| {
//!         request.extensions.get::<User>().map(|user| user.id.clone())
//!     }))
//!     // Whose key is it? Here: the user an auth layer put into the request's extensions.
//!
//!     .build()
//!     .expect("a valid configuration");
//! let app: Router = Router::new()
//!     .route("/orders", post(|body: String| async move { body }))
//!     .layer(IdempotencyLayer::with_config(MemoryStore::new(), config));
//!
//! #[derive(Clone)]
//! struct User { id: String }
//! ```
//!
//! The service under the layer receives a [`RequestBody`]: the request's own body, or the
//! buffered one of a keyed request. axum's router takes any body; tonic's takes its own, so
//! map it: `.map_request(|r: http::Request<RequestBody<_>>| r.map(tonic::body::Body::new))`
//! under the layer.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod body;
mod config;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub mod de;
mod error;
pub mod fingerprint;
mod future;
// The key parser: public for the fuzz target (fuzz/), not part of the API.
#[doc(hidden)]
pub mod key;
mod keyed;
mod layer;
pub mod metrics;
pub mod policy;
pub mod record;
mod scope;
mod service;
pub mod store;

pub use crate::body::{RequestBody, ResponseBody};
pub use crate::config::{IdempotencyConfig, IdempotencyConfigBuilder};
pub use crate::future::ResponseFuture;
pub use crate::keyed::REPLAYED;
pub use crate::layer::IdempotencyLayer;
pub use crate::scope::Scope;
pub use crate::service::Idempotency;
