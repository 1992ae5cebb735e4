//! The Postgres store: records in a table of the application's own database, and the
//! handler's writes committed in one transaction with the record of its response.
//!
//! The other stores make a keyed request run once; they cannot make its *effects* happen
//! once. A handler that commits its order and then does not finish — the process is killed,
//! the store fails before the response is recorded — leaves a claim that runs out, and the
//! retry creates the order again. [`PostgresStore`] closes that gap for a handler that
//! writes to the same database: it takes a [`KeyedTransaction`] (an axum extractor with
//! the feature `axum`, or [`KeyedTransaction::from_extensions`]), does its writes in it,
//! and returns its response; the layer then writes the completed record *in that
//! transaction* and commits. The business rows and the record are durable together or not
//! at all:
//!
//! | the process dies… | what the retry finds | what it does |
//! |---|---|---|
//! | before the commit | nothing committed; the claim runs out with its lease | runs the handler, once |
//! | after the commit, before the response is sent | the completed record | replays the response, byte for byte |
//!
//! A response that is not to be stored (a `5xx`, by the default policy) rolls the
//! transaction back and releases the key, so that the retry runs again; a claim lost while
//! the handler ran (its lease ran out and another request took the key) rolls it back too —
//! the record's owner check is part of the commit. A handler that takes no transaction
//! keeps the middleware's usual semantics (the record is completed on its own).
//!
//! # Example
//!
//! ```no_run
//! use axum::{Router, routing::post, http::StatusCode};
//! use palisade_idempotency::store::postgres::{KeyedTransaction, PostgresStore};
//! use palisade_idempotency::{IdempotencyLayer, Scope};
//!
//! async fn create_order(
//!     mut tx: KeyedTransaction,
//!     body: String,
//! ) -> Result<(StatusCode, String), StatusCode> {
//!     let id: i64 = sqlx::query_scalar("INSERT INTO orders (body) VALUES ($1) RETURNING id")
//!         .bind(&body)
//!         .fetch_one(&mut *tx)
//!         .await
//!         // A 503 is not stored: the insert is rolled back, and a retry runs again.
//!         .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
//!     // No commit here: the layer commits this insert together with the response below.
//!     Ok((StatusCode::CREATED, format!("order {id}")))
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PostgresStore::connect("postgres://app@10.0.0.7/shop").await?;
//! store.ensure_schema().await?;
//! let app: Router = Router::new()
//!     .route("/orders", post(create_order))
//!     .layer(IdempotencyLayer::new("orders", store, Scope::global()));
//! # Ok(()) }
//! ```
//!
//! # The table
//!
//! One row per record, `palisade_idempotency` by default ([`PostgresStore::table`] names
//! another, in a schema of its own if you like), made by [`PostgresStore::ensure_schema`]
//! or by your migrations:
//!
//! | column | type | holds |
//! |---|---|---|
//! | `key` | `bytea` primary key | the record's key: SHA-256 of scope and client key (the raw key is never stored) |
//! | `state` | `smallint` | 0 in flight, 1 completed |
//! | `owner` | `bytea` | the claim's owner token, while in flight (the fencing) |
//! | `fingerprint` | `bytea` | the request's fingerprint |
//! | `response` | `bytea` | the encoded response, once completed |
//! | `expires_at` | `timestamptz` (indexed) | the lease's end, or the record's time to live |
//!
//! A claim is one statement (a second only to take over an expired record); a replay or a
//! duplicate in flight only reads, so it writes nothing and waits for no disk.
//!
//! Times are the database's clock. Expired rows count as absent at once and are deleted by
//! [`PostgresStore::cleanup`], in bounded batches — call it from a periodic task.

mod sql;
mod transaction;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use palisade_core::ConfigError;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{PgConnection, Row};

use self::sql::{DONE, IN_FLIGHT, Statements, identifier};
use self::transaction::Lent;
pub use self::transaction::{KeyedTransaction, TransactionError};
use super::{Attachment, Claim, Record, Store, StoreError, StoreFuture};
use crate::record::{Fingerprint, Owner, RecordKey, StoredResponse};

/// The default table.
const DEFAULT_TABLE: &str = "palisade_idempotency";

/// How many times a claim asks again when a concurrent claim committed between its two
/// halves (see the claim statement); more than one retry means a storm of claims for one
/// key, which the caller is told about as an error.
const CLAIM_ATTEMPTS: usize = 5;

/// Idempotency records in a PostgreSQL table, and the handler's own transaction: see [the
/// module](self).
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    statements: Arc<Statements>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("pool_size", &self.pool.size())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// A store over `pool`, in the table `palisade_idempotency` of the connection's search
    /// path. Give the pool a short `acquire_timeout`: while the database is unreachable,
    /// keyed requests are refused (fail-closed) as fast as it lets them.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            statements: Arc::new(Statements::new(None, DEFAULT_TABLE)),
        }
    }

    /// A store over a new pool to `url` (`postgres://user@host/database`), of up to 16
    /// connections, each acquired within 1 s or the operation fails.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(1))
            .connect(url)
            .await
            .map_err(StoreError::new)?;
        Ok(Self::new(pool))
    }

    /// The same store, with its records in `table` of `schema` (the search path's if
    /// `None`). Names are plain identifiers (letters, digits, `_`), else a [`ConfigError`].
    pub fn table(self, schema: Option<&str>, table: &str) -> Result<Self, ConfigError> {
        if let Some(schema) = schema.filter(|s| !identifier(s)) {
            return Err(ConfigError::new(
                "schema",
                format!("`{schema}` is not a plain identifier (letters, digits, `_`)"),
            ));
        }
        if !identifier(table) {
            return Err(ConfigError::new(
                "table",
                format!("`{table}` is not a plain identifier (letters, digits, `_`)"),
            ));
        }
        Ok(Self {
            pool: self.pool,
            statements: Arc::new(Statements::new(schema, table)),
        })
    }

    /// The pool: the application's handlers may share it.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates the schema (if one was named), the table and its index, if they are not
    /// there. Safe to call from every instance at start-up.
    pub async fn ensure_schema(&self) -> Result<(), StoreError> {
        let s = &self.statements;
        let mut conn = self.pool.acquire().await.map_err(StoreError::new)?;
        // Concurrent `IF NOT EXISTS` can still collide in the catalog; one lock makes the
        // instances take turns.
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(StoreError::new)?;
        sqlx::query("SELECT pg_advisory_xact_lock(7203716411)")
            .execute(&mut *tx)
            .await
            .map_err(StoreError::new)?;
        for statement in s
            .create_schema
            .iter()
            .chain([&s.create_table, &s.create_index])
        {
            sqlx::query(statement)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::new)?;
        }
        tx.commit().await.map_err(StoreError::new)
    }

    /// Deletes up to `batch` expired records; returns how many it deleted. Call it again
    /// while it returns `batch`, or from a periodic task.
    pub async fn cleanup(&self, batch: u32) -> Result<u64, StoreError> {
        let done = sqlx::query(&self.statements.cleanup)
            .bind(i64::from(batch))
            .execute(&self.pool)
            .await
            .map_err(StoreError::new)?;
        Ok(done.rows_affected())
    }

    /// Completes `key` for `owner` on `conn` (the pool, or the handler's transaction).
    pub(crate) async fn complete_on(
        &self,
        conn: &mut PgConnection,
        key: &RecordKey,
        owner: Owner,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(&self.statements.complete)
            .bind(&key.as_bytes()[..])
            .bind(owner.0.to_be_bytes().to_vec())
            .bind(response.encode().to_vec())
            .bind(ttl.as_secs_f64())
            .execute(conn)
            .await
            .map_err(StoreError::new)?;
        Ok(done.rows_affected() == 1)
    }

    async fn claim_once(
        &self,
        key: &RecordKey,
        fingerprint: Fingerprint,
        owner: Owner,
        lease: Duration,
    ) -> Result<Option<Claim>, StoreError> {
        let row = sqlx::query(&self.statements.claim)
            .bind(&key.as_bytes()[..])
            .bind(owner.0.to_be_bytes().to_vec())
            .bind(&fingerprint.0[..])
            .bind(lease.as_secs_f64())
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::new)?;
        let Some(row) = row else {
            return Ok(None);
        };
        if row.try_get::<bool, _>(0).map_err(StoreError::new)? {
            return Ok(Some(Claim::Claimed));
        }
        if row.try_get::<bool, _>(4).map_err(StoreError::new)? {
            return record_of(&row, 1).map(|record| Some(Claim::Existing(record)));
        }
        // Expired: gone for everyone; this claim takes its place, if no other did first.
        let taken = sqlx::query(&self.statements.take_over)
            .bind(&key.as_bytes()[..])
            .bind(owner.0.to_be_bytes().to_vec())
            .bind(&fingerprint.0[..])
            .bind(lease.as_secs_f64())
            .execute(&self.pool)
            .await
            .map_err(StoreError::new)?;
        Ok((taken.rows_affected() == 1).then_some(Claim::Claimed))
    }

    async fn write(
        &self,
        statement: &str,
        key: &RecordKey,
        owner: Owner,
        lease: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let mut query = sqlx::query(statement)
            .bind(&key.as_bytes()[..])
            .bind(owner.0.to_be_bytes().to_vec());
        if let Some(lease) = lease {
            query = query.bind(lease.as_secs_f64());
        }
        let done = query.execute(&self.pool).await.map_err(StoreError::new)?;
        Ok(done.rows_affected() == 1)
    }
}

/// The record in `row`'s columns `state, fingerprint, response`, from column `first` on.
fn record_of(row: &sqlx::postgres::PgRow, first: usize) -> Result<Record, StoreError> {
    let state: i16 = row.try_get(first).map_err(StoreError::new)?;
    let fingerprint: Vec<u8> = row.try_get(first + 1).map_err(StoreError::new)?;
    let fingerprint = Fingerprint(
        fingerprint
            .try_into()
            .map_err(|_| StoreError::new("a record's fingerprint is not 32 bytes"))?,
    );
    match state {
        IN_FLIGHT => Ok(Record::InFlight { fingerprint }),
        DONE => {
            let encoded: Vec<u8> = row.try_get(first + 2).map_err(StoreError::new)?;
            let response = StoredResponse::decode(Bytes::from(encoded))
                .ok_or_else(|| StoreError::new("a record's response does not decode"))?;
            Ok(Record::Completed {
                fingerprint,
                response,
            })
        }
        other => Err(StoreError::new(format!("a record's state is {other}"))),
    }
}

impl Store for PostgresStore {
    fn claim<'a>(
        &'a self,
        key: &'a RecordKey,
        fingerprint: Fingerprint,
        owner: Owner,
        lease: Duration,
    ) -> StoreFuture<'a, Claim> {
        Box::pin(async move {
            for _ in 0..CLAIM_ATTEMPTS {
                if let Some(claim) = self.claim_once(key, fingerprint, owner, lease).await? {
                    return Ok(claim);
                }
            }
            Err(StoreError::new(
                "the record changed under every claim: too many concurrent claims for one key",
            ))
        })
    }

    fn complete<'a>(
        &'a self,
        key: &'a RecordKey,
        owner: Owner,
        response: &'a StoredResponse,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut conn = self.pool.acquire().await.map_err(StoreError::new)?;
            self.complete_on(&mut conn, key, owner, response, ttl).await
        })
    }

    fn release<'a>(&'a self, key: &'a RecordKey, owner: Owner) -> StoreFuture<'a, bool> {
        Box::pin(self.write(&self.statements.release, key, owner, None))
    }

    fn extend<'a>(
        &'a self,
        key: &'a RecordKey,
        owner: Owner,
        lease: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(self.write(&self.statements.extend, key, owner, Some(lease)))
    }

    fn lookup<'a>(&'a self, key: &'a RecordKey) -> StoreFuture<'a, Option<Record>> {
        Box::pin(async move {
            let row = sqlx::query(&self.statements.lookup)
                .bind(&key.as_bytes()[..])
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::new)?;
            row.map(|row| record_of(&row, 0)).transpose()
        })
    }

    fn attach(&self, key: &RecordKey, owner: Owner) -> Option<Attachment> {
        Some(Attachment::new(Lent::new(self.clone(), *key, owner)))
    }
}
