//! HTTP mode: refusals are responses, and a request's slot is held until its response body
//! has been sent.
//!
//! In front of an axum `Router` or a tonic server a refusal must be a response, not an
//! error: a plain-HTTP request gets `503 Service Unavailable` with `Retry-After` and a
//! problem+json body, a gRPC request `RESOURCE_EXHAUSTED` with `grpc-retry-pushback-ms`.
//!
//! tower's `ConcurrencyLimit` frees a slot when the response head is ready; a streaming
//! response is still running then. Here the slot is held by the response body and freed
//! when the body ends or is dropped. The latency the limit algorithm sees is the time to the
//! response head: a long-lived stream says nothing about how loaded the server is.

mod body;
mod layer;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use palisade_core::grpc::is_grpc;
use palisade_core::{ResponseBody, rejection_response};
use pin_project_lite::pin_project;
use tower_service::Service;

pub use self::body::ShedBody;
pub use self::layer::HttpShedLayer;
use crate::admission::Admission;
use crate::limiter::{Limiter, Permit};
use crate::priority::PriorityOf;

/// An HTTP service behind a shedder; made by [`HttpShedLayer`].
///
/// Errors of the inner service pass through unchanged; refusals are responses.
#[derive(Clone, Debug)]
pub struct HttpShed<S, P> {
    inner: S,
    limiter: Arc<Limiter>,
    priority: P,
}

impl<S, P> HttpShed<S, P> {
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

impl<S, P, B, RB> Service<Request<B>> for HttpShed<S, P>
where
    S: Service<Request<B>, Response = Response<RB>>,
    P: PriorityOf<Request<B>>,
{
    type Response = Response<ResponseBody<ShedBody<RB>>>;
    type Error = S::Error;
    type Future = HttpResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let admission = Admission::new(&self.limiter, self.priority.priority_of(&request));
        // Only a request that may be refused needs to know how to be told: the header lookup
        // is skipped for the admitted ones, nearly all of them.
        let grpc = !matches!(admission, Admission::Admitted(_)) && is_grpc(request.headers());
        let inner = match admission {
            Admission::Refused(_) => None,
            _ => Some(self.inner.call(request)),
        };
        HttpResponseFuture {
            admission,
            permit: None,
            grpc,
            inner,
        }
    }
}

pin_project! {
    /// The response future of [`HttpShed`].
    pub struct HttpResponseFuture<F> {
        admission: Admission,
        permit: Option<Permit>,
        grpc: bool,
        #[pin]
        inner: Option<F>,
    }
}

impl<F, RB, E> Future for HttpResponseFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<ResponseBody<ShedBody<RB>>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if this.permit.is_none() {
            match ready!(this.admission.poll_admitted(cx)) {
                Ok(permit) => *this.permit = Some(permit),
                Err(refused) => return Poll::Ready(Ok(rejection_response(&refused, *this.grpc))),
            }
        }
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            unreachable!("an admitted call has an inner future");
        };
        let response = ready!(inner.poll(cx))?;
        let mut permit = this.permit.take();
        if let Some(permit) = &mut permit {
            if palisade_core::refusal::of_response(&response).is_some() {
                permit.skip_sample();
            } else {
                permit.record();
            }
        }
        Poll::Ready(Ok(
            response.map(|body| ResponseBody::inner(ShedBody::new(body, permit)))
        ))
    }
}
