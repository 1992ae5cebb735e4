//! The balancer in front of real axum backends on loopback, through hyper-util clients: one
//! backend is killed mid-run, and after its ejection nothing else fails.

#![cfg(all(feature = "http", feature = "grpc"))]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use palisade_balance::discover::WatchDiscover;
use palisade_balance::health::HealthCheck;
use palisade_balance::health::HttpProbe;
use palisade_balance::http::http_endpoints;
use palisade_balance::{Balance, BalanceConfig, LoadMetric};
use palisade_core::HttpClassifier;
use tokio::net::TcpListener;
use tower::{Service, ServiceExt};

/// A backend on its own thread and runtime, answering its name, until it is killed.
fn backend(name: &'static str) -> (SocketAddr, Backend) {
    backend_with_health(name, Arc::new(AtomicBool::new(true)))
}

/// A backend whose `/healthz` answers 200 while `healthy` is set, 503 otherwise.
fn backend_with_health(name: &'static str, healthy: Arc<AtomicBool>) -> (SocketAddr, Backend) {
    let (addr_tx, addr_rx) = mpsc::channel();
    let (kill, killed) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        addr_tx.send(listener.local_addr().unwrap()).unwrap();
        let healthz = move || {
            let status = match healthy.load(SeqCst) {
                true => StatusCode::OK,
                false => StatusCode::SERVICE_UNAVAILABLE,
            };
            async move { status }
        };
        let app = Router::new()
            .route("/", get(move || async move { name }))
            .route("/healthz", get(healthz));
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

/// Health checks over loopback, in real time: fast intervals, and waits bounded by a
/// deadline rather than timed.
fn fast_checks() -> HealthCheck {
    HealthCheck::new(Duration::from_millis(50))
        .unhealthy_interval(Duration::from_millis(50))
        .timeout(Duration::from_millis(500))
        .unhealthy_threshold(2)
        .healthy_threshold(2)
}

/// Sends requests until `done` says the answers so far are what was awaited, for at most
/// 10 s; whether it was.
async fn until<S, B>(balance: &mut S, mut done: impl FnMut(&str) -> bool) -> bool
where
    S: Service<Request<Empty<Bytes>>, Response = http::Response<B>, Error = tower::BoxError>,
    B: http_body::Body,
    B::Error: Into<tower::BoxError>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        let answer = send(balance).await.expect("a healthy backend answers");
        if done(&answer) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_failing_its_healthz_is_taken_out_before_traffic_fails() {
    let b_healthy = Arc::new(AtomicBool::new(true));
    let (a, _a) = backend("a");
    let (b, _b) = backend_with_health("b", b_healthy.clone());
    let (_publish, addresses) = tokio::sync::watch::channel(BTreeSet::from([a, b]));
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    // By requests in flight, one request at a time: the two tie, and each draw is a coin
    // toss — so a hundred answers in a row from `a` say that `b` is out, not slower.
    let config = BalanceConfig::builder("backends")
        .health_check(fast_checks())
        .load(LoadMetric::PendingRequests)
        .build()
        .unwrap();
    let mut balance = Balance::with_classifier(
        WatchDiscover::new("test", addresses, http_endpoints(client)),
        config,
        HttpClassifier::default(),
    )
    .probe(HttpProbe::get("/healthz"));

    assert!(until(&mut balance, |name| name == "b").await, "b serves");
    // b still answers its requests, but says it is unhealthy: it is taken out all the same.
    b_healthy.store(false, SeqCst);
    let mut from_a_in_a_row = 0;
    let out = until(&mut balance, |name| {
        from_a_in_a_row = if name == "a" { from_a_in_a_row + 1 } else { 0 };
        from_a_in_a_row == 100
    })
    .await;
    assert!(out, "b was taken out");
    assert_eq!(balance.ejected(), 1);

    b_healthy.store(true, SeqCst);
    assert!(until(&mut balance, |name| name == "b").await, "b is back");
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
    use palisade_balance::health::GrpcHealthProbe;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    use super::*;

    async fn health_server() -> SocketAddr {
        health_server_reporting().await.0
    }

    /// A gRPC server with the standard health service, `orders` serving; and its reporter.
    async fn health_server_reporting() -> (SocketAddr, tonic_health::server::HealthReporter) {
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
        (addr, reporter)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_not_serving_by_grpc_health_is_taken_out() {
        not_serving_is_taken_out(GrpcHealthProbe::service("orders")).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_not_serving_is_taken_out_over_a_watch_stream() {
        not_serving_is_taken_out(GrpcHealthProbe::service("orders").watch()).await;
    }

    async fn not_serving_is_taken_out(probe: GrpcHealthProbe) {
        use tonic_health::pb::health_check_response::ServingStatus;

        let (serving, _) = health_server_reporting().await;
        let (failing, reporter) = health_server_reporting().await;
        let mut make = grpc_endpoints();
        let endpoints = [serving, failing].map(|addr| (addr, make(&addr)));
        // By requests in flight: the two tie, and only an ejection keeps one out.
        let config = BalanceConfig::builder("health")
            .health_check(fast_checks())
            .load(LoadMetric::PendingRequests)
            .build()
            .unwrap();
        let balance = Balance::<_, http::Request<tonic::body::Body>, _>::with_classifier(
            static_list(endpoints),
            config,
            HttpClassifier::default(),
        )
        .probe(probe);
        let mut client = HealthClient::new(balance);
        let mut status = async || {
            let request = HealthCheckRequest {
                service: "orders".to_owned(),
            };
            let answer = client.check(request).await.expect("served");
            answer.into_inner().status
        };

        // The second server says `orders` is not serving, though it still answers: its
        // answers (NOT_SERVING) stop once its probes have failed twice.
        reporter
            .set_service_status("orders", tonic_health::ServingStatus::NotServing)
            .await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut serving_in_a_row = 0;
        while serving_in_a_row < 100 && tokio::time::Instant::now() < deadline {
            serving_in_a_row = match status().await == ServingStatus::Serving as i32 {
                true => serving_in_a_row + 1,
                false => 0,
            };
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            serving_in_a_row, 100,
            "the not-serving server was taken out"
        );
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
