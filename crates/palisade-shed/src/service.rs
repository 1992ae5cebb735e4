//! The generic shedding service: refusals are [`Overloaded`](crate::Overloaded) errors.

use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use crate::admission::Admission;
use crate::future::ResponseFuture;
use crate::limiter::Limiter;
use crate::priority::PriorityOf;

use palisade_core::BoxError;

/// A service behind a shedder; made by [`ShedLayer`](crate::ShedLayer).
///
/// `poll_ready` is the inner service's: admission is decided in `call`, because it depends
/// on the request's priority. A request that must wait gets its inner future made at once
/// and polled only once admitted (axum's and tonic's futures do nothing until polled).
#[derive(Clone, Debug)]
pub struct Shed<S, P> {
    inner: S,
    limiter: Arc<Limiter>,
    priority: P,
}

impl<S, P> Shed<S, P> {
    pub(crate) fn new(inner: S, limiter: Arc<Limiter>, priority: P) -> Self {
        Self {
            inner,
            limiter,
            priority,
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

impl<S, P, Req> Service<Req> for Shed<S, P>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    P: PriorityOf<Req>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let admission = Admission::new(&self.limiter, self.priority.priority_of(&request));
        let inner = match admission {
            Admission::Refused(_) => None,
            _ => Some(self.inner.call(request)),
        };
        ResponseFuture::new(admission, inner)
    }
}
