//! A store as the layer uses it: each operation timed into
//! `palisade_idempotency_store_seconds`, each failure counted and logged, and claims guarded
//! by the layer's store breaker — a store that keeps failing is not asked to claim again
//! until the breaker lets a probe through, so that requests are refused at once rather than
//! each waiting out a dead store's timeout — in one place rather than around every call.

use std::time::Duration;

use palisade_breaker::BreakerHandle;
use tokio::time::Instant;

use super::{Attachment, Claim, Settled, Store, StoreError};
use crate::metrics::{IdempotencyMetrics, Op};
use crate::record::{Fingerprint, Owner, RecordKey, StoredResponse};

/// The store, with each operation timed and its failures counted.
pub(crate) struct TimedStore<'a> {
    store: &'a dyn Store,
    breaker: &'a BreakerHandle,
    metrics: &'a IdempotencyMetrics,
}

impl<'a> TimedStore<'a> {
    /// `store`'s operations, behind `breaker`, recorded in `metrics`.
    pub(crate) fn new(
        store: &'a dyn Store,
        breaker: &'a BreakerHandle,
        metrics: &'a IdempotencyMetrics,
    ) -> Self {
        Self {
            store,
            breaker,
            metrics,
        }
    }

    /// Runs the operation `call` makes, unless the breaker is open: then the store is not
    /// asked at all.
    async fn op<T, F>(&self, op: Op, call: impl FnOnce() -> F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, StoreError>>,
    {
        // Only claims wait for the breaker: a refused claim is a request that did not run.
        // Everything after a claim settles work that was done or is under way — refusing a
        // completion would throw away an answer the handler already gave (and let a retry
        // run it again), refusing a release or an extension would hold keys in flight or
        // let live claims lapse — so those go to the store whatever the breaker says, and
        // their outcomes still count.
        let permit = match self.breaker.try_acquire() {
            Ok(permit) => Some(permit),
            Err(_) if !matches!(op, Op::Claim) => None,
            Err(open) => {
                tracing::debug!(op = op.label(), "idempotency store breaker open: not asked");
                return Err(StoreError::new(open));
            }
        };
        let started = Instant::now();
        let result = call().await;
        match (permit, &result) {
            (Some(permit), Ok(_)) => permit.success(),
            (Some(permit), Err(_)) => permit.failure(),
            (None, _) => {}
        }
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
        self.op(Op::Claim, || {
            self.store.claim(record, fingerprint, owner, lease)
        })
        .await
    }

    /// [`Attached::complete`](super::Attached::complete), timed as a completion.
    pub(crate) async fn complete_attached(
        &self,
        attachment: &Attachment,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<Settled, StoreError> {
        self.op(Op::Complete, || {
            attachment.attached().complete(response, ttl)
        })
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
        self.op(Op::Complete, || {
            self.store.complete(record, owner, response, ttl)
        })
        .await
    }

    /// [`Store::extend`], timed.
    pub(crate) async fn extend(
        &self,
        record: &RecordKey,
        owner: Owner,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        self.op(Op::Extend, || self.store.extend(record, owner, lease))
            .await
    }

    /// [`Store::release`], timed.
    pub(crate) async fn release(
        &self,
        record: &RecordKey,
        owner: Owner,
    ) -> Result<bool, StoreError> {
        self.op(Op::Release, || self.store.release(record, owner))
            .await
    }
}
