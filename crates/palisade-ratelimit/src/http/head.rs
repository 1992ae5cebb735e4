//! [`Head`]: what a key or a scope may read of a request, whatever its body.

use std::net::SocketAddr;

use http::{Extensions, HeaderMap, Method, Request, Uri};

/// A request without its body: what a [`KeySource`](super::KeySource) and a
/// [`Scope`](super::Scope) read.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    extensions: &'a Extensions,
}

impl<'a> Head<'a> {
    /// The head of `request`.
    #[inline]
    pub fn of<B>(request: &'a Request<B>) -> Self {
        Self {
            method: request.method(),
            uri: request.uri(),
            headers: request.headers(),
            extensions: request.extensions(),
        }
    }

    /// The request's method.
    pub fn method(&self) -> &'a Method {
        self.method
    }

    /// The request's URI.
    pub fn uri(&self) -> &'a Uri {
        self.uri
    }

    /// The request's headers.
    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }

    /// The request's extensions.
    pub fn extensions(&self) -> &'a Extensions {
        self.extensions
    }

    /// The address of the connection's other end, where the server put it: a
    /// `SocketAddr` extension (insert one from hyper's `accept`), axum's
    /// `ConnectInfo<SocketAddr>` (feature `axum`; serve the router with
    /// `into_make_service_with_connect_info::<SocketAddr>()`), or tonic's `TcpConnectInfo`
    /// (feature `tonic`).
    #[inline]
    pub fn peer(&self) -> Option<SocketAddr> {
        // axum's first: most servers that key by address are axum apps.
        #[cfg(feature = "axum")]
        if let Some(info) = self
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
        {
            return Some(info.0);
        }
        if let Some(addr) = self.extensions.get::<SocketAddr>() {
            return Some(*addr);
        }
        #[cfg(feature = "tonic")]
        if let Some(info) = self
            .extensions
            .get::<tonic::transport::server::TcpConnectInfo>()
        {
            return info.remote_addr();
        }
        None
    }
}
