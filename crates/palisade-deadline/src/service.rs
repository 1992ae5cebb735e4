//! [`EnforceDeadline`]: reads each request's deadline and runs its handler under it.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderMap, HeaderName, Request, Response};
use palisade_core::grpc::is_grpc;
use palisade_core::rejection_response;
use tower_service::Service;

use crate::error::MalformedTimeout;
use crate::future::ResponseFuture;
use crate::layer::Shared;
use crate::metrics::{Outcome, Source};
use crate::timeout::{InvalidTimeout, parse_grpc_timeout, parse_millis};
use palisade_core::deadline::{Deadline, current};

/// gRPC's timeout header.
const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// Runs each request's handler under its deadline: see [the crate](crate). Made by
/// [`EnforceDeadlineLayer`](crate::EnforceDeadlineLayer).
#[derive(Debug)]
pub struct EnforceDeadline<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: Clone> Clone for EnforceDeadline<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S> EnforceDeadline<S> {
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

impl<S, B, RB> Service<Request<B>> for EnforceDeadline<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<palisade_core::ResponseBody<RB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let (config, metrics) = (&self.shared.config, &self.shared.metrics);
        let grpc = is_grpc(request.headers());
        let sent = if grpc {
            timeout_in(request.headers(), &GRPC_TIMEOUT, parse_grpc_timeout)
        } else {
            timeout_in(request.headers(), &config.header, parse_millis)
        };
        let timeout = match sent {
            Err(invalid) => {
                metrics.result(Outcome::Malformed);
                tracing::debug!(name = %config.name, %invalid, "malformed timeout refused");
                return ResponseFuture::refused(rejection_response(
                    &MalformedTimeout(invalid),
                    grpc,
                ));
            }
            Ok(Some(timeout)) if timeout > config.max => {
                metrics.inherited(Source::Capped);
                config.max
            }
            Ok(Some(timeout)) => {
                metrics.inherited(Source::Caller);
                timeout
            }
            Ok(None) => {
                metrics.inherited(Source::Server);
                config.max
            }
        };
        // Under a deadline already (a layer further out, or a test's scope): the earlier.
        let deadline = current().map_or(Deadline::after(timeout), |outer| {
            outer.min(Deadline::after(timeout))
        });
        request.extensions_mut().insert(deadline);
        let call = deadline.scope(self.inner.call(request));
        ResponseFuture::bounded(call, deadline, timeout, self.shared.clone(), grpc)
    }
}

/// The timeout in `headers`' `name`, read by `parse`: none if absent; a header sent twice
/// does not read (which one would the caller mean?).
fn timeout_in(
    headers: &HeaderMap,
    name: &HeaderName,
    parse: fn(&http::HeaderValue) -> Result<Duration, InvalidTimeout>,
) -> Result<Option<Duration>, InvalidTimeout> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(value), None) => parse(value).map(Some),
        (Some(_), Some(_)) => Err(InvalidTimeout::twice()),
    }
}
