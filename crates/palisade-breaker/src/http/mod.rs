//! HTTP mode: the breaker as an HTTP service whose refusals are responses.
//!
//! In front of an axum `Router` or a tonic server, a refusal must be a response, not an
//! error (axum takes no errors without `HandleErrorLayer`). [`HttpCircuitBreaker`] answers a
//! refused plain-HTTP request with `503 Service Unavailable`, `Retry-After` and a problem+json
//! body, and a refused gRPC request with `UNAVAILABLE` and `grpc-retry-pushback-ms`.
//!
//! Outcomes are classified from the response, and when the response is a gRPC stream whose
//! status comes in the trailers, from the trailers: the body is wrapped so that the call is
//! counted when the body ends (a body dropped before its end counts as cancelled).

mod body;
mod future;
mod layer;

use std::task::{Context, Poll};

use http::{HeaderMap, Request, Response};
use palisade_core::grpc::is_grpc;
use palisade_core::{Classify, HttpClassifier, Outcome, ResponseBody};
use tower_service::Service;

pub use self::body::BreakerBody;
pub use self::future::HttpResponseFuture;
pub use self::layer::HttpCircuitBreakerLayer;
use crate::handle::BreakerHandle;
use crate::pick::PickBreaker;

/// An HTTP service behind a circuit breaker; made by
/// [`HttpCircuitBreakerLayer`].
///
/// Errors of the inner service pass through unchanged (and count as failures); refusals
/// are responses. `poll_ready` is the inner service's readiness.
#[derive(Clone, Debug)]
pub struct HttpCircuitBreaker<S, C = HttpClassifier, P = BreakerHandle> {
    inner: S,
    breakers: P,
    classifier: C,
}

impl<S, C, P> HttpCircuitBreaker<S, C, P> {
    pub(crate) fn new(inner: S, breakers: P, classifier: C) -> Self {
        Self {
            inner,
            breakers,
            classifier,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// How a deferred call's outcome is read from its trailers, fixed when the response type is
/// known (the body alone cannot name the classifier's error type).
pub(crate) type ClassifyEos<C> = fn(&C, Option<&HeaderMap>) -> Outcome;

fn classify_eos<C, B, E>(classifier: &C, trailers: Option<&HeaderMap>) -> Outcome
where
    C: Classify<Response<B>, E>,
{
    classifier.classify_end_of_stream(trailers)
}

impl<S, C, P, ReqB, ResB> Service<Request<ReqB>> for HttpCircuitBreaker<S, C, P>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: 'static,
    C: Classify<Response<ResB>, S::Error> + Clone,
    P: PickBreaker<Request<ReqB>>,
{
    type Response = Response<ResponseBody<BreakerBody<ResB, C>>>;
    type Error = S::Error;
    type Future = HttpResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        match self.breakers.pick(&request).shared().acquire() {
            Ok(mut permit) => {
                permit.start();
                HttpResponseFuture::called(
                    self.inner.call(request),
                    permit,
                    self.classifier.clone(),
                    classify_eos::<C, ResB, S::Error>,
                )
            }
            Err(open) => HttpResponseFuture::rejected(open, is_grpc(request.headers())),
        }
    }
}
