//! The service: decides per request whether the layer handles it, and answers malformed
//! keys at once.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::body::{RequestBody, ResponseBody};
use crate::error::Refusal;
use crate::future::ResponseFuture;
use crate::key::key_from_headers;
use crate::lifecycle;
use crate::shared::Shared;

use palisade_core::BoxError;

/// Makes retried requests with the same idempotency key run once: see the
/// [crate documentation](crate). Made by [`IdempotencyLayer`](crate::IdempotencyLayer).
///
/// Readiness is the inner service's. Requests of other methods, and requests without a key
/// when the key is optional, pass through untouched (no allocation, no box).
pub struct Idempotency<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Idempotency<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotency")
            .field("inner", &self.inner)
            .field("name", &self.shared.config.name)
            .finish_non_exhaustive()
    }
}

impl<S: Clone> Clone for Idempotency<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S> Idempotency<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
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

impl<S, B, RB> Service<Request<B>> for Idempotency<S>
where
    S: Service<Request<RequestBody<B>>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    RB: Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<RB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, RB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let config = &self.shared.config;
        if !config.methods.contains(request.method()) {
            return ResponseFuture::pass(self.inner.call(request.map(RequestBody::pass)));
        }
        let key = match key_from_headers(request.headers(), &config.header) {
            Ok(Some(key)) => key,
            Ok(None) if !config.required => {
                return ResponseFuture::pass(self.inner.call(request.map(RequestBody::pass)));
            }
            Ok(None) => return self.refuse(&request, Refusal::MissingKey),
            Err(error) => return self.refuse(&request, Refusal::MalformedKey(error)),
        };
        // The readied service runs the request; a clone takes its place (tower's way).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::keyed(Box::pin(lifecycle::run(
            inner,
            self.shared.clone(),
            key,
            request,
        )))
    }
}

impl<S> Idempotency<S> {
    fn refuse<B, F, RB, E>(
        &self,
        request: &Request<B>,
        refusal: Refusal,
    ) -> ResponseFuture<F, RB, E> {
        let grpc = palisade_core::grpc::is_grpc(request.headers());
        ResponseFuture::ready(refusal.response(&self.shared.metrics, grpc))
    }
}
