//! What the idempotency layer costs a request.
//!
//! - `memory/*`: a GET passing through, beside the bare service; a POST with a new key
//!   (claim, run, store) and a replay, with the in-memory store. Every call is driven by
//!   `block_on` on a current-thread runtime, bare service included, so the differences are
//!   the layer's.
//! - `redis/*`: a POST with a new key and a replay on Redis, beside one `PING` over the same
//!   connection: new key ÷ PING and replay ÷ PING are the costs in round trips. Needs
//!   `redis-server` on the PATH (the bench starts one on a free port); skipped otherwise.
//!   Then Redis is killed: `post-store-down` is a keyed request refused once the store's
//!   breaker has opened.
//! - `redis-cluster/*`: the same on a Redis Cluster (three primaries, three replicas, started
//!   on free ports), beside one `PING` through the cluster connection: beside `redis/*`,
//!   the cluster's own cost. `redis-cluster-wait1/*`: with durable claims
//!   (`Durability::replicas(1)`), each claim and completion followed by `WAIT 1`.
//! - `postgres/*`: the same on `PostgresStore`, beside one `SELECT 1` on the same pool, in
//!   a schema made for the run. Needs PostgreSQL (`PALISADE_POSTGRES_URL`, by default the
//!   local `test` database); skipped otherwise. `postgres-at-commit/*`: the store claiming
//!   at commit, the handler taking no transaction.
//!
//! `cargo bench -p palisade-criterion --bench idempotency`

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

/// Whether `redis-server` is on the PATH; says which benches it skips if not.
fn redis_installed(benches: &str) -> bool {
    let installed = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok();
    if !installed {
        eprintln!("redis-server is not installed: skipping the {benches} benches");
    }
    installed
}

fn bench_redis(c: &mut Criterion) {
    use palisade_idempotency::store::RedisStore;
    use palisade_test::redis::RedisServer;

    if !redis_installed("Redis") {
        return;
    }
    let mut redis = RedisServer::start();
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
    // Redis down: the first keyed requests wait out the connection timeout and open the
    // store's breaker; from then on a keyed request is refused (503) without asking Redis.
    redis.kill();
    let fresh = AtomicU64::new(0);
    let refused = || {
        request(
            http::Method::POST,
            Some(format!("down-{}", fresh.fetch_add(1, Relaxed))),
        )
    };
    for _ in 0..3 {
        runtime.block_on(send(&ours, refused()));
    }
    group.bench_function("post-store-down/palisade", |b| {
        b.iter(|| runtime.block_on(send(&ours, refused())))
    });
    group.finish();
}

fn bench_redis_cluster(c: &mut Criterion) {
    use palisade_idempotency::store::{Durability, RedisStore};
    use palisade_test::redis_cluster::RedisCluster;

    if !redis_installed("Redis Cluster") {
        return;
    }
    let cluster = RedisCluster::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (store, mut connection) = runtime.block_on(async {
        let store = RedisStore::cluster(cluster.nodes())
            .await
            .expect("connect to the cluster");
        let client = redis::cluster::ClusterClient::new(
            cluster
                .nodes()
                .iter()
                .map(|node| format!("redis://{node}/")),
        )
        .expect("cluster URLs");
        let connection = client
            .get_async_connection()
            .await
            .expect("connect to the cluster");
        (store, connection)
    });
    let mut group = c.benchmark_group("idempotency/redis-cluster");
    group.bench_function("ping", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let pong: String = redis::cmd("PING")
                    .query_async(&mut connection)
                    .await
                    .expect("PONG");
                std::hint::black_box(pong);
            })
        })
    });
    bench_keyed(&mut group, &runtime, &layered(store.clone()));
    group.finish();
    let mut group = c.benchmark_group("idempotency/redis-cluster-wait1");
    let durable = store.durable(Durability::replicas(1));
    bench_keyed(&mut group, &runtime, &layered(durable));
    group.finish();
}

fn bench_postgres(c: &mut Criterion) {
    use palisade_idempotency::store::PostgresStore;
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

    let url = std::env::var("PALISADE_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let schema = format!("bench_{}", std::process::id());
    let Ok(options) = url.parse::<PgConnectOptions>() else {
        eprintln!("PALISADE_POSTGRES_URL does not parse: skipping the Postgres benches");
        return;
    };
    let made = runtime.block_on(async {
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await?;
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .execute(&admin)
            .await?;
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(options.options([("search_path", schema.as_str())]))
            .await?;
        Ok::<_, sqlx::Error>((admin, pool))
    });
    let Ok((admin, pool)) = made else {
        eprintln!("PostgreSQL is not reachable at {url}: skipping the Postgres benches");
        return;
    };
    let store = PostgresStore::new(pool.clone());
    runtime
        .block_on(store.ensure_schema())
        .expect("the records' table");
    let ours = layered(store.clone());
    let mut group = c.benchmark_group("idempotency/postgres");
    group.bench_function("select-1", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let one: i32 = sqlx::query_scalar("SELECT 1")
                    .fetch_one(&pool)
                    .await
                    .expect("1");
                std::hint::black_box(one);
            })
        })
    });
    bench_keyed(&mut group, &runtime, &ours);
    group.finish();
    // Claiming at commit, with a handler that takes no transaction: a new key is the
    // record's one statement; a replay runs the handler, then finds the record.
    let mut group = c.benchmark_group("idempotency/postgres-at-commit");
    bench_keyed(&mut group, &runtime, &layered(store.claim_at_commit()));
    group.finish();
    let drop_schema = format!("DROP SCHEMA \"{schema}\" CASCADE");
    let _ = runtime.block_on(sqlx::query(&drop_schema).execute(&admin));
}

criterion_group!(
    benches,
    bench_memory,
    bench_redis,
    bench_redis_cluster,
    bench_postgres
);
criterion_main!(benches);
