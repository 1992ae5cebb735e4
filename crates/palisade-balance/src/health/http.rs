//! [`HttpProbe`]: a GET of a path on each endpoint, passed by the statuses expected.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::Arc;

use http::{Method, Request, StatusCode, Uri, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use palisade_core::BoxError;

use super::probe::{Check, Probe};

/// Probes an HTTP endpoint with a GET of a path (`/healthz` unless told); a status within
/// the expected ones passes (2xx unless told: Envoy expects 200 only, Kubernetes 200–399).
/// Connections are pooled across the probes of all endpoints, in a client of the probe's
/// own, so probes neither wait behind requests nor count as their load.
///
/// It probes endpoints keyed by a socket address, a DNS endpoint (feature `dns`) or an etcd
/// member (feature `etcd`); for keys of another type, implement [`Probe`] over
/// [`check_addr`](Self::check_addr).
#[derive(Clone, Debug)]
pub struct HttpProbe {
    client: Client<HttpConnector, String>,
    path: Arc<str>,
    host: Option<Arc<str>>,
    expected: RangeInclusive<u16>,
}

impl HttpProbe {
    /// A probe that GETs `path` (which starts with `/`).
    pub fn get(path: impl Into<Arc<str>>) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            path: path.into(),
            host: None,
            expected: 200..=299,
        }
    }

    /// The statuses that pass.
    pub fn expected(mut self, statuses: RangeInclusive<u16>) -> Self {
        self.expected = statuses;
        self
    }

    /// The `Host` the probes name (the endpoint's address by default), for servers that
    /// route by it.
    pub fn host(mut self, host: impl Into<Arc<str>>) -> Self {
        self.host = Some(host.into());
        self
    }

    async fn probe(self, uri: Uri) -> Result<(), BoxError> {
        let mut request = Request::builder().method(Method::GET).uri(uri);
        if let Some(host) = &self.host {
            request = request.header(header::HOST, &**host);
        }
        let response = self.client.request(request.body(String::new())?).await?;
        let status = response.status();
        if self.expected.contains(&status.as_u16()) {
            Ok(())
        } else {
            Err(Unexpected(status).into())
        }
    }
}

impl HttpProbe {
    /// The check of the endpoint at `addr`.
    pub fn check_addr(&self, addr: SocketAddr) -> Check {
        let probe = self.clone();
        let uri = format!("http://{addr}{}", self.path);
        Check::new(move || {
            let (probe, uri) = (probe.clone(), Uri::try_from(uri.as_str()));
            async move { probe.probe(uri?).await }
        })
    }
}

impl Probe<SocketAddr> for HttpProbe {
    fn check(&self, endpoint: &SocketAddr) -> Check {
        self.check_addr(*endpoint)
    }
}

#[cfg(feature = "dns")]
impl Probe<crate::discover::DnsEndpoint> for HttpProbe {
    fn check(&self, endpoint: &crate::discover::DnsEndpoint) -> Check {
        self.check_addr(endpoint.addr)
    }
}

#[cfg(feature = "etcd")]
impl Probe<crate::discover::EtcdEndpoint> for HttpProbe {
    fn check(&self, endpoint: &crate::discover::EtcdEndpoint) -> Check {
        self.check_addr(endpoint.addr)
    }
}

/// A status the probe did not expect.
#[derive(Debug)]
struct Unexpected(StatusCode);

impl std::fmt::Display for Unexpected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "health check answered {}", self.0)
    }
}

impl std::error::Error for Unexpected {}
