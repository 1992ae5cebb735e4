//! The drain's layer: serves, marks and refuses each request by the drain's phase.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{HeaderValue, Request, Response, Version, header};
use palisade_core::{ResponseBody, rejection_response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{InFlight, Phase, Shared};
use crate::error::Draining;

/// Wraps a service in the drain made by [`Drain::layer`](super::Drain::layer).
#[derive(Clone, Debug)]
pub struct DrainLayer {
    shared: Arc<Shared>,
}

impl DrainLayer {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl<S> Layer<S> for DrainLayer {
    type Service = DrainService<S>;

    fn layer(&self, inner: S) -> DrainService<S> {
        DrainService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// A service inside a drain: see [`drain`](super).
#[derive(Clone, Debug)]
pub struct DrainService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, B, RB> Service<Request<B>> for DrainService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<ResponseBody<RB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let phase = self.shared.phase();
        // Told to go elsewhere next time; HTTP/2 has no such header (its GOAWAY comes from
        // the server's graceful shutdown).
        let close = phase != Phase::Serving && request.version() <= Version::HTTP_11;
        if phase == Phase::Refusing {
            self.shared.metrics.refused.increment(1);
            let draining = Draining {
                name: self.shared.config.name.clone(),
                retry_after: self.shared.config.retry_after,
            };
            let grpc = palisade_core::grpc::is_grpc(request.headers());
            return ResponseFuture {
                kind: Kind::Refused {
                    response: Some(rejection_response(&draining, grpc)),
                },
                close,
            };
        }
        let in_flight = InFlight::new(&self.shared);
        ResponseFuture {
            kind: Kind::Called {
                future: self.inner.call(request),
                in_flight: Some(in_flight),
            },
            close,
        }
    }
}

pin_project! {
    /// The response of a [`DrainService`].
    pub struct ResponseFuture<F, RB> {
        #[pin]
        kind: Kind<F, RB>,
        close: bool,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, RB> {
        Called {
            #[pin]
            future: F,
            in_flight: Option<InFlight>,
        },
        Refused {
            response: Option<Response<ResponseBody<RB>>>,
        },
    }
}

impl<F, RB, E> Future for ResponseFuture<F, RB>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<ResponseBody<RB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match this.kind.project() {
            KindProj::Called { future, in_flight } => {
                let result = ready!(future.poll(cx));
                // Out of flight with its answer, or its error.
                in_flight.take();
                result?.map(ResponseBody::inner)
            }
            KindProj::Refused { response } => match response.take() {
                Some(response) => response,
                None => panic!("ResponseFuture polled after completion"),
            },
        };
        if *this.close {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        Poll::Ready(Ok(response))
    }
}

impl<F, RB> std::fmt::Debug for ResponseFuture<F, RB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
