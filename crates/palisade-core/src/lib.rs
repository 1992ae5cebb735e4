//! What palisade's layers share, and nothing else.
//!
//! Every palisade layer has to answer the same two questions, and this crate answers them
//! once so that the breaker, the retry layer, the shedder and the balancer agree:
//!
//! 1. **Did that call succeed?** A [`Classify`] maps a `Result<Response, Error>` to an
//!    [`Outcome`] — success, failure, or ignored (neither: a `404` says nothing about the
//!    health of the server). Classifiers exist for plain results ([`ErrorsAsFailures`]),
//!    HTTP ([`HttpClassifier`]: 5xx and transport errors fail, 4xx are ignored) and gRPC
//!    ([`GrpcClassifier`]: a configurable set of `grpc-status` codes fail, read from the
//!    headers or, for streaming responses, from the trailers).
//!
//! 2. **How is a refusal said?** A layer that refuses a request (an open breaker, a shed
//!    request) describes the refusal with the [`Rejection`] trait, and [`response`] turns it
//!    into what the caller's protocol expects: an HTTP `503` (or the layer's status) with
//!    `Retry-After` and an RFC 9457 `application/problem+json` body, or a gRPC status with
//!    `grpc-retry-pushback-ms`. That is what lets a layer drop into an axum `Router` without
//!    `HandleErrorLayer`.
//!
//! 3. **Was that palisade's own refusal?** A stack composes layers, and one layer's refusal
//!    passes through the others: [`refusal`] marks every refusal (a response extension, an
//!    error source) so that a breaker does not count it as the dependency failing and a
//!    retry does not sleep on its `Retry-After` as if a server had asked.
//!
//! 4. **Why was a call dropped?** [`cancel`] tells the layers below a timeout that it cut
//!    the call — the service was too slow — rather than that the caller went away.
//!
//! Plus [`ConfigError`], the one error every builder returns, [`BoxError`], the one error
//! type of every palisade service in generic mode, and [`clock::Clock`], the time the hot
//! paths read.
//!
//! # Example
//!
//! ```
//! use http::{Response, StatusCode};
//! use palisade_core::{Classification, Classify, HttpClassifier, Outcome};
//!
//! let classifier = HttpClassifier::default();
//! let ok = Response::builder().status(StatusCode::OK).body(()).unwrap();
//! let not_found = Response::builder().status(StatusCode::NOT_FOUND).body(()).unwrap();
//! let broken = Response::builder().status(StatusCode::BAD_GATEWAY).body(()).unwrap();
//!
//! let outcome = |r: &Response<()>| {
//!     <HttpClassifier as Classify<Response<()>, std::io::Error>>::classify_response(&classifier, r)
//! };
//! assert_eq!(outcome(&ok), Classification::Complete(Outcome::Success));
//! assert_eq!(outcome(&not_found), Classification::Complete(Outcome::Ignored));
//! assert_eq!(outcome(&broken), Classification::Complete(Outcome::Failure));
//! ```
//!
//! # Why not tower-http's `classify`?
//!
//! tower-http's `ClassifyResponse` is the model for the trailers handling here, but it does
//! not fit as is: it only knows HTTP responses (the breaker also wraps plain services), it
//! has two answers where a breaker needs three (a `404` must count neither as a success nor
//! as a failure, or a scan of missing pages would close an open breaker), and its classifiers
//! are consumed per request, where ours are shared by reference on the hot path.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod cancel;
mod classify;
pub mod clock;
mod config_error;
#[cfg(feature = "serde")]
#[doc(hidden)]
pub mod de;
pub mod deadline;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod grpc;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod hint;
// The layers' deterministic and shared randomness: public for palisade's own crates (and
// its benches), not part of the API a user relies on.
#[doc(hidden)]
pub mod random;
pub mod refusal;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod response;

pub use classify::{Classification, Classify, ClassifyFn, ErrorsAsFailures, Outcome, classify_fn};
#[cfg(feature = "http")]
pub use classify::{GrpcClassifier, HttpClassifier};
pub use config_error::ConfigError;
pub use deadline::Deadline;
#[cfg(feature = "http")]
pub use grpc::GrpcCode;
#[cfg(feature = "http")]
pub use response::{Problem, Rejection, ResponseBody, rejection_response};

/// The error of every palisade service in generic mode (the same type as `tower::BoxError`):
/// the inner service's error as it was, or a layer's typed refusal, either found with
/// `downcast_ref`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
/// The `Idempotency-Key` request header (draft-ietf-httpapi-idempotency-key-header): the
/// name the idempotency layer reads by default and the retry layer writes on a POST it will
/// retry, so that both ends of a hop agree without configuration.
pub const IDEMPOTENCY_KEY: http::HeaderName = http::HeaderName::from_static("idempotency-key");
