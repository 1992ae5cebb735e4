//! An axum server with palisade's server stack: load shedding and idempotency keys for the
//! whole app, a circuit breaker in front of a fragile route, and Prometheus metrics.
//!
//! ```text
//! cargo run --example axum_server              # serves on 127.0.0.1:3000
//! curl -X POST localhost:3000/orders -H 'idempotency-key: "o-1"' -d '{"qty":1}'
//! curl localhost:3000/metrics
//! ```
#![allow(clippy::print_stdout)]

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use palisade::prelude::*;
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
        // Outermost first: shed before doing any work, then idempotency — its keys scoped
        // by the caller (`Scope::from_fn`); with no auth in this example, one global scope.
        .layer(
            ServiceBuilder::new()
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
    axum::serve(listener, app(metrics)).await?;
    Ok(())
}
