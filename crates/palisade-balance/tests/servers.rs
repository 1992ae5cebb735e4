//! The balancer in front of real axum backends on loopback, through hyper-util clients: one
//! backend is killed mid-run, and after its ejection nothing else fails.

#![cfg(all(feature = "http", feature = "grpc"))]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::mpsc;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use palisade_balance::discover::WatchDiscover;
use palisade_balance::http::http_endpoints;
use palisade_balance::{Balance, BalanceConfig};
use palisade_core::HttpClassifier;
use tokio::net::TcpListener;
use tower::{Service, ServiceExt};

/// A backend on its own thread and runtime, answering its name, until it is killed.
fn backend(name: &'static str) -> (SocketAddr, Backend) {
    let (addr_tx, addr_rx) = mpsc::channel();
    let (kill, killed) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        addr_tx.send(listener.local_addr().unwrap()).unwrap();
        let app = Router::new().route("/", get(move || async move { name }));
        runtime.spawn(async move { axum::serve(listener, app).await });
        runtime.block_on(async {
            let _ = tokio::task::spawn_blocking(move || killed.recv()).await;
        });
        runtime.shutdown_background();
    });
    let addr = addr_rx.recv().unwrap();
    (
        addr,
        Backend {
            kill,
            thread: Some(thread),
        },
    )
}

/// A running backend's thread, and the way to stop it.
struct Backend {
    kill: mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Backend {
    /// Kills the backend: its runtime, its listener and every connection it holds go away
    /// at once — and are gone when this returns (waiting for the thread makes it so: a kill
    /// that lands later, mid-test, fails requests the test expects to succeed).
    fn kill(&mut self) {
        let _ = self.kill.send(());
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_backend_is_ejected_and_nothing_else_fails() {
    let backends = ["a", "b", "c"].map(backend);
    let names: BTreeMap<SocketAddr, &str> = backends
        .iter()
        .map(|(addr, _)| *addr)
        .zip(["a", "b", "c"])
        .collect();
    let (_publish, addresses) =
        tokio::sync::watch::channel(names.keys().copied().collect::<BTreeSet<_>>());
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut balance = Balance::with_classifier(
        WatchDiscover::new("test", addresses, http_endpoints(client)),
        BalanceConfig::builder("backends").build().unwrap(),
        HttpClassifier::default(),
    );

    let mut answers: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..60 {
        let name = send(&mut balance).await.expect("every backend is up");
        *answers.entry(name).or_default() += 1;
    }
    assert_eq!(answers.len(), 3, "all three serve: {answers:?}");

    // Kill "a" while the balancer still has it in rotation.
    let mut backends = backends;
    backends[0].1.kill();
    // Until the balancer tries it: three endpoints fresh from a cold start have almost the
    // same estimate, and P2C may prefer the other two for a while (a run in CI did, for all
    // of a hundred requests, and tried the dead one only after them).
    let mut failures = 0;
    let mut sent = 0;
    while failures == 0 && sent < 2_000 {
        sent += 1;
        if send(&mut balance).await.is_err() {
            failures += 1;
        }
    }
    assert_eq!(
        failures, 1,
        "the dead backend was tried within {sent} requests"
    );
    for _ in 0..100 {
        if send(&mut balance).await.is_err() {
            failures += 1;
        }
    }
    assert!(
        failures <= 10,
        "{failures} failures before the dead backend was avoided"
    );

    // After that, nothing fails, and nothing goes to the dead backend.
    let mut after: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..100 {
        let name = send(&mut balance).await.expect("the live backends answer");
        *after.entry(name).or_default() += 1;
    }
    assert!(!after.contains_key("a"), "{after:?}");
    assert_eq!(after.values().sum::<usize>(), 100);
}

/// Sends a GET through `balance` and returns the body.
async fn send<S, B>(balance: &mut S) -> Result<String, tower::BoxError>
where
    S: Service<Request<Empty<Bytes>>, Response = http::Response<B>, Error = tower::BoxError>,
    B: http_body::Body,
    B::Error: Into<tower::BoxError>,
{
    let request = Request::get("http://backends/").body(Empty::new()).unwrap();
    let response = balance.ready().await?.call(request).await?;
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(Into::into)?
        .to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

mod grpc {
    use palisade_balance::discover::static_list;
    use palisade_balance::grpc::grpc_endpoints;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    use super::*;

    async fn health_server() -> SocketAddr {
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("orders", tonic_health::ServingStatus::Serving)
            .await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(health)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        addr
    }

    #[tokio::test]
    async fn a_tonic_client_is_served_through_the_balancer_over_two_channels() {
        let addrs = [health_server().await, health_server().await];
        let mut make = grpc_endpoints();
        let endpoints = addrs.map(|addr| (addr, make(&addr)));
        let balance = Balance::<_, http::Request<tonic::body::Body>, _>::with_classifier(
            static_list(endpoints),
            BalanceConfig::builder("health").build().unwrap(),
            HttpClassifier::default(),
        );
        let mut client = HealthClient::new(balance);
        for _ in 0..20 {
            let status = client
                .check(HealthCheckRequest {
                    service: "orders".to_owned(),
                })
                .await
                .expect("served")
                .into_inner()
                .status;
            assert_eq!(
                status,
                tonic_health::pb::health_check_response::ServingStatus::Serving as i32
            );
        }
    }
}
