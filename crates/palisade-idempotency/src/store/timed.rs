//! A store as the layer uses it: each operation timed into
//! `palisade_idempotency_store_seconds`, and each failure counted and logged, in one place
//! rather than around every call.

use std::time::Duration;

use tokio::time::Instant;

use super::{Attachment, Claim, Store, StoreError};
use crate::metrics::{IdempotencyMetrics, Op};
use crate::record::{Fingerprint, Owner, RecordKey, StoredResponse};

/// The store, with each operation timed and its failures counted.
pub(crate) struct TimedStore<'a> {
    store: &'a dyn Store,
    metrics: &'a IdempotencyMetrics,
}

impl<'a> TimedStore<'a> {
    /// `store`'s operations, recorded in `metrics`.
    pub(crate) fn new(store: &'a dyn Store, metrics: &'a IdempotencyMetrics) -> Self {
        Self { store, metrics }
    }

    async fn op<T>(
        &self,
        op: Op,
        future: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = future.await;
        self.metrics
            .store_op(op, started.elapsed(), result.is_err());
        if let Err(error) = &result {
            tracing::warn!(op = op.label(), %error, "idempotency store operation failed");
        }
        result
    }

    /// [`Store::claim`], timed.
    pub(crate) async fn claim(
        &self,
        record: &RecordKey,
        fingerprint: Fingerprint,
        owner: Owner,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        self.op(
            Op::Claim,
            self.store.claim(record, fingerprint, owner, lease),
        )
        .await
    }

    /// [`Attached::complete`](super::Attached::complete), timed as a completion.
    pub(crate) async fn complete_attached(
        &self,
        attachment: &Attachment,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<Option<bool>, StoreError> {
        self.op(Op::Complete, attachment.attached().complete(response, ttl))
            .await
    }

    /// [`Store::complete`], timed.
    pub(crate) async fn complete(
        &self,
        record: &RecordKey,
        owner: Owner,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.op(
            Op::Complete,
            self.store.complete(record, owner, response, ttl),
        )
        .await
    }

    /// [`Store::extend`], timed.
    pub(crate) async fn extend(
        &self,
        record: &RecordKey,
        owner: Owner,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        self.op(Op::Extend, self.store.extend(record, owner, lease))
            .await
    }

    /// [`Store::release`], timed.
    pub(crate) async fn release(
        &self,
        record: &RecordKey,
        owner: Owner,
    ) -> Result<bool, StoreError> {
        self.op(Op::Release, self.store.release(record, owner))
            .await
    }
}
