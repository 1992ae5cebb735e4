//! [`GrpcHealthProbe`]: `grpc.health.v1.Health/Check` on each endpoint.

use std::net::SocketAddr;
use std::sync::Arc;

use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::probe::{Check, Probe};

/// Probes a gRPC endpoint with the standard health service (`grpc.health.v1.Health/Check`,
/// served by tonic-health, grpc-go, grpc-java...): `SERVING` passes; `NOT_SERVING`,
/// `UNKNOWN`, an error status (`UNIMPLEMENTED` from a server without the service among
/// them) or no answer fails. Each endpoint gets a channel of its own for its probes, made
/// once, so probes reuse one connection.
#[derive(Clone, Debug, Default)]
pub struct GrpcHealthProbe {
    service: Arc<str>,
}

impl GrpcHealthProbe {
    /// A probe of the server as a whole (the empty service name).
    pub fn server() -> Self {
        Self::default()
    }

    /// A probe of one service, by its fully qualified name (`package.Service`).
    pub fn service(name: impl Into<Arc<str>>) -> Self {
        Self {
            service: name.into(),
        }
    }
}

impl Probe<SocketAddr> for GrpcHealthProbe {
    fn check(&self, endpoint: &SocketAddr) -> Check {
        self.check_addr(*endpoint)
    }
}

#[cfg(feature = "dns")]
impl Probe<crate::discover::DnsEndpoint> for GrpcHealthProbe {
    fn check(&self, endpoint: &crate::discover::DnsEndpoint) -> Check {
        self.check_addr(endpoint.addr)
    }
}

#[cfg(feature = "etcd")]
impl Probe<crate::discover::EtcdEndpoint> for GrpcHealthProbe {
    fn check(&self, endpoint: &crate::discover::EtcdEndpoint) -> Check {
        self.check_addr(endpoint.addr)
    }
}

impl GrpcHealthProbe {
    /// The check of the endpoint at `addr`, on a channel of its own.
    pub fn check_addr(&self, addr: SocketAddr) -> Check {
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("a socket address makes a valid URI")
            .connect_lazy();
        let client = HealthClient::new(channel);
        let service = self.service.clone();
        Check::new(move || {
            let mut client = client.clone();
            let request = HealthCheckRequest {
                service: service.to_string(),
            };
            async move {
                let status = client.check(request).await?.into_inner().status;
                if status == ServingStatus::Serving as i32 {
                    Ok(())
                } else {
                    let status = ServingStatus::try_from(status)
                        .map_or("an unknown status", |status| status.as_str_name());
                    Err(palisade_core::BoxError::from(format!(
                        "health check answered {status}"
                    )))
                }
            }
        })
    }
}
