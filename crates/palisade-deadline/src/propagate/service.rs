//! [`PropagateDeadline`]: bounds each outgoing call by the deadline it inherits, and sends
//! what is left of it on.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Request};
use palisade_core::BoxError;
use palisade_core::deadline::{Deadline, current};
use palisade_core::grpc::is_grpc;
use tokio::time::Instant;
use tower_service::Service;

use super::Shared;
use super::future::ResponseFuture;
use crate::metrics::CallOutcome;
use crate::timeout::{grpc_timeout_value, parse_grpc_timeout, parse_millis};

/// gRPC's timeout header.
const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// Bounds each call by its deadline and sends the rest of it downstream: see
/// [`PropagateDeadlineLayer`](super::PropagateDeadlineLayer).
#[derive(Debug)]
pub struct PropagateDeadline<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: Clone> Clone for PropagateDeadline<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S> PropagateDeadline<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for PropagateDeadline<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let config = &self.shared.config;
        let grpc = is_grpc(request.headers());
        let header = if grpc { &GRPC_TIMEOUT } else { &config.header };
        let deadline = [
            current().map(|inherited| before(inherited, config.margin)),
            config.timeout.map(Deadline::after),
            // A timeout the caller wrote already (tonic's `Request::set_timeout` writes
            // `grpc-timeout`) is one more bound: the earliest wins.
            written(request.headers(), header, grpc).map(Deadline::after),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(deadline) = deadline else {
            self.shared.metrics.call(CallOutcome::Unbounded);
            return ResponseFuture::unbounded(self.inner.call(request));
        };
        let remaining = deadline.remaining();
        let value = if grpc {
            Some(grpc_timeout_value(remaining))
        } else {
            // Whole milliseconds, rounded down: the callee never gets more than is left.
            // Under one is nothing a callee across a network can use.
            match remaining.as_millis() {
                0 => None,
                millis => Some(HeaderValue::from(u64::try_from(millis).unwrap_or(u64::MAX))),
            }
        };
        let Some(value) = value.filter(|_| !remaining.is_zero()) else {
            self.shared.metrics.call(CallOutcome::Expired);
            tracing::debug!(name = %config.name, "no time left for the call; not sent");
            return ResponseFuture::expired();
        };
        request.headers_mut().insert(header.clone(), value);
        ResponseFuture::bounded(
            self.inner.call(request),
            deadline,
            remaining,
            self.shared.clone(),
        )
    }
}

/// `deadline`, `margin` earlier.
fn before(deadline: Deadline, margin: Duration) -> Deadline {
    let at = deadline.instant();
    // Only a clock that started less than `margin` ago cannot go back that far; its now is
    // then as early as can be said.
    Deadline::at(at.checked_sub(margin).unwrap_or_else(Instant::now))
}

/// The timeout already in `headers`, if one reads; one that does not is overwritten.
fn written(headers: &HeaderMap, name: &HeaderName, grpc: bool) -> Option<Duration> {
    let value = headers.get(name)?;
    if grpc {
        parse_grpc_timeout(value).ok()
    } else {
        parse_millis(value).ok()
    }
}
