//! The handler's transaction: lent to the claimed request, committed by the layer with the
//! record of the response.
//!
//! The layer puts an [`Attachment`] into the request's extensions when its claim succeeds.
//! [`KeyedTransaction`] finds it there, begins a transaction on the store's pool the first
//! time it is asked (a handler that never asks opens none), and hands the handler the
//! connection. The handler returns without committing; the layer then asks [`Lent`] to
//! settle: complete the record in the same transaction and commit, or roll back.

use std::any::Any;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use sqlx::{PgConnection, Postgres, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::PostgresStore;
use crate::record::{Fingerprint, Owner, RecordKey, StoredResponse};
use crate::store::{Attached, Attachment, Settled, Store, StoreError, StoreFuture};

/// Where the handler's transaction waits between the handler and the layer's commit.
type Slot = Arc<Mutex<Option<Transaction<'static, Postgres>>>>;

/// What [`PostgresStore`] lends one claimed request: its store, its claim, and the slot for
/// the transaction the handler may begin.
pub(crate) struct Lent {
    store: PostgresStore,
    key: RecordKey,
    owner: Owner,
    fingerprint: Fingerprint,
    /// Whether the settlement writes the record: not for a request run unprotected (the
    /// store failed, the layer fails open), whose transaction is only committed.
    recorded: bool,
    slot: Slot,
}

impl Lent {
    pub(crate) fn new(
        store: PostgresStore,
        key: RecordKey,
        owner: Owner,
        fingerprint: Fingerprint,
    ) -> Self {
        Self {
            store,
            key,
            owner,
            fingerprint,
            recorded: true,
            slot: Arc::default(),
        }
    }

    /// The same, settled without a record.
    pub(crate) fn unrecorded(self) -> Self {
        Self {
            recorded: false,
            ..self
        }
    }

    /// Claiming at commit: the completed record and the `COMMIT` in one round trip; a live
    /// record of the key (a duplicate committed first) fails the record's `INSERT`, and
    /// nothing the handler did is kept.
    async fn record_at_commit(
        &self,
        tx: Option<Transaction<'static, Postgres>>,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<Settled, StoreError> {
        let Some(mut tx) = tx else {
            // No transaction taken: the record alone, after the handler's work.
            let store = &self.store;
            if store
                .insert_completed(&self.key, self.fingerprint, response, ttl)
                .await?
            {
                return Ok(Settled::Committed);
            }
            tracing::warn!(
                key = ?self.key,
                "a keyed request took no transaction from a store that claims at commit, and \
                 its key was taken meanwhile: its work was done twice"
            );
            return self.existing().await;
        };
        let message = self.store.statements.record_and_commit(
            &self.key,
            &self.fingerprint,
            &response.encode(),
            ttl,
        );
        let sent = send(&mut tx, &message).await;
        // sqlx still counts the transaction open: dropping it queues the `ROLLBACK` that
        // ends the empty one the message opened (or the one a failed `INSERT` aborted); it
        // goes with the check sqlx makes of every connection it takes back.
        drop(tx);
        match sent {
            Ok(_) => Ok(Settled::Committed),
            Err(error) if self.is_taken(&error) => self.existing().await,
            Err(error) => handlers_own(StoreError::new(error)),
        }
    }

    /// Whether `error` is the record's `INSERT` finding the key taken.
    fn is_taken(&self, error: &sqlx::Error) -> bool {
        error.as_database_error().is_some_and(|e| {
            e.code().as_deref() == Some("23505")
                && e.table() == Some(self.store.statements.table.as_str())
        })
    }

    /// The record that took the key first.
    async fn existing(&self) -> Result<Settled, StoreError> {
        match self.store.lookup(&self.key).await? {
            Some(record) => Ok(Settled::Existing(record)),
            // Expired in between: nothing was kept; a retry runs again.
            None => Ok(Settled::Aborted),
        }
    }
}

impl Attached for Lent {
    fn complete<'a>(
        &'a self,
        response: &'a StoredResponse,
        ttl: Duration,
    ) -> StoreFuture<'a, Settled> {
        Box::pin(self.store.within(async move {
            // `try_lock`: a handler that kept its transaction beyond its answer (moved into a
            // task) must not stall the completion; its work is not kept.
            let taken = match self.slot.try_lock() {
                Ok(mut slot) => slot.take(),
                Err(_) => return Ok(Settled::Aborted),
            };
            if !self.recorded {
                let Some(tx) = taken else {
                    return Ok(Settled::NotUsed);
                };
                return match tx.commit().await {
                    Ok(()) => Ok(Settled::Committed),
                    Err(error) => handlers_own(StoreError::new(error)),
                };
            }
            if self.store.at_commit {
                return self.record_at_commit(taken, response, ttl).await;
            }
            let Some(mut tx) = taken else {
                return Ok(Settled::NotUsed);
            };
            // The owner check is part of the commit: a claim lost while the handler ran
            // completes nothing, and the handler's writes go with it.
            let held = self
                .store
                .complete_on(&mut tx, &self.key, self.owner, response, ttl)
                .await;
            let settled = match held {
                Ok(true) => tx.commit().await.map(|()| Settled::Committed),
                Ok(false) => tx.rollback().await.map(|()| Settled::ClaimLost),
                Err(error) => return handlers_own(error),
            };
            settled.or_else(|error| handlers_own(StoreError::new(error)))
        }))
    }

    fn abandon(&self) -> bool {
        // Dropping a sqlx transaction rolls it back (when its connection goes back to the
        // pool). A handler that still holds it (it spawned a task with it) rolls it back
        // when that task drops it: it was begun, so it counts as undone either way.
        match self.slot.try_lock() {
            Ok(mut slot) => slot.take().is_some(),
            Err(_) => true,
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Sends `message`, statements separated by `;`, as one simple-protocol query. (A plain
/// function with one lifetime: in an `async` block sqlx's executor bounds do not resolve.)
fn send<'c>(
    conn: &'c mut PgConnection,
    message: &'c str,
) -> std::pin::Pin<
    Box<dyn Future<Output = Result<sqlx::postgres::PgQueryResult, sqlx::Error>> + Send + 'c>,
> {
    sqlx::Executor::execute(conn, sqlx::raw_sql(message))
}

/// An error in the handler's transaction that the handler caused — it broke a constraint
/// (SQLSTATE class 23, also at a deferred COMMIT), let the transaction abort (25P02), or
/// lost a serialization or deadlock race (40001, 40P01) — is its request's failure, not
/// the store's: nothing is kept, the record is not stored, and the store's breaker is not
/// told. Any other error is the store's.
fn handlers_own(error: StoreError) -> Result<Settled, StoreError> {
    let code = std::error::Error::source(&error)
        .and_then(|e| e.downcast_ref::<sqlx::Error>())
        .and_then(|e| e.as_database_error())
        .and_then(|e| e.code().map(|code| code.into_owned()));
    match code.as_deref() {
        Some(code) if code.starts_with("23") || ["25P02", "40001", "40P01"].contains(&code) => {
            Ok(Settled::Aborted)
        }
        _ => Err(error),
    }
}

/// A database transaction bound to the request's idempotency key: the handler's writes in
/// it are committed by the layer together with the record of the handler's response, or
/// not at all. See [the module](super).
///
/// Use it as `&mut *tx` wherever sqlx takes an executor. Do not commit it, nor send a
/// `COMMIT` through it: the layer commits once the response is known, with the record.
/// Take it once per request, and do not keep it beyond the handler. A write that may fail
/// and be handled (a unique violation answered `409`) goes in a savepoint, or the whole
/// transaction aborts and nothing is kept.
pub struct KeyedTransaction {
    guard: OwnedMutexGuard<Option<Transaction<'static, Postgres>>>,
}

impl fmt::Debug for KeyedTransaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedTransaction").finish_non_exhaustive()
    }
}

/// Why a [`KeyedTransaction`] could not be had.
#[derive(Debug)]
#[non_exhaustive]
pub enum TransactionError {
    /// The request was not claimed by an idempotency layer over a [`PostgresStore`]: the
    /// layer is missing, the request has no key (or its method is not keyed), or the store
    /// is another.
    NotKeyed,
    /// The request's transaction is already taken (by an earlier extractor of the same
    /// request that is still alive).
    AlreadyTaken,
    /// The transaction could not begin.
    Begin(sqlx::Error),
}

impl fmt::Display for TransactionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotKeyed => f.write_str(
                "no keyed transaction: the request was not claimed by an idempotency layer over a PostgresStore",
            ),
            Self::AlreadyTaken => f.write_str("the request's keyed transaction is already taken"),
            Self::Begin(error) => write!(f, "the keyed transaction could not begin: {error}"),
        }
    }
}

impl std::error::Error for TransactionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Begin(error) => Some(error),
            _ => None,
        }
    }
}

impl KeyedTransaction {
    /// The transaction of the request whose extensions these are: begun on the first call,
    /// the same one after (once the earlier [`KeyedTransaction`] is dropped). For hyper and
    /// tonic handlers, which read the request's extensions themselves.
    pub async fn from_extensions(
        extensions: &http::Extensions,
    ) -> Result<KeyedTransaction, TransactionError> {
        let lent = extensions
            .get::<Attachment>()
            .and_then(Attachment::downcast_ref::<Lent>)
            .ok_or(TransactionError::NotKeyed)?;
        let mut guard = lent
            .slot
            .clone()
            .try_lock_owned()
            .map_err(|_| TransactionError::AlreadyTaken)?;
        if guard.is_none() {
            let tx = lent
                .store
                .pool()
                .begin()
                .await
                .map_err(TransactionError::Begin)?;
            *guard = Some(tx);
        }
        Ok(KeyedTransaction { guard })
    }
}

impl Deref for KeyedTransaction {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        match self.guard.as_ref() {
            Some(tx) => tx,
            None => unreachable!("a KeyedTransaction is made with its transaction begun"),
        }
    }
}

impl DerefMut for KeyedTransaction {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self.guard.as_mut() {
            Some(tx) => tx,
            None => unreachable!("a KeyedTransaction is made with its transaction begun"),
        }
    }
}

/// How a handler's failure to get its transaction reads as a problem: a missing layer is
/// the server's mistake (500), a database that will not begin one is unavailable (503).
impl palisade_core::Rejection for TransactionError {
    fn http_status(&self) -> http::StatusCode {
        match self {
            Self::Begin(_) => http::StatusCode::SERVICE_UNAVAILABLE,
            _ => http::StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        matches!(self, Self::Begin(_)).then_some(Duration::from_secs(1))
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Begin(_) => "keyed-transaction-unavailable",
            _ => "no-keyed-transaction",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Self::Begin(_) => "Database unavailable",
            _ => "No keyed transaction",
        }
    }
}

#[cfg(feature = "axum")]
mod extract {
    use axum_core::extract::FromRequestParts;
    use axum_core::response::{IntoResponse, Response};
    use http::request::Parts;
    use palisade_core::{Problem, Rejection};

    use super::{KeyedTransaction, TransactionError};

    impl<S: Sync> FromRequestParts<S> for KeyedTransaction {
        type Rejection = TransactionError;

        async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
            KeyedTransaction::from_extensions(&parts.extensions).await
        }
    }

    /// As problem+json: 500 for a missing layer, 503 when the database will not begin one.
    impl IntoResponse for TransactionError {
        fn into_response(self) -> Response {
            let body = Problem::from_rejection(&self).to_json();
            (
                self.http_status(),
                [(http::header::CONTENT_TYPE, Problem::CONTENT_TYPE)],
                body,
            )
                .into_response()
        }
    }
}
