//! Holding a claim while the request runs: a heartbeat renews its lease, so a slow handler
//! keeps its key; a guard releases it if the request ends without settling it — the
//! client went away (the future was dropped) or the handler panicked — so that a retry
//! runs instead of waiting out the lease.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::record::{Owner, RecordKey};
use crate::store::{Store, TimedStore};

/// Runs `call`, renewing the claim's lease every third of it meanwhile.
pub(crate) async fn with_heartbeat<F: Future>(
    call: F,
    store: &TimedStore<'_>,
    record: &RecordKey,
    owner: Owner,
    lease: Duration,
) -> F::Output {
    let heartbeat = async {
        // A third of the lease, and never zero: `interval` refuses a zero period.
        let beat = (lease / 3).max(Duration::from_millis(1));
        let mut ticks = tokio::time::interval_at(Instant::now() + beat, beat);
        loop {
            ticks.tick().await;
            match store.extend(record, owner, lease).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(?record, "the claim was lost while the request ran");
                    return std::future::pending().await;
                }
                // Counted by `TimedStore`; the next beat tries again.
                Err(_) => {}
            }
        }
    };
    tokio::select! {
        biased;
        output = call => output,
        never = heartbeat => never,
    }
}

/// Releases a claim that was not settled: at once when the outcome says so, or from a task
/// when the request's future is dropped or unwinds with the claim still held.
pub(crate) struct ClaimGuard {
    store: Arc<dyn Store>,
    record: RecordKey,
    owner: Owner,
    armed: bool,
}

impl ClaimGuard {
    /// Guards `owner`'s claim on `record` in `store`.
    pub(crate) fn new(store: Arc<dyn Store>, record: RecordKey, owner: Owner) -> Self {
        Self {
            store,
            record,
            owner,
            armed: true,
        }
    }

    /// The claim is settled (the response stored, or the claim someone else's now):
    /// nothing to release.
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }

    /// Releases the claim now, because of `why`.
    pub(crate) async fn release(&mut self, store: &TimedStore<'_>, why: &'static str) {
        self.armed = false;
        tracing::debug!(record = ?self.record, why, "releasing the idempotency key");
        // A failed release leaves the claim to run out with its lease; nothing better to do.
        let _ = store.release(&self.record, self.owner).await;
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (store, record, owner) = (self.store.clone(), self.record, self.owner);
        tracing::debug!(
            ?record,
            "request dropped or panicked with its key claimed; releasing it"
        );
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let _ = store.release(&record, owner).await;
                });
            }
            // No runtime to release from: the lease runs out instead.
            Err(_) => tracing::warn!(
                ?record,
                "no runtime to release the key from; its lease will expire"
            ),
        }
    }
}
