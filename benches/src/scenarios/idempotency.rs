//! `idempotency-duplicates`: clients that give up waiting and retry with the same key.
//!
//! 1000 operations ("create this order") start over 10 s. The handler takes 100 ms for 70 %
//! of them and 2.5 s for the rest; a client waits 1 s, then retries with the same
//! `Idempotency-Key` — up to 8 attempts, backing off 0.5 s doubling to 4 s (and at least
//! the server's `Retry-After`). The server keeps running a request after its client gave up
//! (as behind a proxy whose timeout fired), so a slow first attempt is still running when
//! its retries arrive. Each attempt that reaches the handler creates an order.
//!
//! The figure: handler executions per operation — orders created per order asked for.
//! `palisade` is the idempotency layer with the in-memory store; `none` is the same handler
//! with no layer.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use palisade_idempotency::store::MemoryStore;
use palisade_idempotency::{IdempotencyConfig, IdempotencyLayer, RequestBody, Scope};
use serde_json::{Map, json};
use tower::util::BoxCloneService;
use tower::{BoxError, Layer, ServiceExt, service_fn};

use crate::report::Report;

const OPERATIONS: u64 = 1000;
const ARRIVALS_OVER: Duration = Duration::from_secs(10);
const FAST: Duration = Duration::from_millis(100);
const SLOW: Duration = Duration::from_millis(2500);
const SLOW_SHARE: f64 = 0.3;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_ATTEMPTS: u32 = 8;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(4);
const SEED: u64 = 2026;

type Server = BoxCloneService<Request<Full<Bytes>>, Response<()>, BoxError>;

/// The handler: creates an order (counted), then takes its time.
fn handler<B>(
    executions: Arc<AtomicU64>,
) -> impl tower::Service<Request<B>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    service_fn(move |request: Request<B>| {
        executions.fetch_add(1, Relaxed);
        let slow = request.headers().contains_key("x-slow");
        async move {
            tokio::time::sleep(if slow { SLOW } else { FAST }).await;
            Ok(Response::builder()
                .status(StatusCode::CREATED)
                .body(Full::new(Bytes::from_static(b"{\"order\":\"created\"}")))
                .expect("a valid response"))
        }
    })
}

fn server(system: &str, executions: Arc<AtomicU64>) -> Server {
    let handler = handler::<RequestBody<Full<Bytes>>>(executions.clone());
    match system {
        "palisade" => {
            let config = IdempotencyConfig::builder("test", Scope::global())
                .build()
                .expect("a valid configuration");
            let layer = IdempotencyLayer::with_config(MemoryStore::new(), config);
            BoxCloneService::new(
                layer
                    .layer(handler)
                    .map_response(|r| r.map(|_| ()))
                    .map_err(BoxError::from),
            )
        }
        _ => BoxCloneService::new(
            self::handler::<Full<Bytes>>(executions)
                .map_response(|r| r.map(|_| ()))
                .map_err(BoxError::from),
        ),
    }
}

/// One operation's client: attempts until a 201, each on a server task that runs to its
/// end whether or not the client still waits.
async fn operation(server: Server, id: u64, slow: bool) -> bool {
    let mut backoff = FIRST_BACKOFF;
    for _ in 0..MAX_ATTEMPTS {
        let mut request = Request::post("/orders")
            .header("idempotency-key", format!("\"op-{id}\""))
            .body(Full::new(Bytes::from(format!("{{\"op\":{id}}}"))))
            .expect("a valid request");
        if slow {
            request
                .headers_mut()
                .insert("x-slow", http::HeaderValue::from_static("1"));
        }
        let attempt = tokio::spawn(server.clone().oneshot(request));
        let mut wait = backoff;
        if let Ok(Ok(Ok(response))) = tokio::time::timeout(CLIENT_TIMEOUT, attempt).await {
            if response.status() == StatusCode::CREATED {
                return true;
            }
            if let Some(after) = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
            {
                wait = wait.max(Duration::from_secs(after));
            }
        }
        tokio::time::sleep(wait).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    false
}

struct Run {
    system: &'static str,
    executions: u64,
    completed: u64,
}

async fn simulate(system: &'static str) -> Run {
    let executions = Arc::new(AtomicU64::new(0));
    let server = server(system, executions.clone());
    let gap = ARRIVALS_OVER / OPERATIONS as u32;
    let mut clients = Vec::new();
    for id in 0..OPERATIONS {
        let slow = palisade_core::random::uniform(SEED, id) < SLOW_SHARE;
        clients.push(tokio::spawn(operation(server.clone(), id, slow)));
        tokio::time::sleep(gap).await;
    }
    let mut completed = 0;
    for client in clients {
        completed += u64::from(client.await.unwrap_or(false));
    }
    // Let server tasks whose clients gave up finish, so their executions count.
    tokio::time::sleep(SLOW * 2).await;
    Run {
        system,
        executions: executions.load(Relaxed),
        completed,
    }
}

pub(crate) async fn duplicates() -> Report {
    let mut results = Vec::new();
    for system in ["palisade", "none"] {
        let run = simulate(system).await;
        let mut row = Map::new();
        row.insert("system".into(), json!(run.system));
        row.insert("operations".into(), json!(OPERATIONS));
        row.insert("executions".into(), json!(run.executions));
        row.insert(
            "executions_per_operation".into(),
            json!(run.executions as f64 / OPERATIONS as f64),
        );
        row.insert("completed".into(), json!(run.completed));
        results.push(row);
    }
    Report {
        scenario: "idempotency-duplicates",
        results,
        charts: Vec::new(),
    }
}
