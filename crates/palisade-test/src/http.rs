//! An HTTP face for a scripted backend.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower_service::Service;

use crate::backend::Backend;

/// A [`Backend`] that speaks HTTP: `200 ok` for a success, `503` for a failure, and never
/// an error (a `poll_ready` failure of the script is a `503` too).
#[derive(Clone, Debug)]
pub struct HttpBackend {
    backend: Backend,
}

impl HttpBackend {
    pub(crate) fn new(backend: Backend) -> Self {
        Self { backend }
    }
}

impl<B> Service<Request<B>> for HttpBackend {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<B>) -> Self::Future {
        let call = Service::<()>::call(&mut self.backend, ());
        Box::pin(async move {
            let (status, body) = match call.await {
                Ok(_) => (StatusCode::OK, "ok"),
                Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "backend failure"),
            };
            let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
            *response.status_mut() = status;
            Ok(response)
        })
    }
}
