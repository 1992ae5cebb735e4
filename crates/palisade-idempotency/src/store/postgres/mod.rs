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
//! # Claiming at commit
//!
//! By default a request claims its key before the handler runs: a statement and a commit of
//! its own, so that a duplicate arriving meanwhile waits or is refused and never runs. That
//! costs a round trip and a commit more than the handler's own work.
//! [`PostgresStore::claim_at_commit`] claims nothing up front: the record is created,
//! completed, by the same round trip as the handler's `COMMIT`. A duplicate arriving while
//! the first runs then runs too — but its transaction's record collides with the first's
//! at commit (PostgreSQL makes it wait for the first's outcome), is rolled back, and the
//! duplicate answers with the first's stored response, byte for byte. The *effects* still
//! happen once; the execution may not:
//!
//! | | claims before (default) | claims at commit |
//! |---|---|---|
//! | round trips added to the handler's | 2 (claim; record) | 0 |
//! | commits added | 1 | 0 |
//! | a concurrent duplicate | waits or gets `409`, never runs | runs, rolled back, replays the first's response |
//! | a retry of a finished request | replayed, the handler not run | runs, rolled back, replays |
//! | work outside the transaction (an email, a call) | once | **once per duplicate** |
//! | a crash before the commit | the lease runs out, then a retry runs | a retry runs at once |
//!
//! So claim at commit only on routes whose handlers do *all* their work in the
//! [`KeyedTransaction`]. A keyed request whose handler takes no transaction under this mode
//! has no protection from a concurrent duplicate: its record is written after its work, and
//! if another request's record is there by then, it answers with that one's response (and
//! says so in a warning).
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

/// How long one operation may take by default: far beyond a healthy one (a claim is a
/// millisecond, a commit waits for one WAL flush), well short of TCP's own give-up.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

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
    at_commit: bool,
    timeout: Duration,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("pool_size", &self.pool.size())
            .field("at_commit", &self.at_commit)
            .field("timeout", &self.timeout)
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
            at_commit: false,
            timeout: DEFAULT_TIMEOUT,
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
            statements: Arc::new(Statements::new(schema, table)),
            ..self
        })
    }

    /// The same store, failing each operation that takes longer than `timeout` (2 s by
    /// default) — acquiring a connection included — with a [`StoreError`]: a database that
    /// stalls (a lock held, a partition that drops packets) fails requests fast, as the
    /// layer documents (fail-closed `503`), instead of holding each until TCP gives up. A
    /// commit cut off this way may have happened or not; the layer answers `503`
    /// `idempotency-uncommitted`, and the retry finds out which. A claim cut off may still
    /// take effect once the database moves again, and then holds its key until its lease
    /// runs out, as any claim whose answer was lost does.
    pub fn timeout(self, timeout: Duration) -> Self {
        Self { timeout, ..self }
    }

    /// `operation`, failed once it takes longer than the store's timeout.
    pub(crate) async fn within<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, operation)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::new(format!(
                    "PostgreSQL did not answer within {:?}",
                    self.timeout
                )))
            })
    }

    /// The same store, claiming keys at commit: see [the module](self#claiming-at-commit).
    /// Only for routes whose handlers do *all* their work in the [`KeyedTransaction`].
    pub fn claim_at_commit(self) -> Self {
        Self {
            at_commit: true,
            ..self
        }
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

    /// Creates `key`'s record completed, with `response`, unless a live record is there;
    /// `false` if one is. Claiming at commit, for a handler that took no transaction.
    pub(crate) async fn insert_completed(
        &self,
        key: &RecordKey,
        fingerprint: Fingerprint,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(&self.statements.insert_completed)
            .bind(&key.as_bytes()[..])
            .bind(&fingerprint.0[..])
            .bind(response.encode().to_vec())
            .bind(ttl.as_secs_f64())
            .execute(&self.pool)
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
        Box::pin(self.within(async move {
            if self.at_commit {
                // The claim is the record's INSERT, at commit.
                return Ok(Claim::Claimed);
            }
            for _ in 0..CLAIM_ATTEMPTS {
                if let Some(claim) = self.claim_once(key, fingerprint, owner, lease).await? {
                    return Ok(claim);
                }
            }
            Err(StoreError::new(
                "the record changed under every claim: too many concurrent claims for one key",
            ))
        }))
    }

    fn complete<'a>(
        &'a self,
        key: &'a RecordKey,
        owner: Owner,
        response: &'a StoredResponse,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(self.within(async move {
            let mut conn = self.pool.acquire().await.map_err(StoreError::new)?;
            self.complete_on(&mut conn, key, owner, response, ttl).await
        }))
    }

    fn release<'a>(&'a self, key: &'a RecordKey, owner: Owner) -> StoreFuture<'a, bool> {
        if self.at_commit {
            // Nothing was written before the commit: nothing to release.
            return Box::pin(std::future::ready(Ok(true)));
        }
        Box::pin(self.within(self.write(&self.statements.release, key, owner, None)))
    }

    fn extend<'a>(
        &'a self,
        key: &'a RecordKey,
        owner: Owner,
        lease: Duration,
    ) -> StoreFuture<'a, bool> {
        if self.at_commit {
            // No lease to extend: the open transaction is the claim, and it holds no key.
            return Box::pin(std::future::ready(Ok(true)));
        }
        Box::pin(self.within(self.write(&self.statements.extend, key, owner, Some(lease))))
    }

    fn lookup<'a>(&'a self, key: &'a RecordKey) -> StoreFuture<'a, Option<Record>> {
        Box::pin(self.within(async move {
            let row = sqlx::query(&self.statements.lookup)
                .bind(&key.as_bytes()[..])
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::new)?;
            row.map(|row| record_of(&row, 0)).transpose()
        }))
    }

    fn attach(
        &self,
        key: &RecordKey,
        owner: Owner,
        fingerprint: Fingerprint,
    ) -> Option<Attachment> {
        Some(Attachment::new(Lent::new(
            self.clone(),
            *key,
            owner,
            fingerprint,
        )))
    }

    fn attach_unrecorded(
        &self,
        key: &RecordKey,
        owner: Owner,
        fingerprint: Fingerprint,
    ) -> Option<Attachment> {
        let lent = Lent::new(self.clone(), *key, owner, fingerprint).unrecorded();
        Some(Attachment::new(lent))
    }
}
