//! A tonic client with palisade's client stack: a `Channel` per endpoint, failure-aware
//! balancing over them (a channel that cannot connect, or keeps answering `UNAVAILABLE`, is
//! penalised and ejected), and retries under a budget that honour gRPC's pushback.
//!
//! ```text
//! generated client ─▶ retry (budget, pushback) ─▶ balance (P2C, ejection) ─▶ Channel per address
//!                                                      ▲
//!                                     addresses from a watch channel (yours to publish)
//! ```
//!
//! ```text
//! cargo run --example tonic_server &                       # serves on 127.0.0.1:50051
//! cargo run --example grpc_client -- 127.0.0.1:50051 127.0.0.1:50052
//! ```
#![allow(clippy::print_stdout)]

use std::collections::BTreeSet;
use std::net::SocketAddr;

use palisade::balance::discover::WatchDiscover;
use palisade::balance::grpc::grpc_endpoints;
use palisade::core::ConfigError;
use palisade::prelude::*;
use tokio::sync::watch;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::util::BoxCloneSyncService;
use tower::{BoxError, ServiceBuilder};

/// What a generated tonic client (`HealthClient::new(channel)`) runs on.
pub(crate) type GrpcChannel = BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    BoxError,
>;

/// The client stack over whatever addresses `addresses` holds: publish a new set and the
/// balancer follows it, draining the endpoints that left.
pub(crate) fn channel(
    addresses: watch::Receiver<BTreeSet<SocketAddr>>,
) -> Result<GrpcChannel, ConfigError> {
    // A lazily connecting Channel per address; it reconnects by itself.
    let balance = Balance::with_classifier(
        WatchDiscover::new("inventory", addresses, grpc_endpoints()),
        BalanceConfig::from("health"),
        // Reads grpc-status: UNAVAILABLE, DEADLINE_EXCEEDED and the like are failures.
        HttpClassifier::default(),
    );
    // UNAVAILABLE is retried on another endpoint, within 20 % of recent traffic (none
    // while most calls fail);
    // grpc-retry-pushback-ms from the server sets the wait, or stops the retry.
    let retry = RetryConfig::builder("health")
        // Every gRPC call is a POST, which is retried only when it carries an
        // `idempotency-key`: a server behind palisade's IdempotencyLayer then runs it once
        // however often it arrives. (A service whose methods are all safe to repeat can use
        // `HttpPolicy::default().any_method()` instead.)
        .idempotency_keys(true)
        .build()?;
    let stack = ServiceBuilder::new()
        .http_retry(retry)
        // A Channel takes tonic's body; the retry layer hands down one it can replay.
        .map_request(|request: http::Request<_>| request.map(tonic::body::Body::new))
        // The balancer is one shared state; a buffer lets every clone of the client reach it.
        .buffer(1024)
        .service(balance);
    Ok(BoxCloneSyncService::new(stack))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut addresses: BTreeSet<SocketAddr> = std::env::args()
        .skip(1)
        .map(|arg| arg.parse())
        .collect::<Result<_, _>>()?;
    if addresses.is_empty() {
        addresses.insert("127.0.0.1:50051".parse()?);
    }
    // Keep the sender: discovery (Consul, Kubernetes, a config file) publishes through it.
    let (_publish, watched) = watch::channel(addresses);
    let mut health = HealthClient::new(channel(watched)?);

    for n in 1..=10 {
        let request = HealthCheckRequest {
            service: "orders".into(),
        };
        match health.check(request).await {
            Ok(response) => println!("{n}: {:?}", response.into_inner().status()),
            Err(status) => println!("{n}: {:?} {}", status.code(), status.message()),
        }
    }
    Ok(())
}
