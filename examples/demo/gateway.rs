//! The gateway: a real axum server with palisade's server stack, whose handlers call the
//! fleet through palisade's client stack.
//!
//! ```text
//! client ─▶ deadline ─▶ rate limit ─▶ shed ─▶ idempotency ─▶ POST /orders ─▶ breaker ─▶ retry (keys) ─▶ deadline ─▶ balance ─▶ fleet
//!           (server stack)                                   GET /stock   ─▶ retry (hedging) ─────────▶ deadline ─┘
//! ```
//!
//! The deadline the client sends (`x-request-timeout-ms`) bounds the handler, and what is
//! left of it goes with each call to the fleet, whose backends enforce it in turn.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use metrics_exporter_prometheus::PrometheusHandle;
use palisade::balance::health::HttpProbe;
use palisade::balance::http::HttpEndpoint;
use palisade::client::BoxClient;
use palisade::idempotency::store::Store;
use palisade::idempotency::store::postgres::KeyedTransaction;
use palisade::prelude::*;
use palisade::ratelimit::fleet::{Fleet, FleetRateLimitLayer, OnStoreError};
use palisade::retry::http::ReplayBody;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tower::buffer::Buffer;
use tower::util::Either;
use tower::{ServiceBuilder, ServiceExt};

use crate::members::Members;

#[derive(Clone)]
struct Gateway {
    /// The client stack for orders, boxed into one type that axum's state can hold.
    fleet: BoxClient,
    /// The client stack for reads, which hedges.
    reads: BoxClient,
    orders: Arc<Mutex<VecDeque<Value>>>,
    /// How many orders to keep: the most recent ones (a soak would otherwise measure the
    /// orders piling up rather than palisade's memory).
    keep_orders: usize,
    /// With `--postgres`: the database the orders are kept in, each inserted in its
    /// request's keyed transaction (committed with the idempotency record).
    db: Option<PgPool>,
    metrics: PrometheusHandle,
}

/// The table the gateway keeps its orders in, with `--postgres`.
pub(crate) const ORDERS_TABLE: &str = "CREATE TABLE IF NOT EXISTS palisade_demo_orders (
    seq bigserial PRIMARY KEY, id text NOT NULL, body text NOT NULL)";

/// The client stacks over the fleet's members, as `config` sets them: one for orders,
/// one for reads, over one balancer.
fn client_stacks(members: &Members, config: &crate::config::Client) -> (BoxClient, BoxClient) {
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    // The members as they join and leave (in this process, or in etcd), each probed at its
    // `/healthz` on the configuration's timer, and ramped up as it joins.
    let discovery = members.discovery(move |addr| HttpEndpoint::new(client.clone(), addr));
    let balance =
        Balance::with_classifier(discovery, config.balance.clone(), HttpClassifier::default())
            .probe(HttpProbe::get("/healthz"));
    // The balancer is one shared state; a buffer lets every handler reach it.
    let balance = Buffer::new(balance, 1024);
    let orders = ServiceBuilder::new()
        // Outermost, the breaker judges each request after its retries: one replica that
        // fails fast cannot open it while the balancer routes the retries to a healthy one.
        .http_circuit_breaker(config.breaker.clone())
        .http_retry(config.retry.clone())
        // Below the retry: each attempt goes with what is left of the deadline when it goes.
        .propagate_deadline(config.deadline.clone())
        .service(balance.clone());
    let reads = ServiceBuilder::new()
        .http_retry(config.reads.clone())
        .propagate_deadline(config.deadline.clone())
        .service(balance);
    (BoxClient::new(orders), BoxClient::new(reads))
}

/// Each client's quota: kept in this process, or — with a store (Redis) — one quota for
/// every gateway that shares it: leases of 10 requests, and if the store fails, this
/// gateway keeps the whole quota on its own (it is the only one here).
fn rate_limit(
    config: &RateLimitConfig,
    store: Option<Arc<dyn palisade::ratelimit::store::Store>>,
) -> Either<HttpRateLimitLayer, FleetRateLimitLayer> {
    match store {
        None => Either::Left(HttpRateLimitLayer::with_config(config.clone())),
        Some(store) => {
            let fleet = Fleet::batched(10).on_store_error(OnStoreError::Local { share: 1.0 });
            let layer = FleetRateLimitLayer::new(config.clone(), fleet, store)
                .expect("the demo's fleet settings are valid");
            Either::Right(layer)
        }
    }
}

/// Starts the gateway on `port` (0: any free port), in front of `members`, with the layers
/// `stack` configures,
/// idempotency records in `store`, rate limits fleet-wide in `limits` if given, keeping the
/// last `keep_orders` orders — in `db` if given (the idempotency store is then that
/// database's `PostgresStore`).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn start(
    members: &Members,
    stack: &crate::config::Stack,
    store: Arc<dyn Store>,
    limits: Option<Arc<dyn palisade::ratelimit::store::Store>>,
    db: Option<PgPool>,
    metrics: PrometheusHandle,
    port: u16,
    keep_orders: usize,
) -> std::io::Result<SocketAddr> {
    let create = if db.is_some() {
        post(create_order_in_postgres)
    } else {
        post(create_order)
    };
    let (orders, reads) = client_stacks(members, &stack.client);
    let gateway = Gateway {
        fleet: orders,
        reads,
        orders: Arc::default(),
        keep_orders,
        db,
        metrics,
    };
    // The scrape and the liveness probe stay outside the shedder: they must answer exactly
    // when it sheds.
    let ops = Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(gateway.clone());
    let app = Router::new()
        .route("/orders", get(list_orders).merge(create))
        .route("/orders/{id}", get(one_order))
        .route("/stock/{item}", get(stock))
        .with_state(gateway)
        .layer(
            ServiceBuilder::new()
                // First: the deadline counts from arrival, time queued in the shedder too.
                .enforce_deadline(stack.server.deadline.clone())
                // Then each client's quota: a greedy client is refused before it costs work.
                .layer(rate_limit(&stack.server.ratelimit, limits))
                .layer(HttpShedLayer::with_config(stack.server.shed.clone()))
                .layer(IdempotencyLayer::with_shared_store(
                    store,
                    stack.server.idempotency.clone(),
                )),
        )
        .merge(ops);
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("the gateway stopped: {error}");
        }
    });
    Ok(addr)
}

/// Asks the fleet to create `order`: the order it created, or the answer to give.
async fn order_from_fleet(gateway: &Gateway, order: &Value) -> Result<Value, Response> {
    let request = http::Request::post("http://fleet/orders")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(order.to_string())))
        .expect("a valid request");
    match gateway.fleet.clone().oneshot(request).await {
        Ok(response) if response.status() == StatusCode::CREATED => {
            let body = response.into_body().collect().await.map(|b| b.to_bytes());
            body.ok()
                .and_then(|body| serde_json::from_slice::<Value>(&body).ok())
                .ok_or_else(|| problem(StatusCode::BAD_GATEWAY, "the fleet answered with no order"))
        }
        Ok(response) => Err(problem(
            StatusCode::BAD_GATEWAY,
            &format!("the fleet answered {}", response.status()),
        )),
        Err(error) => Err(problem(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("the fleet is unavailable: {error}"),
        )),
    }
}

async fn create_order(State(gateway): State<Gateway>, Json(order): Json<Value>) -> Response {
    let created = match order_from_fleet(&gateway, &order).await {
        Ok(created) => created,
        Err(answer) => return answer,
    };
    let mut orders = gateway
        .orders
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if orders.len() == gateway.keep_orders {
        orders.pop_front();
    }
    orders.push_back(created.clone());
    drop(orders);
    (StatusCode::CREATED, Json(created)).into_response()
}

/// With `--postgres`: the order kept in the request's keyed transaction, which the
/// idempotency layer commits with the record of this answer — a gateway killed before
/// the commit keeps nothing, one killed after it replays.
async fn create_order_in_postgres(
    State(gateway): State<Gateway>,
    mut tx: KeyedTransaction,
    Json(order): Json<Value>,
) -> Response {
    let created = match order_from_fleet(&gateway, &order).await {
        Ok(created) => created,
        Err(answer) => return answer,
    };
    let kept = sqlx::query("INSERT INTO palisade_demo_orders (id, body) VALUES ($1, $2)")
        .bind(created["id"].as_str().unwrap_or_default())
        .bind(created.to_string())
        .execute(&mut *tx)
        .await;
    match kept {
        Ok(_) => (StatusCode::CREATED, Json(created)).into_response(),
        // Not stored: the layer rolls back and releases the key, and the client retries.
        Err(error) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("the order could not be kept: {error}"),
        ),
    }
}

async fn list_orders(State(gateway): State<Gateway>) -> Response {
    if let Some(db) = &gateway.db {
        let rows: Result<Vec<String>, _> =
            sqlx::query_scalar("SELECT body FROM palisade_demo_orders ORDER BY seq")
                .fetch_all(db)
                .await;
        return match rows {
            Ok(rows) => {
                let orders: Vec<Value> = rows
                    .iter()
                    .filter_map(|row| serde_json::from_str(row).ok())
                    .collect();
                Json(orders).into_response()
            }
            Err(error) => problem(StatusCode::SERVICE_UNAVAILABLE, &error.to_string()),
        };
    }
    let orders: Vec<Value> = gateway
        .orders
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .cloned()
        .collect();
    Json(orders).into_response()
}

async fn one_order(State(gateway): State<Gateway>, Path(id): Path<String>) -> Response {
    let found = match &gateway.db {
        Some(db) => {
            let row: Result<Option<String>, _> =
                sqlx::query_scalar("SELECT body FROM palisade_demo_orders WHERE id = $1")
                    .bind(&id)
                    .fetch_optional(db)
                    .await;
            match row {
                Ok(row) => row.and_then(|row| serde_json::from_str::<Value>(&row).ok()),
                Err(error) => return problem(StatusCode::SERVICE_UNAVAILABLE, &error.to_string()),
            }
        }
        None => gateway
            .orders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|o| o["id"] == id.as_str())
            .cloned(),
    };
    match found {
        Some(order) => Json(order).into_response(),
        None => problem(StatusCode::NOT_FOUND, "no such order"),
    }
}

/// A read: the item's stock, from whichever backend answers first.
async fn stock(State(gateway): State<Gateway>, Path(item): Path<String>) -> Response {
    // The item came decoded from the path: one that does not make a URI again (a space, a
    // control character) is the caller's mistake, not a panic.
    let Ok(request) =
        http::Request::get(format!("http://fleet/stock/{item}")).body(Full::new(Bytes::new()))
    else {
        return problem(
            StatusCode::BAD_REQUEST,
            "the item is not a valid path segment",
        );
    };
    match gateway.reads.clone().oneshot(request).await {
        Ok(response) if response.status() == StatusCode::OK => {
            let body = response.into_body().collect().await.map(|b| b.to_bytes());
            match body
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            {
                Some(stock) => Json(stock).into_response(),
                None => problem(StatusCode::BAD_GATEWAY, "the fleet answered with no stock"),
            }
        }
        Ok(response) => problem(
            StatusCode::BAD_GATEWAY,
            &format!("the fleet answered {}", response.status()),
        ),
        Err(error)
            if error.is::<palisade::deadline::DeadlineExceeded>()
                || error.is::<palisade::retry::DeadlineExceeded>() =>
        {
            problem(
                StatusCode::GATEWAY_TIMEOUT,
                "the request's deadline passed before the fleet answered",
            )
        }
        Err(error) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("the fleet is unavailable: {error}"),
        ),
    }
}

async fn render_metrics(State(gateway): State<Gateway>) -> String {
    gateway.metrics.render()
}

fn problem(status: StatusCode, detail: &str) -> Response {
    let body = json!({ "type": "about:blank", "status": status.as_u16(), "title": status.canonical_reason(), "detail": detail });
    (
        status,
        [(http::header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}
