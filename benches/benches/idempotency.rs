//! What the idempotency layer costs a request.
//!
//! - `memory/*`: a GET passing through, beside the bare service; a POST with a new key
//!   (claim, run, store) and a replay, with the in-memory store. Every call is driven by
//!   `block_on` on a current-thread runtime, bare service included, so the differences are
//!   the layer's.
//! - `redis/*`: a POST with a new key and a replay on Redis, beside one `PING` over the same
//!   connection: new key ÷ PING and replay ÷ PING are the costs in round trips. Needs
//!   `redis-server` on the PATH (the bench starts one on a free port); skipped otherwise.
//!
//! `cargo bench -p palisade-benches --bench idempotency`

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use palisade_idempotency::store::{MemoryStore, Store};
use palisade_idempotency::{IdempotencyConfig, IdempotencyLayer, Scope};
use tower::{Layer, Service, ServiceExt, service_fn};

fn handler<B>()
-> impl Service<Request<B>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send + 'static>
+ Clone
+ Send
+ 'static {
    service_fn(|_: Request<B>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
            b"{\"order\":\"created\"}",
        ))))
    })
}

fn layered(
    store: impl Store,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<impl http_body::Body<Data = Bytes, Error: std::fmt::Debug>>,
    Error = Infallible,
> + Clone {
    let config = IdempotencyConfig::builder("test", Scope::global())
        .build()
        .expect("a valid configuration");
    IdempotencyLayer::with_config(store, config).layer(handler())
}

fn request(method: http::Method, key: Option<String>) -> Request<Full<Bytes>> {
    let mut request = Request::builder().method(method).uri("/orders");
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request
        .body(Full::new(Bytes::from_static(b"{\"qty\":1}")))
        .expect("a valid request")
}

/// Sends one request and reads its whole body.
async fn send<S, B>(service: &S, request: Request<Full<Bytes>>)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible> + Clone,
    B: http_body::Body<Data = Bytes, Error: std::fmt::Debug>,
{
    let response = service.clone().oneshot(request).await.expect("infallible");
    std::hint::black_box(response.into_body().collect().await.expect("a body"));
}

/// A POST with a new key each time, then replays of one key.
fn bench_keyed<S, B>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &tokio::runtime::Runtime,
    ours: &S,
) where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible> + Clone,
    B: http_body::Body<Data = Bytes, Error: std::fmt::Debug>,
{
    let fresh = AtomicU64::new(0);
    group.bench_function("post-new-key/palisade", |b| {
        b.iter(|| {
            let key = format!("key-{}", fresh.fetch_add(1, Relaxed));
            runtime.block_on(send(ours, request(http::Method::POST, Some(key))))
        })
    });
    let same = || request(http::Method::POST, Some("same".into()));
    runtime.block_on(send(ours, same()));
    group.bench_function("post-replay/palisade", |b| {
        b.iter(|| runtime.block_on(send(ours, same())))
    });
}

fn bench_memory(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut group = c.benchmark_group("idempotency/memory");
    let bare = handler::<Full<Bytes>>();
    let ours = layered(MemoryStore::new());
    group.bench_function("get/bare", |b| {
        b.iter(|| runtime.block_on(send(&bare, request(http::Method::GET, None))))
    });
    group.bench_function("get/palisade", |b| {
        b.iter(|| runtime.block_on(send(&ours, request(http::Method::GET, None))))
    });
    bench_keyed(&mut group, &runtime, &ours);
    group.finish();
}

fn bench_redis(c: &mut Criterion) {
    use palisade_idempotency::store::RedisStore;
    use palisade_test::redis::RedisServer;

    if std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("redis-server is not installed: skipping the Redis benches");
        return;
    }
    let redis = RedisServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let manager = runtime.block_on(async {
        let client = redis::Client::open(redis.url()).expect("a Redis URL");
        redis::aio::ConnectionManager::new(client)
            .await
            .expect("connect to redis-server")
    });
    let ours = layered(RedisStore::new(manager.clone()));
    let mut group = c.benchmark_group("idempotency/redis");
    group.bench_function("ping", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut connection = manager.clone();
                let pong: String = redis::cmd("PING")
                    .query_async(&mut connection)
                    .await
                    .expect("PONG");
                std::hint::black_box(pong);
            })
        })
    });
    bench_keyed(&mut group, &runtime, &ours);
    group.finish();
}

criterion_group!(benches, bench_memory, bench_redis);
criterion_main!(benches);
