//! Where records live: the [`Store`] trait, [`MemoryStore`] for one instance, and
//! `RedisStore` (feature `redis`) for a service that runs on more than one.
//!
//! A store offers five operations on a record, each atomic:
//!
//! - **claim**: create the record *in flight* under an owner token with a lease, or return
//!   what is there (in flight or completed) — never both, so of two concurrent duplicates
//!   exactly one runs;
//! - **complete**: store the response and make the record *completed* for the record's
//!   time to live — only if the owner still holds the claim;
//! - **release**: delete the in-flight record so that a retry runs — only for its owner;
//! - **extend**: push the lease further while the handler runs (a heartbeat) — only for its
//!   owner;
//! - **lookup**: read the record, for a duplicate that waits for the first to finish.
//!
//! The owner check on every write is the fencing: a holder whose lease ran out (its process
//! paused, its handler slow beyond the lease) and whose key was claimed again cannot
//! overwrite or delete the new holder's record; the write is refused and reported `false`.
//!
//! A store may also lend the request it lets run something to do its work in
//! ([`Store::attach`]): `PostgresStore` (feature `postgres`) lends a database transaction,
//! in which the completed record is written and committed together with the handler's own
//! writes — exactly-once effects, not only exactly-once execution.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::record::{Fingerprint, Owner, RecordKey, StoredResponse};

mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
mod redis;
mod timed;

pub use self::memory::{MemoryStore, MemoryStoreBuilder};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use self::postgres::PostgresStore;
#[cfg(feature = "redis")]
pub use self::redis::{Durability, RedisStore};
pub(crate) use self::timed::TimedStore;

/// The future of a store operation. Stores are called once or twice per keyed request, a
/// round trip to Redis away: a box here costs nothing measurable and keeps `Store`
/// usable as `Arc<dyn Store>`, chosen at run time.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A record as a store holds it.
// A completed record carries its response inline: it is made once per lookup and moved
// straight into the replay, so a box would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Record {
    /// The first request is running.
    InFlight {
        /// What it asked for.
        fingerprint: Fingerprint,
    },
    /// The first request finished, and this is its response.
    Completed {
        /// What it asked for.
        fingerprint: Fingerprint,
        /// What it got.
        response: StoredResponse,
    },
}

/// What a claim found.
#[allow(clippy::large_enum_variant)] // as for `Record`
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Claim {
    /// The record was created, in flight, for this owner: run the request.
    Claimed,
    /// A record was already there.
    Existing(Record),
}

/// A store could not be reached or did not answer sensibly.
#[derive(Debug)]
pub struct StoreError(Box<dyn std::error::Error + Send + Sync>);

impl StoreError {
    /// A store error caused by `error`.
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(error.into())
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "idempotency store failed: {}", self.0)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// A place to keep idempotency records, shared by every instance of a service that must
/// agree on them. See the [module documentation](self) for what each operation guarantees.
pub trait Store: Send + Sync + 'static {
    /// Creates the record in flight for `owner` with a lease of `lease`, or returns the
    /// record already there. A record whose lease ran out is gone: claiming it succeeds.
    fn claim<'a>(
        &'a self,
        key: &'a RecordKey,
        fingerprint: Fingerprint,
        owner: Owner,
        lease: Duration,
    ) -> StoreFuture<'a, Claim>;

    /// Stores `response` and keeps the record for `ttl`, if `owner` holds the claim;
    /// `false` if it does not (the write is refused).
    fn complete<'a>(
        &'a self,
        key: &'a RecordKey,
        owner: Owner,
        response: &'a StoredResponse,
        ttl: Duration,
    ) -> StoreFuture<'a, bool>;

    /// Deletes the in-flight record, if `owner` holds it; `false` if it does not.
    fn release<'a>(&'a self, key: &'a RecordKey, owner: Owner) -> StoreFuture<'a, bool>;

    /// Extends `owner`'s lease to `lease` from now; `false` if it no longer holds the claim.
    fn extend<'a>(
        &'a self,
        key: &'a RecordKey,
        owner: Owner,
        lease: Duration,
    ) -> StoreFuture<'a, bool>;

    /// The record, if there is one.
    fn lookup<'a>(&'a self, key: &'a RecordKey) -> StoreFuture<'a, Option<Record>>;

    /// What the request that claimed `key` for `owner` (asking for `fingerprint`) may do
    /// its work in — the Postgres store's transaction — handed to the handler through the
    /// request's extensions and settled by the layer with the outcome. `None` (the
    /// default): nothing to lend, and the record is completed on its own.
    fn attach(
        &self,
        key: &RecordKey,
        owner: Owner,
        fingerprint: Fingerprint,
    ) -> Option<Attachment> {
        let _ = (key, owner, fingerprint);
        None
    }

    /// What [`attach`](Self::attach) lends, for a request the layer runs unprotected — the
    /// store failed and the layer fails open — settled without a record: committed when the
    /// response is final, undone otherwise. `None` (the default): nothing to lend.
    fn attach_unrecorded(
        &self,
        key: &RecordKey,
        owner: Owner,
        fingerprint: Fingerprint,
    ) -> Option<Attachment> {
        let _ = (key, owner, fingerprint);
        None
    }
}

/// What a store lends one claimed request: see [`Store::attach`]. The layer puts it into
/// the request's extensions, where the store's own extractor finds it, and settles it once
/// the handler has answered.
#[derive(Clone)]
pub struct Attachment(Arc<dyn Attached>);

impl Attachment {
    /// Wraps what a store lends.
    pub fn new(attached: impl Attached) -> Self {
        Self(Arc::new(attached))
    }

    /// The store's own type, for its extractor.
    pub fn downcast_ref<T: Attached>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref()
    }

    pub(crate) fn attached(&self) -> &dyn Attached {
        &*self.0
    }
}

impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment").finish_non_exhaustive()
    }
}

/// How [`Attached::complete`] settled the handler's work and the record.
#[allow(clippy::large_enum_variant)] // as for `Record`
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Settled {
    /// The handler did not use the attachment: the layer completes the record on its own.
    NotUsed,
    /// The handler's work and the record are durable, together.
    Committed,
    /// The claim was lost meanwhile (another request holds the key): nothing the handler
    /// did is kept.
    ClaimLost,
    /// The handler's own work failed in it (a constraint it broke, a serialization
    /// failure, a transaction it let abort): nothing is kept, and the record is not
    /// stored — the store is fine, the request simply did not succeed.
    Aborted,
    /// Another request's record was there when the work came to commit (a store that
    /// claims at commit found a duplicate, or a retry of a finished request): nothing the
    /// handler did is kept, and the request is answered from that record, as a claim that
    /// had found it would be.
    Existing(Record),
}

/// The store's side of an [`Attachment`]: how the layer settles what the handler did with
/// it.
pub trait Attached: Send + Sync + 'static {
    /// Stores `response` for `ttl` together with what the handler did, atomically, and says
    /// how that went; an error is the store's (the database unreachable), after which
    /// nothing the handler did may have been kept.
    fn complete<'a>(
        &'a self,
        response: &'a StoredResponse,
        ttl: Duration,
    ) -> StoreFuture<'a, Settled>;

    /// Undoes what the handler did with it, if anything — the response is not to be stored
    /// (the handler failed, or it is not final), so neither are its effects — and says
    /// whether there was anything to undo.
    fn abandon(&self) -> bool;

    /// `self`, for [`Attachment::downcast_ref`].
    fn as_any(&self) -> &dyn Any;
}
