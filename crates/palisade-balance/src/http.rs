//! Ready-made endpoints for HTTP: one shared hyper-util client, pointed at each endpoint.
//!
//! A balancer over HTTP endpoints needs a service per endpoint that sends a request *there*.
//! [`HttpEndpoint`] is that service: it sets the request's scheme and authority to its
//! endpoint's address and sends it through a hyper-util client shared by every endpoint
//! (one connection pool, kept per host). [`http_endpoints`] makes them, for a
//! [`WatchDiscover`](crate::discover::WatchDiscover) or a static list.
//!
//! ```no_run
//! use std::collections::BTreeSet;
//! use std::net::SocketAddr;
//! use palisade_balance::{Balance, BalanceConfig, discover::WatchDiscover, http::http_endpoints};
//! use palisade_core::HttpClassifier;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (_publish, addresses) = tokio::sync::watch::channel(BTreeSet::from([
//!     "10.0.0.1:8080".parse::<SocketAddr>()?,
//!     "10.0.0.2:8080".parse()?,
//! ]));
//! let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
//!     .build_http::<http_body_util::Empty<bytes::Bytes>>();
//! // Every address discovered gets the shared client, pointed at it.
//! let discover = WatchDiscover::new("orders", addresses, http_endpoints(client));
//! type Body = http_body_util::Empty<bytes::Bytes>;
//! let balance = Balance::<_, http::Request<Body>, _>::with_classifier(
//!     discover,
//!     BalanceConfig::builder("orders").build()?,
//!     HttpClassifier::default(),
//! );
//! # let _ = balance; Ok(()) }
//! ```

use std::net::SocketAddr;
use std::task::{Context, Poll};

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use tower_service::Service;

/// The shared client, pointed at one endpoint.
#[derive(Clone, Debug)]
pub struct HttpEndpoint<B> {
    client: Client<HttpConnector, B>,
    authority: Authority,
}

impl<B> HttpEndpoint<B> {
    /// Sends requests to `addr` through `client`.
    pub fn new(client: Client<HttpConnector, B>, addr: SocketAddr) -> Self {
        let authority =
            Authority::try_from(addr.to_string()).expect("a socket address is a valid authority");
        Self { client, authority }
    }
}

/// A `make` function for discovery: an [`HttpEndpoint`] per address, all sharing `client`.
pub fn http_endpoints<B>(
    client: Client<HttpConnector, B>,
) -> impl FnMut(&SocketAddr) -> HttpEndpoint<B> {
    move |addr| HttpEndpoint::new(client.clone(), *addr)
}

impl<B> Service<Request<B>> for HttpEndpoint<B>
where
    B: http_body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper_util::client::legacy::Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The client is always ready: connections are made and pooled per request.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let path = request
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(path);
        if let Ok(uri) = Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
        self.client.request(request)
    }
}
