//! The generic shedding service: refusals are [`Overloaded`](crate::Overloaded) errors.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower_service::Service;

use crate::admission::Admission;
use crate::limiter::{Limiter, Permit};
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
        ResponseFuture {
            admission,
            permit: None,
            inner,
        }
    }
}

pin_project! {
    /// The response future of [`Shed`].
    pub struct ResponseFuture<F> {
        admission: Admission,
        permit: Option<Permit>,
        #[pin]
        inner: Option<F>,
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if this.permit.is_none() {
            match ready!(this.admission.poll_admitted(cx)) {
                Ok(permit) => *this.permit = Some(permit),
                Err(refused) => return Poll::Ready(Err(refused.into())),
            }
        }
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            unreachable!("an admitted call has an inner future");
        };
        let result = ready!(inner.poll(cx)).map_err(Into::into);
        if let Some(mut permit) = this.permit.take() {
            match &result {
                Err(error) if palisade_core::refusal::is_refusal(&**error) => permit.skip_sample(),
                _ => permit.record(),
            }
        }
        Poll::Ready(result)
    }
}
