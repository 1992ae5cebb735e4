//! The layer on a real Redis (a `redis-server` started on a free port): exactly once across
//! two "servers" sharing it, failing closed while it is down, resuming when it is back,
//! surviving a `SCRIPT FLUSH`, and expiring records.
//!
//! Real time, since Redis keeps its own clock; every wait is bounded and waits for an event.
#![cfg(feature = "redis")]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use palisade_idempotency::store::RedisStore;
use palisade_idempotency::{
    IdempotencyConfig, IdempotencyConfigBuilder, IdempotencyLayer, REPLAYED, RequestBody, Scope,
};
use palisade_test::redis::RedisServer;
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

const PATIENCE: Duration = Duration::from_secs(20);

/// One "server": the layer over Redis in front of a handler that counts its executions and
/// takes `work` to answer.
async fn server(
    url: String,
    config: IdempotencyConfigBuilder,
    executions: Arc<AtomicUsize>,
    work: Duration,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<impl http_body::Body<Data = Bytes, Error = BoxError>>,
    Error = Infallible,
    Future: Send,
> + Clone
+ Send
+ 'static {
    let store = RedisStore::connect(&url)
        .await
        .expect("connect to the test's redis-server");
    let layer = IdempotencyLayer::with_config(store, config.build().unwrap());
    layer.layer(service_fn(
        move |request: Request<RequestBody<Full<Bytes>>>| {
            let executions = executions.clone();
            async move {
                let n = executions.fetch_add(1, SeqCst) + 1;
                let body = request.into_body().collect().await.unwrap().to_bytes();
                tokio::time::sleep(work).await;
                Ok::<_, Infallible>(
                    Response::builder()
                        .status(201)
                        .header("x-execution", n)
                        .body(Full::new(body))
                        .unwrap(),
                )
            }
        },
    ))
}

fn config() -> IdempotencyConfigBuilder {
    IdempotencyConfig::builder("test", Scope::global())
}

fn post(key: &str) -> Request<Full<Bytes>> {
    Request::post("/orders")
        .header("idempotency-key", key)
        .body(Full::new(Bytes::from_static(b"{\"qty\":1}")))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_duplicates_across_two_servers_run_once() {
    let redis = RedisServer::start();
    let executions = Arc::new(AtomicUsize::new(0));
    let config = || config().wait_for_in_flight(PATIENCE);
    let work = Duration::from_millis(300);
    let one = server(redis.url(), config(), executions.clone(), work).await;
    let two = server(redis.url(), config(), executions.clone(), work).await;

    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let server = if i % 2 == 0 { one.clone() } else { two.clone() };
            tokio::spawn(async move {
                let response = server.oneshot(post("\"order-42\"")).await.unwrap();
                let replayed = response.headers().contains_key(REPLAYED);
                let execution = response.headers()["x-execution"].clone();
                (response.status(), replayed, execution)
            })
        })
        .collect();
    let mut replays = 0;
    for task in tasks {
        let (status, replayed, execution) = task.await.unwrap();
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(execution, "1");
        replays += usize::from(replayed);
    }
    assert_eq!(
        executions.load(SeqCst),
        1,
        "one execution across both servers"
    );
    assert_eq!(replays, 999);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_down_keyed_requests_get_503_and_nothing_runs_twice() {
    let mut redis = RedisServer::start();
    let executions = Arc::new(AtomicUsize::new(0));
    let server = server(
        redis.url(),
        config(),
        executions.clone(),
        Duration::from_millis(500),
    )
    .await;

    // A request is running when Redis dies.
    let running = tokio::spawn(server.clone().oneshot(post("in-flight")));
    tokio::time::timeout(PATIENCE, async {
        while executions.load(SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the first request runs");
    redis.kill();

    // Its answer still reaches its client (it could not be stored, and that is all).
    let first = running.await.unwrap().unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);

    // Retries and new requests are refused, not run unprotected.
    for key in ["in-flight", "new"] {
        let refused = server.clone().oneshot(post(key)).await.unwrap();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE, "{key}");
        assert_eq!(refused.headers()["retry-after"], "1");
        assert_eq!(
            refused.headers()["content-type"],
            "application/problem+json"
        );
    }
    assert_eq!(
        executions.load(SeqCst),
        1,
        "nothing ran while Redis was down"
    );

    // Back up: the service resumes once the connection is re-established.
    redis.restart();
    tokio::time::timeout(PATIENCE, async {
        loop {
            let response = server.clone().oneshot(post("after")).await.unwrap();
            if response.status() == StatusCode::CREATED {
                break;
            }
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the service resumes when Redis is back");
    let replay = server.clone().oneshot(post("after")).await.unwrap();
    assert!(replay.headers().contains_key(REPLAYED));
    assert_eq!(executions.load(SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_flush_does_not_break_the_layer_and_records_expire() {
    let redis = RedisServer::start();
    let executions = Arc::new(AtomicUsize::new(0));
    let server = server(
        redis.url(),
        config()
            .lease(Duration::from_millis(500))
            .ttl(Duration::from_secs(1)),
        executions.clone(),
        Duration::ZERO,
    )
    .await;

    server.clone().oneshot(post("k")).await.unwrap();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut connection)
        .await
        .unwrap();
    let replay = server.clone().oneshot(post("k")).await.unwrap();
    assert!(
        replay.headers().contains_key(REPLAYED),
        "replayed after the flush"
    );
    assert_eq!(executions.load(SeqCst), 1);

    // After its TTL the record is gone, and the key runs again.
    tokio::time::timeout(PATIENCE, async {
        loop {
            let response = server.clone().oneshot(post("k")).await.unwrap();
            if !response.headers().contains_key(REPLAYED) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the record expires");
    assert_eq!(executions.load(SeqCst), 2);
}
