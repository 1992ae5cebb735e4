//! [`GrpcHealthProbe`]: `grpc.health.v1.Health/Check` on each endpoint, or its streaming
//! `Watch` where the server supports it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use palisade_core::BoxError;
use tonic::Code;
use tonic::transport::Channel;
use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::probe::{Check, Probe};

/// Probes a gRPC endpoint with the standard health service (`grpc.health.v1.Health`,
/// served by tonic-health, grpc-go, grpc-java...): `SERVING` passes; `NOT_SERVING`,
/// `UNKNOWN`, an error status (`UNIMPLEMENTED` from a server without the service among
/// them) or no answer fails. Each endpoint gets a channel of its own for its probes, made
/// once, so probes reuse one connection.
///
/// By default each probe is a `Check` call. With [`watch`](Self::watch), each endpoint keeps
/// one `Watch` stream open instead, over which the server pushes every change of its
/// status, and a probe reads the last one pushed: no call per probe, and a change known
/// the moment it happens (acted on at the next probe). A server that answers `Watch` with
/// `UNIMPLEMENTED` is probed with `Check`; a broken stream is opened again, and until it
/// is, probes fail as a probe with no answer does.
#[derive(Clone, Debug, Default)]
pub struct GrpcHealthProbe {
    service: Arc<str>,
    watch: bool,
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
            watch: false,
        }
    }

    /// Follows each endpoint's status over a `Watch` stream rather than calling `Check`
    /// at each probe.
    pub fn watch(mut self) -> Self {
        self.watch = true;
        self
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
        let request = HealthCheckRequest {
            service: self.service.to_string(),
        };
        if !self.watch {
            return Check::new(move || check(client.clone(), request.clone()));
        }
        let status = Arc::new(AtomicI32::new(NO_ANSWER));
        let follower = Follower(tokio::spawn(follow(
            client.clone(),
            request.clone(),
            status.clone(),
        )));
        Check::new(move || {
            // Held by the check: the stream closes when the endpoint's probing stops.
            let _follower = &follower;
            match status.load(Ordering::Acquire) {
                WATCH_UNIMPLEMENTED => {
                    let check = check(client.clone(), request.clone());
                    Box::pin(check) as super::probe::CheckFuture
                }
                status => Box::pin(std::future::ready(verdict(status))),
            }
        })
    }
}

/// The last status is none yet, or the stream is broken.
const NO_ANSWER: i32 = -1;
/// The server does not implement `Watch`: probe with `Check`.
const WATCH_UNIMPLEMENTED: i32 = -2;

/// One `Check` call.
async fn check(
    mut client: HealthClient<Channel>,
    request: HealthCheckRequest,
) -> Result<(), BoxError> {
    let status = client.check(request).await?.into_inner().status;
    verdict(status)
}

/// `Ok` for `SERVING`; the status named otherwise.
fn verdict(status: i32) -> Result<(), BoxError> {
    if status == ServingStatus::Serving as i32 {
        return Ok(());
    }
    let status = match status {
        NO_ANSWER => "no answer on the Watch stream",
        status => ServingStatus::try_from(status)
            .map_or("an unknown status", |status| status.as_str_name()),
    };
    Err(BoxError::from(format!("health check answered {status}")))
}

/// Keeps a `Watch` stream open, storing each status it pushes in `status`.
async fn follow(
    mut client: HealthClient<Channel>,
    request: HealthCheckRequest,
    status: Arc<AtomicI32>,
) {
    loop {
        match client.watch(request.clone()).await {
            Ok(stream) => {
                let mut stream = stream.into_inner();
                while let Ok(Some(answer)) = stream.message().await {
                    status.store(answer.status, Ordering::Release);
                }
            }
            Err(error) if error.code() == Code::Unimplemented => {
                status.store(WATCH_UNIMPLEMENTED, Ordering::Release);
                return;
            }
            Err(_) => {}
        }
        status.store(NO_ANSWER, Ordering::Release);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The task that follows an endpoint's `Watch` stream; stops when dropped.
#[derive(Debug)]
struct Follower(tokio::task::JoinHandle<()>);

impl Drop for Follower {
    fn drop(&mut self) {
        self.0.abort();
    }
}
