//! [`Readiness`]: the endpoint a balancer or Kubernetes probes, failing from the drain's
//! start.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response, StatusCode, header};
use tower_service::Service;

use super::{Phase, Shared};

/// A readiness endpoint: `200 ok` until the drain starts, `503 draining` from then on.
/// Mount it where the readiness probe looks (`route_service("/healthz", drain.readiness())` in axum), and
/// outside any layer that could refuse it for another reason.
#[derive(Clone, Debug)]
pub struct Readiness {
    shared: Arc<Shared>,
}

impl Readiness {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl<B> Service<Request<B>> for Readiness {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<B>) -> Self::Future {
        let mut response = match self.shared.phase() {
            Phase::Serving => Response::new(String::from("ok\n")),
            _ => {
                let mut response = Response::new(String::from("draining\n"));
                *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                response
            }
        };
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        ready(Ok(response))
    }
}
