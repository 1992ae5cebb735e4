//! The `POST-postgres` workload's database: a schema of its own for the run, an `orders`
//! table the handlers insert into, and the handlers themselves.
//!
//! The bare and tower servers' handler inserts the order in a transaction of its own and
//! commits it: what a handler without palisade does. palisade's does the same insert in
//! the request's keyed transaction and lets the layer commit it with the idempotency record
//! (`PostgresStore`): exactly-once effects for one more statement in the same commit.

use axum::extract::State;
use axum::http::StatusCode;
use palisade_idempotency::store::postgres::{KeyedTransaction, PostgresStore};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The database's URL: `E2E_POSTGRES_URL`, or the local server's `test` database.
pub(crate) fn url() -> String {
    std::env::var("E2E_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The schema made for this run, dropped when dropped.
pub(crate) struct Database {
    runtime: tokio::runtime::Runtime,
    admin: PgPool,
    pub(crate) schema: String,
}

impl Database {
    /// Makes the run's schema, its `orders` table and the idempotency records' table.
    pub(crate) fn create() -> Result<Database, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let schema = format!("e2e_{}", std::process::id());
        let admin = runtime.block_on(async {
            let admin = PgPoolOptions::new()
                .max_connections(2)
                .connect(&url())
                .await
                .map_err(|e| format!("PostgreSQL at {} (set E2E_POSTGRES_URL): {e}", url()))?;
            for statement in [
                format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"),
                format!("CREATE SCHEMA \"{schema}\""),
                format!(
                    "CREATE TABLE \"{schema}\".orders (id bigserial PRIMARY KEY, body text NOT NULL)"
                ),
            ] {
                sqlx::query(&statement)
                    .execute(&admin)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            store(&pool(&schema)?, &schema)?
                .ensure_schema()
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(admin)
        })?;
        Ok(Database {
            runtime,
            admin,
            schema,
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let drop_schema = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.schema);
        let _ = self
            .runtime
            .block_on(sqlx::query(&drop_schema).execute(&self.admin));
    }
}

/// A server's pool (made lazily: the server's app is built before its runtime runs), with
/// `schema` first in its search path.
pub(crate) fn pool(schema: &str) -> Result<PgPool, String> {
    let options: PgConnectOptions = url().parse().map_err(|e| format!("{e}"))?;
    Ok(PgPoolOptions::new()
        .max_connections(16)
        .connect_lazy_with(options.options([("search_path", schema)])))
}

/// The idempotency store of palisade's server, in `schema`: claiming at commit unless
/// `E2E_POSTGRES_CLAIM` is `before`.
pub(crate) fn store(pool: &PgPool, schema: &str) -> Result<PostgresStore, String> {
    let store = PostgresStore::new(pool.clone())
        .table(Some(schema), "records")
        .map_err(|e| e.to_string())?;
    Ok(match std::env::var("E2E_POSTGRES_CLAIM").as_deref() {
        Ok("before") => store,
        _ => store.claim_at_commit(),
    })
}

/// The order, in a transaction of the handler's own.
pub(crate) async fn own_transaction(
    State(pool): State<PgPool>,
    body: String,
) -> Result<(StatusCode, String), StatusCode> {
    let unavailable = |_| StatusCode::SERVICE_UNAVAILABLE;
    let mut tx = pool.begin().await.map_err(unavailable)?;
    let id: i64 = sqlx::query_scalar("INSERT INTO orders (body) VALUES ($1) RETURNING id")
        .bind(&body)
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
    tx.commit().await.map_err(unavailable)?;
    Ok((StatusCode::CREATED, format!("order {id}")))
}

/// The order, in the request's keyed transaction, which the layer commits.
pub(crate) async fn keyed_transaction(
    mut tx: KeyedTransaction,
    body: String,
) -> Result<(StatusCode, String), StatusCode> {
    let id: i64 = sqlx::query_scalar("INSERT INTO orders (body) VALUES ($1) RETURNING id")
        .bind(&body)
        .fetch_one(&mut *tx)
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    Ok((StatusCode::CREATED, format!("order {id}")))
}
