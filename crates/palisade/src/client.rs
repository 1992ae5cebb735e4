//! A client stack as one type you can name: [`BoxClient`].
//!
//! A palisade client stack — breaker → retry → buffer → balance over hyper-util — has a type
//! no one wants to write, and an axum handler needs its client in the router's state, which
//! must be `Clone + Send + Sync`. [`BoxClient::new`] boxes any such stack into
//! `BoxClient<B>`: requests with body `B` (by default `Full<Bytes>`), responses with a boxed
//! [`ResponseBody`], errors as [`BoxError`] (a palisade refusal is found in it with
//! `downcast_ref`). It is `Clone + Send + Sync`, cheap to clone (one `Arc`), and a
//! `tower::Service`, so it goes into a struct, into axum's `State`, or under more layers.
//!
//! ```
//! # #[cfg(all(feature = "breaker", feature = "retry"))] {
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use palisade::client::BoxClient;
//! use palisade::prelude::*;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! /// What the handlers share: the client of the inventory service, among others.
//! #[derive(Clone)]
//! struct AppState {
//!     inventory: BoxClient,
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // Any service of `Request<Full<Bytes>>` stands for the network here: in an application
//! // it is `Buffer::new(Balance::new(..), 1024)` or a hyper-util client.
//! let network = service_fn(|_req: http::Request<_>| async {
//!     Ok::<_, std::io::Error>(http::Response::new(Full::new(Bytes::from("42 in stock"))))
//! });
//! let state = AppState {
//!     inventory: BoxClient::new(
//!         ServiceBuilder::new()
//!             .http_circuit_breaker("inventory")
//!             .http_retry("inventory")
//!             .service(network),
//!     ),
//! };
//!
//! let request = http::Request::get("/stock/7").body(Full::default()).unwrap();
//! let response = state.inventory.clone().oneshot(request).await.unwrap();
//! let body = response.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(body, "42 in stock");
//! # }
//! # }
//! ```
//!
//! `ServiceBuilder::new().layer(BoxClient::layer()).http_circuit_breaker(..)…` boxes the
//! stack the builder makes, for those who prefer it at the top of the chain.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use palisade_core::BoxError;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;
use tower_layer::{LayerFn, layer_fn};
use tower_service::Service;

/// The body of a [`BoxClient`]'s responses: whatever the stack answered with, boxed, its
/// errors as [`BoxError`]. Read it whole with `http_body_util::BodyExt::collect`, or stream
/// it frame by frame.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// The future of a [`BoxClient`]'s call.
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, BoxError>> + Send>>;

/// Any HTTP client stack, boxed: `Clone + Send + Sync`, for axum state and structs. See [the
/// module](self).
pub struct BoxClient<B = Full<Bytes>> {
    inner: BoxCloneSyncService<Request<B>, Response<ResponseBody>, BoxError>,
}

impl<B: 'static> BoxClient<B> {
    /// Boxes `stack`: its response bodies into [`ResponseBody`], its errors into
    /// [`BoxError`].
    pub fn new<S, RB>(stack: S) -> Self
    where
        S: Service<Request<B>, Response = Response<RB>> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
        RB: Body<Data = Bytes> + Send + 'static,
        RB::Error: Into<BoxError>,
    {
        let stack = stack
            .map_response(|response: Response<RB>| {
                response.map(|body| body.map_err(Into::into).boxed_unsync())
            })
            .map_err(Into::into);
        BoxClient {
            inner: BoxCloneSyncService::new(stack),
        }
    }

    /// A layer that boxes the service it wraps with [`BoxClient::new`], for the top of a
    /// `ServiceBuilder` chain.
    pub fn layer<S, RB>() -> LayerFn<fn(S) -> Self>
    where
        S: Service<Request<B>, Response = Response<RB>> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
        RB: Body<Data = Bytes> + Send + 'static,
        RB::Error: Into<BoxError>,
    {
        layer_fn(Self::new)
    }
}

impl<B> Clone for BoxClient<B> {
    fn clone(&self) -> Self {
        BoxClient {
            inner: self.inner.clone(),
        }
    }
}

impl<B> fmt::Debug for BoxClient<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxClient").finish_non_exhaustive()
    }
}

impl<B> Service<Request<B>> for BoxClient<B> {
    type Response = Response<ResponseBody>;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> ResponseFuture {
        self.inner.call(request)
    }
}
