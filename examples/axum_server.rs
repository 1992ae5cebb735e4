//! An axum server with palisade's server stack: a rate limit for each client address, load
//! shedding and idempotency keys for the whole app, a circuit breaker in front of a fragile
//! route, and Prometheus metrics.
//!
//! ```text
//! cargo run --example axum_server              # serves on 127.0.0.1:3000
//! curl -X POST localhost:3000/orders -H 'idempotency-key: "o-1"' -d '{"qty":1}'
//! curl localhost:3000/metrics
//! ```
#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use palisade::prelude::*;
use palisade::ratelimit::http::KeySource;
use tower::ServiceBuilder;

/// The app: `POST /orders` (idempotent by key), `GET /report` (fragile, behind a breaker),
/// and, outside the shedder, `GET /metrics` and `GET /healthz`.
pub(crate) fn app(metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/orders", post(create_order))
        // A route whose dependency fails now and then: the breaker answers 503 with
        // Retry-After while it is open, instead of letting requests pile up.
        .route(
            "/report",
            get(report).layer(HttpCircuitBreakerLayer::new("report")),
        )
        // Outermost first: each client's quota (429 + RateLimit fields past it), then shed
        // before doing any work, then idempotency — its keys scoped by the caller
        // (`Scope::from_fn`); with no auth in this example, one global scope.
        .layer(
            ServiceBuilder::new()
                .http_rate_limit(per_client())
                .http_shed("server")
                .layer(IdempotencyLayer::new(
                    "orders",
                    MemoryStore::new(),
                    Scope::global(),
                )),
        )
        // Added after the layers, so outside them: the scrape and the liveness probe must
        // answer exactly when the shedder refuses.
        .route("/metrics", get(move || async move { metrics.render() }))
        .route("/healthz", get(|| async { "ok" }))
}

/// 20 requests a second for each client address, 40 at once. Behind a load balancer, key by
/// `KeySource::client_ip(TrustedProxies::new(["10.0.0.0/8"])?)` instead: the balancer's
/// address is every request's peer.
fn per_client() -> RateLimitConfig {
    RateLimitConfig::builder("server")
        .policy(Policy::new("per-client", Quota::per_second(20).burst(40)).key(KeySource::peer()))
        .build()
        .expect("a valid rate limit")
}

/// Creates an order: here, echoes it back. Runs once per `Idempotency-Key`.
async fn create_order(order: String) -> (StatusCode, String) {
    (StatusCode::CREATED, order)
}

/// A report from a dependency that takes its time.
async fn report() -> &'static str {
    tokio::time::sleep(Duration::from_millis(20)).await;
    "report"
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let metrics = PrometheusBuilder::new().install_recorder()?;
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    // With the peer's address in each request, for the rate limit's key.
    let app = app(metrics).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).await?;
    Ok(())
}
