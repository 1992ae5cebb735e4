//! The `grpc_client` example against three tonic servers on loopback, one of which answers
//! every call with `UNAVAILABLE`: every call succeeds, the failing server is left nearly
//! idle, and a server taken out of the watched set is no longer called.

#[path = "../grpc_client.rs"]
#[allow(dead_code, reason = "the example's main is not run here")]
mod grpc_client;

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use palisade::prelude::*;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// tonic-health on loopback, counting the calls that reach it; `unavailable` puts a
/// breaker held open in front of it, so that it answers every call with UNAVAILABLE.
async fn health_server(unavailable: bool) -> (SocketAddr, Arc<AtomicUsize>) {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("orders", tonic_health::ServingStatus::Serving)
        .await;
    let breaker = HttpCircuitBreakerLayer::new("test");
    if unavailable {
        breaker.handle().force_open();
    }
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(tower::ServiceBuilder::new().map_request(
                move |request: http::Request<tonic::body::Body>| {
                    counted.fetch_add(1, Relaxed);
                    request
                },
            ))
            .layer(breaker)
            .add_service(health)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (addr, hits)
}

async fn check(health: &mut HealthClient<grpc_client::GrpcChannel>) {
    let request = HealthCheckRequest {
        service: "orders".into(),
    };
    let status = health.check(request).await.expect("served").into_inner();
    assert_eq!(status.status(), ServingStatus::Serving);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_client_balances_and_retries_around_an_unavailable_server() {
    let (a, a_hits) = health_server(false).await;
    let (b, b_hits) = health_server(false).await;
    let (bad, bad_hits) = health_server(true).await;
    let (publish, addresses) = watch::channel(BTreeSet::from([a, b, bad]));
    let mut health = HealthClient::new(grpc_client::channel(addresses).unwrap());

    // Every call succeeds: one sent to the failing server is retried on another, and the
    // balancer soon stops choosing it.
    for _ in 0..300 {
        check(&mut health).await;
    }
    common::assert_failing_server_avoided(&a_hits, &b_hits, &bad_hits);

    // A server taken out of the set gets no more calls; the others carry on.
    publish.send_modify(|set| {
        set.remove(&a);
    });
    common::until_removed_server_idle(&a_hits, async || {
        for _ in 0..50 {
            check(&mut health).await;
        }
    })
    .await;
    let (a_before, b_before) = (a_hits.load(Relaxed), b_hits.load(Relaxed));
    for _ in 0..100 {
        check(&mut health).await;
    }
    assert_eq!(
        a_hits.load(Relaxed),
        a_before,
        "the removed server is not called"
    );
    assert!(b_hits.load(Relaxed) >= b_before + 90, "b takes the calls");
}
