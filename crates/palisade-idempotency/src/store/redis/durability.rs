//! Durable writes: a claim or a completion counts only once replicas hold it.

use std::time::Duration;

/// How many replicas must acknowledge a claim or a completion before the store reports it
/// done, for [`RedisStore::durable`](super::RedisStore::durable).
///
/// Redis replicates asynchronously: a primary answers a write before its replicas have it.
/// If the primary then dies and a replica that missed the write takes over, the write is
/// gone. For a claim, that lets a duplicate run while the first request is still running;
/// for a completion, it puts the record back in flight, and a retry runs again once the
/// lease ends. A durable store sends each claim and completion with `WAIT replicas timeout`
/// on the same connection, and trusts it only when `replicas` replicas acknowledged it:
///
/// - a **claim** that too few replicas acknowledged within `timeout` is released and fails
///   with a [`StoreError`](crate::store::StoreError): the layer answers with its fail-closed
///   503, nothing ran, and the client's retry tries again;
/// - a **completion** — the handler has run, its answer must not be lost — is sent again
///   until enough replicas acknowledge it or [`patience`](Self::patience) runs out (a
///   failover in between is followed: the promoted replica holds the claim, since the claim
///   was durable). Sending it again is harmless: the very completion the record's owner
///   already made is accepted once more. A refusal (the record is not the owner's) is
///   believed only when the replicas back it too: in a failover, an old primary restarted
///   empty can claim its slots for a moment and answer that the record is gone.
///
/// `WAIT` does not make Redis a consensus store: a replica that acknowledged a write can
/// still lose a race to be promoted against one that did not, when a primary has two or
/// more replicas. With one replica per primary (the usual layout, and the measured one in
/// docs/idempotency.md), the replica that takes over is the one that acknowledged.
///
/// `WAIT` also holds back the commands queued behind it on its connection, which the
/// store's clones share, while replicas answer: normally one round trip to the replica,
/// at worst `timeout` when a replica lags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Durability {
    pub(super) replicas: u32,
    pub(super) timeout: Duration,
    pub(super) patience: Duration,
}

impl Durability {
    /// How long a write waits for its replicas by default: 200 ms.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);

    /// How long a completion is sent again by default: 30 s, enough for a failover with
    /// Redis's default `cluster-node-timeout` (15 s) and the election after it, and half
    /// the layer's default lease.
    pub const DEFAULT_PATIENCE: Duration = Duration::from_secs(30);

    /// Claims and completions wait for `replicas` replicas (at least one; more than a
    /// primary has can never be reached, and every write then fails).
    pub const fn replicas(replicas: u32) -> Self {
        Self {
            replicas: if replicas == 0 { 1 } else { replicas },
            timeout: Self::DEFAULT_TIMEOUT,
            patience: Self::DEFAULT_PATIENCE,
        }
    }

    /// How long one write waits for its replicas (`WAIT`'s timeout; whole milliseconds,
    /// rounded up).
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a completion is sent again, while too few replicas acknowledge it or the
    /// store cannot be reached, before the store gives up and reports the error.
    ///
    /// Keep it well below the layer's lease (60 s by default): the lease is renewed while
    /// the handler runs, not while its completion is resent, and a claim whose lease ran
    /// out is no longer the completion's to settle.
    pub const fn patience(mut self, patience: Duration) -> Self {
        self.patience = patience;
        self
    }
}
