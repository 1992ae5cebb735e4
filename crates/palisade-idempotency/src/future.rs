//! The response future: the inner service's own for requests the layer does not handle (no
//! box), a ready answer for a refusal, a boxed flow for keyed requests (which wait on the
//! store and buffer bodies anyway).
//!
//! The refusal is boxed too: a response inline would make every request's future — a GET
//! that only passes through — some 200 bytes larger, and the layers and axum above move
//! the future several times per request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use crate::body::ResponseBody;

pub(crate) type KeyedFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send>>;

pin_project! {
    /// The future of [`Idempotency`](crate::Idempotency).
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        Pass { #[pin] future: F },
        Ready { response: Option<Box<Response<ResponseBody<B>>>> },
        Keyed { future: KeyedFuture<B, E> },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    pub(crate) fn pass(future: F) -> Self {
        Self {
            kind: Kind::Pass { future },
        }
    }

    pub(crate) fn ready(response: Response<ResponseBody<B>>) -> Self {
        Self {
            kind: Kind::Ready {
                response: Some(Box::new(response)),
            },
        }
    }

    pub(crate) fn keyed(future: KeyedFuture<B, E>) -> Self {
        Self {
            kind: Kind::Keyed { future },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Pass { future } => future
                .poll(cx)
                .map_ok(|response| response.map(ResponseBody::pass)),
            KindProj::Ready { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(*response)),
                None => panic!("ResponseFuture polled after completion"),
            },
            KindProj::Keyed { future } => future.as_mut().poll(cx),
        }
    }
}
