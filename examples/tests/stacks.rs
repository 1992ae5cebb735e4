//! The layers composed as docs/recipes.md gives them, on real servers over loopback, in
//! the situations where composed layers used to turn a healthy service into failures:
//!
//! - a slow endpoint under the retry's attempt timeout is charged for the attempts it cut,
//!   and the balancer sends the rest to the healthy one;
//! - one replica that fails fast, beside a healthy one, fails no request through the
//!   documented client stack (the breaker outside the retry);
//! - a tonic server whose breaker sits above its idempotency layer: the layer's in-flight
//!   `UNAVAILABLE`s are refusals, not failures, and the breaker stays closed;
//! - the retry layer retries the `409` an idempotency server answers while the first
//!   request with the key runs, and gets the stored response.
//!
//! Real time: the servers' handlers are gated by the test (`Notify`, a watch channel) or
//! sleep far longer than the timeouts they meet, so that no assertion rests on a race.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use palisade::balance::discover::static_list;
use palisade::balance::http::HttpEndpoint;
use palisade::breaker::State;
use palisade::prelude::*;
use palisade::retry::http::ReplayBody;
use tokio::sync::{Notify, watch};
use tower::util::BoxCloneSyncService;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};

type HttpClient = BoxCloneSyncService<http::Request<Full<Bytes>>, (StatusCode, Bytes), BoxError>;

/// Serves `app` on a free loopback port.
async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A server whose `/stock` answers `status` after `delay`, counting its requests.
async fn backend(status: StatusCode, delay: Duration) -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().route(
        "/stock",
        axum::routing::get(move || async move {
            counted.fetch_add(1, SeqCst);
            tokio::time::sleep(delay).await;
            status
        }),
    );
    (serve(app).await, hits)
}

/// The documented client stack — breaker → retry → buffer → balance — over `addrs`.
fn documented_client(addrs: &[SocketAddr], retry: RetryConfig) -> HttpClient {
    let hyper = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let endpoints = addrs
        .iter()
        .map(|&addr| (addr, HttpEndpoint::new(hyper.clone(), addr)));
    let balance = Balance::with_classifier(
        static_list(endpoints),
        BalanceConfig::builder("inventory").build().unwrap(),
        HttpClassifier::default(),
    );
    let breaker = BreakerConfig::builder("inventory").build().unwrap();
    let stack = ServiceBuilder::new()
        .http_circuit_breaker(breaker)
        .http_retry(retry)
        .buffer(1024)
        .service(balance)
        .and_then(read);
    BoxCloneSyncService::new(stack)
}

/// A response's status and whole body.
async fn read<B>(response: http::Response<B>) -> Result<(StatusCode, Bytes), BoxError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let (head, body) = response.into_parts();
    let body = body.collect().await.map_err(Into::into)?;
    Ok((head.status, body.to_bytes()))
}

async fn get_stock(client: &HttpClient) -> Result<StatusCode, BoxError> {
    let request = http::Request::get("/stock").body(Full::default()).unwrap();
    Ok(client.clone().oneshot(request).await?.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_endpoint_under_an_attempt_timeout_is_charged_for_the_attempts_it_cut() {
    // The slow endpoint answers long after any attempt gives up on it.
    let (slow, slow_hits) = backend(StatusCode::OK, Duration::from_secs(30)).await;
    let (fast, fast_hits) = backend(StatusCode::OK, Duration::ZERO).await;
    let retry = RetryConfig::builder("inventory")
        .attempt_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let client = documented_client(&[slow, fast], retry);
    for i in 0..20 {
        let status = get_stock(&client)
            .await
            .unwrap_or_else(|e| panic!("request {i} failed: {e}"));
        assert_eq!(status, StatusCode::OK);
    }
    // Each cut attempt is a failure of that endpoint (the penalty, and towards ejection);
    // before, it was charged nothing and kept its fast estimate, and P2C sent it most of
    // the attempts.
    let (slow_hits, fast_hits) = (slow_hits.load(SeqCst), fast_hits.load(SeqCst));
    assert!(
        slow_hits <= 2,
        "the slow endpoint got {slow_hits} attempts, the fast {fast_hits}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_fast_failing_replica_fails_no_request_through_the_documented_stack() {
    let (bad, bad_hits) = backend(StatusCode::SERVICE_UNAVAILABLE, Duration::ZERO).await;
    let (good, good_hits) = backend(StatusCode::OK, Duration::from_millis(5)).await;
    let client = documented_client(
        &[bad, good],
        RetryConfig::builder("inventory").build().unwrap(),
    );
    // 32 callers at once, as a pool of workers starts: the first requests meet the bad
    // replica before any answer has taught the balancer to avoid it.
    let callers: Vec<_> = (0..32)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut failed = 0;
                for _ in 0..10 {
                    if !matches!(get_stock(&client).await, Ok(StatusCode::OK)) {
                        failed += 1;
                    }
                }
                failed
            })
        })
        .collect();
    let mut failed = 0;
    for caller in callers {
        failed += caller.await.unwrap();
    }
    assert_eq!(failed, 0, "of 320 requests");
    assert!(good_hits.load(SeqCst) >= 320);
    assert!(
        bad_hits.load(SeqCst) < 64,
        "the bad replica is soon avoided: {}",
        bad_hits.load(SeqCst)
    );
}

/// Holds every request until the test opens it, saying when one is waiting.
#[derive(Clone)]
struct Gate<S> {
    inner: S,
    open: watch::Receiver<bool>,
    waiting: Arc<Notify>,
}

impl<S, R> Service<R> for Gate<S>
where
    S: Service<R> + Clone + Send + 'static,
    S::Future: Send,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        // The clone is the one made ready; this one takes its place (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (mut open, waiting) = (self.open.clone(), self.waiting.clone());
        Box::pin(async move {
            waiting.notify_one();
            let _ = open.wait_for(|open| *open).await;
            inner.call(request).await
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tonic_breaker_above_idempotency_does_not_count_its_in_flight_refusals() {
    use palisade::idempotency::RequestBody;
    use tonic::transport::{Endpoint, Server};
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("orders", tonic_health::ServingStatus::Serving)
        .await;
    let breaker = HttpCircuitBreakerLayer::new("grpc");
    let breaker_handle = breaker.handle();
    let idempotency = IdempotencyConfig::builder("grpc", Scope::global())
        .build()
        .unwrap();
    let (gate, open) = watch::channel(false);
    let waiting = Arc::new(Notify::new());
    let gate_waiting = waiting.clone();
    // The order a reader of an older recipe took: the breaker above idempotency.
    let stack = ServiceBuilder::new()
        .layer(HttpShedLayer::new("grpc"))
        .layer(breaker)
        .layer(IdempotencyLayer::with_config(
            MemoryStore::new(),
            idempotency,
        ))
        .map_request(|r: http::Request<RequestBody<tonic::body::Body>>| {
            r.map(tonic::body::Body::new)
        })
        .layer_fn(move |inner| Gate {
            inner,
            open: open.clone(),
            waiting: gate_waiting.clone(),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        Server::builder()
            .layer(stack)
            .add_service(health)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
    });
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let keyed = || {
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: "orders".into(),
        });
        request
            .metadata_mut()
            .insert("idempotency-key", "\"check-1\"".parse().unwrap());
        request
    };

    // The first call with the key runs (held at the gate)...
    let mut first_client = HealthClient::new(channel.clone());
    let first = tokio::spawn(async move { first_client.check(keyed()).await });
    waiting.notified().await;
    // ...and six duplicates meanwhile are refused as in flight, one more than the
    // breaker's five failures in a row.
    let mut client = HealthClient::new(channel);
    for _ in 0..6 {
        let refused = client.check(keyed()).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    }
    assert_eq!(breaker_handle.state(), State::Closed);
    assert_eq!(breaker_handle.counts().consecutive_failures, 0);

    gate.send(true).unwrap();
    first.await.unwrap().expect("the first call is served");
    let unrelated = client
        .check(HealthCheckRequest {
            service: "orders".into(),
        })
        .await;
    assert!(unrelated.is_ok(), "healthy calls are not refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_retries_the_409_of_a_key_in_flight_and_gets_the_stored_response() {
    let executed = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let handler = {
        let (executed, started, release) = (executed.clone(), started.clone(), release.clone());
        move |body: String| async move {
            executed.fetch_add(1, SeqCst);
            started.notify_one();
            release.notified().await;
            (StatusCode::CREATED, format!("order {body}"))
        }
    };
    let idempotency = IdempotencyConfig::builder("orders", Scope::global())
        .retry_after(Duration::from_millis(300))
        .build()
        .unwrap();
    let app = axum::Router::new()
        .route("/orders", axum::routing::post(handler))
        .layer(IdempotencyLayer::with_config(
            MemoryStore::new(),
            idempotency,
        ));
    let addr = serve(app).await;
    let post = || {
        http::Request::post("/orders")
            .header("idempotency-key", "\"o-1\"")
            .body(Full::new(Bytes::from_static(b"1")))
            .unwrap()
    };

    // A first client's request with the key is running...
    let plain = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut first = post();
    *first.uri_mut() = format!("http://{addr}/orders").parse().unwrap();
    let first = tokio::spawn(plain.request(first));
    started.notified().await;

    // ...when a palisade client retries the same operation: 409, retried after the
    // server's Retry-After, until the first has finished and its response is stored.
    let client = documented_client(&[addr], RetryConfig::builder("orders").build().unwrap());
    let retried = tokio::spawn({
        let client = client.clone();
        async move { client.oneshot(post()).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    release.notify_one();

    let (status, body) = retried.await.unwrap().expect("answered");
    assert_eq!(status, StatusCode::CREATED, "{body:?}");
    assert_eq!(body, "order 1");
    assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::CREATED);
    assert_eq!(executed.load(SeqCst), 1, "the handler ran once");
}
