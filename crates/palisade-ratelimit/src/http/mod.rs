//! HTTP mode: keys from the request, refusals as `429` responses, the IETF RateLimit fields.
//!
//! In front of an axum `Router` or a tonic server a refusal must be a response, not an
//! error: a plain-HTTP request gets `429 Too Many Requests` with `Retry-After`,
//! `RateLimit-Policy`, `RateLimit` and a problem+json body; a gRPC request
//! `RESOURCE_EXHAUSTED` with `grpc-retry-pushback-ms`. Admitted responses carry
//! `RateLimit-Policy` and `RateLimit` too, unless
//! [`headers_on_success`](crate::RateLimitConfigBuilder::headers_on_success) is off.

mod client_ip;
pub(crate) mod fields;
mod head;
mod key_source;
mod layer;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{HeaderValue, Request, Response};
use palisade_core::grpc::is_grpc;
use palisade_core::{ResponseBody, rejection_response};
use pin_project_lite::pin_project;
use tower_service::Service;

pub use self::client_ip::{ForwardedHeader, TrustedProxies};
use self::fields::Fields;
pub use self::fields::{RATELIMIT, RATELIMIT_POLICY};
pub use self::head::Head;
pub use self::key_source::{KeySource, Scope};
pub use self::layer::HttpRateLimitLayer;
use crate::limiter::Limiter;

/// An HTTP service behind a rate limiter; made by [`HttpRateLimitLayer`].
///
/// `poll_ready` is the inner service's: the limit is checked in `call`, and a refused
/// request is answered at once (tower's `RateLimit` makes callers wait in `poll_ready`
/// instead, which holds every connection's requests until the quota comes back).
#[derive(Clone, Debug)]
pub struct HttpRateLimit<S> {
    inner: S,
    limiter: Arc<Limiter>,
}

impl<S> HttpRateLimit<S> {
    pub(crate) fn new(inner: S, limiter: Arc<Limiter>) -> Self {
        Self { inner, limiter }
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

impl<S, B, RB> Service<Request<B>> for HttpRateLimit<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<ResponseBody<RB>>;
    type Error = S::Error;
    type Future = HttpResponseFuture<S::Future, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        let head = Head::of(&request);
        let mut fields = Fields::default();
        let headers_on_success = self.limiter.config.headers_on_success;
        let checked = self.limiter.check(
            |policy| {
                policy
                    .scope
                    .applies(&head)
                    .then(|| policy.key.key_of(&head))
                    .flatten()
            },
            |live, verdict| {
                if !verdict.admitted {
                    // A refusal speaks for the policy that refused: the others give back
                    // what they took, so what they said a moment ago is no longer so.
                    fields.clear();
                    fields.push(live, verdict);
                } else if headers_on_success {
                    fields.push(live, verdict);
                }
            },
        );
        match checked {
            Ok(()) => {
                // Boxed: the future every admitted request moves around stays small when
                // admitted responses carry no fields.
                let fields = if headers_on_success {
                    fields.into_values().map(Box::new)
                } else {
                    None
                };
                HttpResponseFuture::admitted(self.inner.call(request), fields)
            }
            Err(limited) => {
                let mut response = rejection_response(&limited, is_grpc(request.headers()));
                if let Some((policy, state)) = fields.into_values() {
                    insert_fields(&mut response, policy, state);
                }
                HttpResponseFuture::refused(response)
            }
        }
    }
}

fn insert_fields<B>(response: &mut Response<B>, policy: HeaderValue, state: HeaderValue) {
    let headers = response.headers_mut();
    headers.insert(RATELIMIT_POLICY, policy);
    headers.insert(RATELIMIT, state);
}

pin_project! {
    /// The response future of [`HttpRateLimit`].
    pub struct HttpResponseFuture<F, RB> {
        #[pin]
        state: State<F, RB>,
    }
}

pin_project! {
    #[project = StateProjection]
    enum State<F, RB> {
        // Admitted: the inner service's answer, then the fields.
        Admitted {
            #[pin]
            inner: F,
            fields: Option<Box<(HeaderValue, HeaderValue)>>,
        },
        // Refused: the answer is ready (boxed: a refusal is rare, and the future that
        // every admitted request moves around stays small).
        Refused {
            response: Option<Box<Response<ResponseBody<RB>>>>,
        },
    }
}

impl<F, RB> HttpResponseFuture<F, RB> {
    #[inline]
    fn admitted(inner: F, fields: Option<Box<(HeaderValue, HeaderValue)>>) -> Self {
        Self {
            state: State::Admitted { inner, fields },
        }
    }

    fn refused(response: Response<ResponseBody<RB>>) -> Self {
        Self {
            state: State::Refused {
                response: Some(Box::new(response)),
            },
        }
    }
}

impl<F, RB, E> Future for HttpResponseFuture<F, RB>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<ResponseBody<RB>>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProjection::Admitted { inner, fields } => {
                // No fields to add: the inner answer is re-wrapped on its way out, and not
                // moved first into a local that the fields would be inserted into — that move
                // read back, in wide loads, what the inner future had just written in narrow
                // stores, a stall perf found on every request.
                if fields.is_none() {
                    return inner
                        .poll(cx)
                        .map_ok(|response| response.map(ResponseBody::inner));
                }
                let mut response = ready!(inner.poll(cx))?.map(ResponseBody::inner);
                if let Some(fields) = fields.take() {
                    let (policy, state) = *fields;
                    insert_fields(&mut response, policy, state);
                }
                Poll::Ready(Ok(response))
            }
            StateProjection::Refused { response } => Poll::Ready(Ok(*response
                .take()
                .expect("a refused future is polled once"))),
        }
    }
}

impl<F, RB> std::fmt::Debug for HttpResponseFuture<F, RB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpResponseFuture").finish_non_exhaustive()
    }
}
