//! Crashes: a real server process, killed with SIGKILL at random moments — before its
//! handler writes, between the write and the commit, after the commit, while the answer is
//! on its way — hundreds of times, while clients retry every operation until it succeeds.
//! Afterwards each operation must have left exactly one order, and every answer a client
//! got for it must be the same bytes.
//!
//! With `PostgresStore` and the keyed transaction that is what happens. The Redis and
//! memory stores are run the same way to measure what they still allow (a crash after the
//! handler's own commit and before the record's runs the handler again; the memory store
//! forgets everything at a restart): their counts are printed, and docs/idempotency.md
//! quotes them.
//!
//! Clients that go away are run the same way, on every store: each operation's first attempt
//! is abandoned at a random moment of the handler's run (its connection closed), then
//! retried until it succeeds.
//!
//! The server is this test binary again, run with `CRASH_SERVE` set: see [`serve`].
#![cfg(all(feature = "postgres", feature = "axum", feature = "redis"))]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use palisade_idempotency::store::postgres::{KeyedTransaction, PostgresStore};
use palisade_idempotency::store::{MemoryStore, RedisStore, Store};
use palisade_idempotency::{IdempotencyConfig, IdempotencyLayer, Scope};
use palisade_test::redis::RedisServer;
use sqlx::postgres::PgPoolOptions;

mod common;

use common::postgres::{Schema, url};

/// A lease short enough that a killed server's claims free their keys soon.
const LEASE: Duration = Duration::from_millis(600);

/// Clients sending operations at the same time.
const CLIENTS: usize = 8;

/// What goes wrong during a run.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    /// The server is killed with SIGKILL this many times, at random moments.
    Kills(usize),
    /// Each operation's first attempt is abandoned by its client at a random moment within
    /// the handler's run (the connection closed under it); the server keeps running.
    Disconnects,
}

/// What a run measured.
#[derive(Debug, Default)]
struct Outcome {
    kills: usize,
    /// First attempts the client abandoned mid-way (its connection closed).
    disconnects: usize,
    operations: usize,
    /// Orders beyond the first for an operation: the handler ran again.
    duplicate_orders: usize,
    /// Operations whose clients got different answers.
    differing_answers: usize,
    /// Operations that left no order at all.
    lost: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgres_every_operation_happens_exactly_once_across_crashes() {
    exactly_once_across_200_kills("postgres").await;
}

async fn exactly_once_across_200_kills(store: &'static str) {
    let outcome = crash_run(store, 200, Duration::from_secs(150)).await;
    eprintln!("{store}: {outcome:?}");
    assert!(outcome.kills >= 200, "{outcome:?}");
    assert!(outcome.operations >= 100, "{outcome:?}");
    assert_eq!(outcome.duplicate_orders, 0, "{outcome:?}");
    assert_eq!(outcome.differing_answers, 0, "{outcome:?}");
    assert_eq!(outcome.lost, 0, "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claiming_at_commit_every_operation_still_happens_exactly_once_across_crashes() {
    exactly_once_across_200_kills("postgres-at-commit").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_disconnect_mid_handler_are_measured_on_every_store() {
    for store in ["postgres", "postgres-at-commit", "redis", "memory"] {
        let outcome = fault_run(store, Fault::Disconnects, Duration::from_secs(5)).await;
        eprintln!("{store}, disconnects: {outcome:?}");
        assert!(outcome.disconnects > 0, "{store}: {outcome:?}");
        assert_eq!(outcome.lost, 0, "{store}: {outcome:?}");
        if store.starts_with("postgres") {
            // The handler's work and its record commit together, or neither does.
            assert_eq!(outcome.duplicate_orders, 0, "{store}: {outcome:?}");
            assert_eq!(outcome.differing_answers, 0, "{store}: {outcome:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_and_memory_stores_are_measured_under_the_same_crashes() {
    for store in ["redis", "memory"] {
        let outcome = crash_run(store, 60, Duration::from_secs(40)).await;
        eprintln!("{store}: {outcome:?}");
        // What they guarantee still holds: every operation completes and leaves an order.
        assert_eq!(outcome.lost, 0, "{store}: {outcome:?}");
        assert!(outcome.operations > 0);
    }
}

/// Runs clients against a server on `store` that is killed `kills` times (or until
/// `limit`), then counts what each operation left.
async fn crash_run(store: &'static str, kills: usize, limit: Duration) -> Outcome {
    fault_run(store, Fault::Kills(kills), limit).await
}

async fn fault_run(store: &'static str, fault: Fault, limit: Duration) -> Outcome {
    let schema = Schema::new().await;
    let orders = format!("\"{}\".orders", schema.name);
    sqlx::query(&format!(
        "CREATE TABLE {orders} (id bigserial PRIMARY KEY, key text NOT NULL, body text NOT NULL)"
    ))
    .execute(&schema.pool)
    .await
    .unwrap();
    schema.store().await; // the records table
    let redis = (store == "redis").then(RedisServer::start);
    let mut env = vec![
        ("CRASH_SERVE", store.to_owned()),
        ("CRASH_SCHEMA", schema.name.clone()),
        ("PALISADE_POSTGRES_URL", url()),
    ];
    if let Some(redis) = &redis {
        env.push(("CRASH_REDIS", redis.url()));
    }

    let port = Arc::new(AtomicU16::new(0));
    let mut server = Server::start(&env);
    port.store(server.port, SeqCst);
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let answers: Arc<Mutex<BTreeMap<usize, Vec<Bytes>>>> = Arc::default();
    let disconnects = Arc::new(AtomicUsize::new(0));
    let abandon = (fault == Fault::Disconnects).then_some(disconnects.clone());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (port, stop, next, answers, abandon) = (
                port.clone(),
                stop.clone(),
                next.clone(),
                answers.clone(),
                abandon.clone(),
            );
            tokio::spawn(
                async move { client(&port, &stop, &next, &answers, abandon.as_deref()).await },
            )
        })
        .collect();

    // The killer: a random moment in the next 20–120 ms, then SIGKILL, then a new server.
    let started = Instant::now();
    let mut rng = Rng::seeded();
    let mut killed = 0;
    let kills = match fault {
        Fault::Kills(kills) => kills,
        Fault::Disconnects => {
            tokio::time::sleep(limit).await;
            0
        }
    };
    while killed < kills && started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(20 + rng.below(100))).await;
        server.kill();
        killed += 1;
        server = Server::start(&env);
        port.store(server.port, SeqCst);
    }
    stop.store(true, SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    drop(server);

    let rows: Vec<(String, i64)> =
        sqlx::query_as(&format!("SELECT key, count(*) FROM {orders} GROUP BY key"))
            .fetch_all(&schema.pool)
            .await
            .unwrap();
    let rows: BTreeMap<String, i64> = rows.into_iter().collect();
    let answers = std::mem::take(&mut *answers.lock().unwrap());
    let mut outcome = Outcome {
        kills: killed,
        disconnects: disconnects.load(SeqCst),
        operations: answers.len(),
        ..Outcome::default()
    };
    for (op, got) in answers.iter() {
        match rows.get(&format!("op-{op}")) {
            None => outcome.lost += 1,
            Some(&n) => outcome.duplicate_orders += usize::try_from(n - 1).unwrap_or(0),
        }
        if got.iter().any(|answer| answer != &got[0]) {
            outcome.differing_answers += 1;
        }
    }
    drop(redis);
    schema.drop().await;
    outcome
}

/// One client: takes the next operation, sends it until it succeeds (retrying refusals,
/// connection errors and a server that is not there), keeps every success's answer; more
/// operations until told to stop. With `abandon`, each operation's first attempt is
/// dropped after a random part of the handler's run (its connection closes), and counted.
async fn client(
    port: &AtomicU16,
    stop: &AtomicBool,
    next: &AtomicUsize,
    answers: &Mutex<BTreeMap<usize, Vec<Bytes>>>,
    abandon: Option<&AtomicUsize>,
) {
    let mut rng = Rng::seeded();
    let http = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http::<Full<Bytes>>();
    while !stop.load(SeqCst) {
        let op = next.fetch_add(1, SeqCst);
        let mut first = true;
        loop {
            let request =
                http::Request::post(format!("http://127.0.0.1:{}/orders", port.load(SeqCst)))
                    .header("idempotency-key", format!("\"op-{op}\""))
                    .body(Full::new(Bytes::from(format!("item {op}"))))
                    .unwrap();
            // The handler pauses twice, up to 3 ms each, around its insert.
            let patience = match abandon {
                Some(_) if first => Duration::from_micros(rng.below(7000)),
                _ => Duration::from_secs(5),
            };
            let sent = tokio::time::timeout(patience, http.request(request)).await;
            if std::mem::take(&mut first)
                && sent.is_err()
                && let Some(abandoned) = abandon
            {
                abandoned.fetch_add(1, SeqCst);
            }
            let created = match sent {
                Ok(Ok(response)) if response.status() == StatusCode::CREATED => {
                    response.into_body().collect().await.ok()
                }
                _ => None,
            };
            let Some(body) = created else {
                // In flight (409), refused (503), killed mid-way: try again shortly.
                tokio::time::sleep(Duration::from_millis(25)).await;
                continue;
            };
            let mut answers = answers.lock().unwrap();
            let got = answers.entry(op).or_default();
            got.push(body.to_bytes());
            // A second look at a quarter of them: the replay must be the same bytes.
            if !op.is_multiple_of(4) || got.len() > 1 {
                break;
            }
        }
    }
}

/// The server process: this test binary, serving with the store `CRASH_SERVE` names.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(env: &[(&str, String)]) -> Server {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "serve",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = loop {
            let line = lines.next().expect("the server prints its port").unwrap();
            // libtest may have begun the line (`test serve ... `) before the server speaks.
            if let Some((_, port)) = line.split_once("listening on ") {
                break port.trim().parse().unwrap();
            }
        };
        Server { child, port }
    }

    fn kill(&mut self) {
        // SIGKILL: no destructor, no rollback sent, no flush — the process is gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The server, when this binary is run as one (`CRASH_SERVE` set; ignored otherwise). Its
/// handler sleeps a random moment before and after its write, so that kills land in
/// every stretch of a request's life.
#[test]
#[ignore = "the crash tests run it as their server process"]
fn serve() {
    let Ok(store) = std::env::var("CRASH_SERVE") else {
        return;
    };
    let schema = std::env::var("CRASH_SCHEMA").unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let pool = PgPoolOptions::new().max_connections(8).connect(&url()).await.unwrap();
        let orders = format!("\"{schema}\".orders");
        let config = IdempotencyConfig::builder("crash", Scope::global())
            .lease(LEASE)
            .build()
            .unwrap();
        let app = match store.as_str() {
            name @ ("postgres" | "postgres-at-commit") => {
                let store = PostgresStore::new(pool.clone())
                    .table(Some(&schema), "records")
                    .unwrap();
                let store = if name == "postgres-at-commit" {
                    store.claim_at_commit()
                } else {
                    store
                };
                let insert = format!("INSERT INTO {orders} (key, body) VALUES ($1, $2) RETURNING id");
                let handler = move |headers: HeaderMap, mut tx: KeyedTransaction, body: String| async move {
                    pause().await;
                    let id: i64 = sqlx::query_scalar(&insert)
                        .bind(key_of(&headers))
                        .bind(&body)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
                    pause().await;
                    Ok::<_, StatusCode>((StatusCode::CREATED, format!("order {id}: {body}")))
                };
                Router::new()
                    .route("/orders", post(handler))
                    .layer(IdempotencyLayer::with_config(store, config))
            }
            other => {
                let store: Arc<dyn Store> = match other {
                    "redis" => {
                        let url = std::env::var("CRASH_REDIS").unwrap();
                        Arc::new(RedisStore::connect(&url).await.unwrap().prefix(schema.clone()))
                    }
                    _ => Arc::new(MemoryStore::new()),
                };
                let insert = format!("INSERT INTO {orders} (key, body) VALUES ($1, $2) RETURNING id");
                let handler = move |headers: HeaderMap, body: String| {
                    let (pool, insert) = (pool.clone(), insert.clone());
                    async move {
                        pause().await;
                        // The handler's own commit, as such a handler has it.
                        let id: i64 = sqlx::query_scalar(&insert)
                            .bind(key_of(&headers))
                            .bind(&body)
                            .fetch_one(&pool)
                            .await
                            .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
                        pause().await;
                        Ok::<_, StatusCode>((StatusCode::CREATED, format!("order {id}: {body}")))
                    }
                };
                Router::new()
                    .route("/orders", post(handler))
                    .layer(IdempotencyLayer::with_shared_store(store, config))
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        // The parent reads the port from this line.
        #[allow(clippy::print_stdout)]
        {
            println!("listening on {}", listener.local_addr().unwrap().port());
        }
        axum::serve(listener, app).await.unwrap();
    });
}

/// The operation's key, as the client sent it (`"op-7"` → `op-7`).
fn key_of(headers: &HeaderMap) -> String {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim_matches('"')
        .to_owned()
}

/// A random pause of up to 3 ms.
async fn pause() {
    let micros = Rng::seeded().below(3000);
    tokio::time::sleep(Duration::from_micros(micros)).await;
}

/// xorshift64*, seeded from the clock: enough to spread kills and pauses.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        Rng(u64::from(nanos) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}
