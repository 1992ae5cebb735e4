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
//! Records live in a [`store::Store`]: [`store::MemoryStore`] for one instance,
//! `store::RedisStore` (feature `redis`) for a fleet, or `store::PostgresStore` (feature
//! `postgres`) in the application's own database — where a handler that takes the
//! request's `KeyedTransaction` has its writes committed in one transaction with the record
//! of its response: exactly-once *effects*, across a crash before or after the commit. If
//! the store fails, keyed requests are refused with 503 and `Retry-After` (fail closed)
//! unless [`fail_open`](IdempotencyConfigBuilder::fail_open) is chosen.
//!
//! gRPC works the same way through tonic: the key is the `idempotency-key` metadata entry,
//! a replay carries the stored trailers (`grpc-status` among them), and refusals are gRPC
//! statuses (`INVALID_ARGUMENT`, `FAILED_PRECONDITION`, `UNAVAILABLE` with
//! `grpc-retry-pushback-ms`).
//!
//! # Example
//!
//! A handler that creates an order, behind the layer; the client sends its POST, does not
//! hear back, and sends it again with the same key. The order is made once, and the retry
//! gets the first response back:
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
//!
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use palisade_idempotency::{IdempotencyLayer, REPLAYED, RequestBody, Scope, store::MemoryStore};
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower::BoxError> {
//! let orders_made = Arc::new(AtomicUsize::new(0));
//! let made = orders_made.clone();
//! let create_order = service_fn(move |_: Request<RequestBody<Full<Bytes>>>| {
//!     let order = made.fetch_add(1, SeqCst) + 1;
//!     async move {
//!         Response::builder()
//!             .status(StatusCode::CREATED)
//!             .body(Full::new(Bytes::from(format!("order {order}"))))
//!     }
//! });
//! // One scope for every caller here; a real service scopes keys by caller (see below).
//! let layer = IdempotencyLayer::new("orders", MemoryStore::new(), Scope::global());
//! let orders = layer.layer(create_order);
//!
//! let post = || {
//!     Request::post("/orders")
//!         .header("idempotency-key", "\"8e03978e-40d5-43e8-bc93-6894a57f9324\"")
//!         .body(Full::new(Bytes::from("two coffees")))
//! };
//! let first = orders.clone().oneshot(post()?).await?;
//! let retry = orders.clone().oneshot(post()?).await?;
//!
//! assert_eq!(orders_made.load(SeqCst), 1, "the handler ran once");
//! assert_eq!(first.status(), StatusCode::CREATED);
//! assert!(first.headers().get(REPLAYED).is_none());
//! // The retry gets the stored response, marked as a replay.
//! assert_eq!(retry.status(), StatusCode::CREATED);
//! assert_eq!(retry.headers()[REPLAYED], "true");
//! assert_eq!(retry.into_body().collect().await?.to_bytes(), "order 1");
//! # Ok(())
//! # }
//! ```
//!
//! In an axum application, with each key scoped to the caller:
//!
//! ```
//! use axum::{Router, routing::post};
//! use palisade_idempotency::{IdempotencyConfig, IdempotencyLayer, Scope, store::MemoryStore};
//!
//! // Whose key is it? Here: the user an auth layer put into the request's extensions.
//! let scope = Scope::from_fn(|request| request.extensions.get::<User>().map(|user| user.id.clone()));
//! let config = IdempotencyConfig::builder("orders", scope)
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
mod claim;
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
mod layer;
mod lifecycle;
pub mod metrics;
pub mod policy;
pub mod record;
mod replay;
mod scope;
mod service;
mod shared;
pub mod store;
mod unprotected;

pub use crate::body::{RequestBody, ResponseBody};
pub use crate::config::{IdempotencyConfig, IdempotencyConfigBuilder};
pub use crate::future::ResponseFuture;
pub use crate::layer::IdempotencyLayer;
pub use crate::replay::REPLAYED;
pub use crate::scope::Scope;
pub use crate::service::Idempotency;
