//! An axum server that creates orders in PostgreSQL exactly once, whatever its clients'
//! retries and its own crashes: the idempotency records live in the same database, and
//! each order is inserted in the request's keyed transaction, which the layer commits with
//! the record of the response.
//!
//! ```text
//! cargo run --example postgres_server -- postgres://postgres@127.0.0.1/test
//! curl -i -X POST localhost:3000/orders -H 'idempotency-key: "o-1"' -d 'a book'   # 201
//! curl -i -X POST localhost:3000/orders -H 'idempotency-key: "o-1"' -d 'a book'   # the same 201, replayed
//! curl localhost:3000/orders/1
//! ```
#![allow(clippy::print_stdout)]

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use palisade::idempotency::store::postgres::{KeyedTransaction, PostgresStore};
use palisade::prelude::*;
use sqlx::PgPool;

/// The app over `store`, whose pool also holds the orders (`orders` in the search path).
pub(crate) fn app(store: PostgresStore) -> Router {
    let pool = store.pool().clone();
    Router::new()
        .route("/orders", post(create_order))
        .layer(IdempotencyLayer::new("orders", store, Scope::global()))
        // Reads need no key: outside the layer.
        .route("/orders/{id}", get(order))
        .with_state(pool)
}

/// Creates the orders table, and the records' table, if they are not there.
pub(crate) async fn migrate(store: &PostgresStore) -> Result<(), Box<dyn std::error::Error>> {
    store.ensure_schema().await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS orders (id bigserial PRIMARY KEY, item text NOT NULL)")
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Inserts the order in the keyed transaction and says so. No commit: the layer commits the
/// insert with the record of this response, so a retry of the same key replays it and a
/// crash before the commit leaves nothing behind.
async fn create_order(
    mut tx: KeyedTransaction,
    item: String,
) -> Result<(StatusCode, String), StatusCode> {
    let id: i64 = sqlx::query_scalar("INSERT INTO orders (item) VALUES ($1) RETURNING id")
        .bind(&item)
        .fetch_one(&mut *tx)
        .await
        // A 503 is not stored: the insert is rolled back and the key released.
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    Ok((StatusCode::CREATED, format!("order {id}: {item}")))
}

async fn order(State(pool): State<PgPool>, Path(id): Path<i64>) -> Result<String, StatusCode> {
    sqlx::query_scalar::<_, String>("SELECT item FROM orders WHERE id = $1")
        .bind(id)
        .fetch_optional(&pool)
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?
        .ok_or(StatusCode::NOT_FOUND)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
    let store = PostgresStore::connect(&url).await?;
    migrate(&store).await?;
    // Expired records are deleted a batch at a time, every minute.
    let cleaner = store.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            every.tick().await;
            while let Ok(1000) = cleaner.cleanup(1000).await {}
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app(store)).await?;
    Ok(())
}
