//! Where a fleet keeps its quotas: one count for every instance of a service.
//!
//! A limit kept in each process is a limit per process: four instances behind a load
//! balancer admit four times the quota, and splitting the quota four ways is wrong whenever
//! the balancer does not spread each key's traffic evenly (it rarely does: connections are
//! long-lived, and a client's requests stick to one). A [`Store`] holds each key's TAT where
//! every instance reads it, and decides each take atomically on its own clock, so the fleet
//! admits what one instance would.
//!
//! - [`MemoryStore`]: in this process (several layers, or tests and simulations);
//! - [`RedisStore`] (feature `redis`): one Redis server or a Redis Cluster, one round trip
//!   (one script) a decision.
//!
//! The fleet layer ([`FleetRateLimitLayer`](crate::fleet::FleetRateLimitLayer)) asks the
//! store for each request, or — batched — for a lease of several cells at a time.

mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use palisade_core::BoxError;

pub use self::memory::MemoryStore;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::RedisStore;

/// The future of a [`Store::take`].
pub type StoreFuture<'a> = Pin<Box<dyn Future<Output = Result<Grant, StoreError>> + Send + 'a>>;

/// Keeps the TATs of a fleet's keys and decides takes atomically.
///
/// An implementation must decide each take as one atomic step on one clock (its own, not
/// the caller's: the instances' clocks differ): read the key's TAT, grant as many of
/// `cells` as the quota allows now (at least one, or none), and move the TAT on by what it
/// granted. [`MemoryStore`] is the reference.
pub trait Store: Send + Sync + 'static {
    /// Takes up to `take.cells` cells of `take.key`'s quota.
    fn take<'a>(&'a self, take: Take<'a>) -> StoreFuture<'a>;
}

/// A shared store is a store: one `Arc` for several layers, or a store chosen at run time
/// (`Arc<dyn Store>`).
impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    fn take<'a>(&'a self, take: Take<'a>) -> StoreFuture<'a> {
        (**self).take(take)
    }
}

/// What a fleet member asks its store for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Take<'a> {
    /// The key, with its policy: `{policy}:{key}`.
    pub key: &'a [u8],
    /// The quota's emission interval: one cell every `interval`.
    pub interval: Duration,
    /// The quota's burst: how many cells ahead of schedule a key may be.
    pub burst: u32,
    /// The most cells wanted now (1, or a lease's size).
    pub cells: u32,
}

impl<'a> Take<'a> {
    /// A take of up to `cells` cells of `key`'s quota of one every `interval`, `burst` at
    /// once.
    pub fn new(key: &'a [u8], interval: Duration, burst: u32, cells: u32) -> Self {
        Self {
            key,
            interval,
            burst,
            cells,
        }
    }
}

/// What a store granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grant {
    /// Cells granted: 0 when the key is out of quota.
    pub granted: u32,
    /// How far ahead of the store's now the key's TAT is afterwards: the key is whole again
    /// after this.
    pub ahead: Duration,
    /// When nothing was granted: until one cell would be.
    pub retry_after: Option<Duration>,
}

impl Grant {
    /// A grant of `granted` cells, the key's TAT `ahead` of now afterwards; `retry_after`
    /// when nothing was granted.
    pub fn new(granted: u32, ahead: Duration, retry_after: Option<Duration>) -> Self {
        Self {
            granted,
            ahead,
            retry_after,
        }
    }
}

/// A store that could not decide: unreachable, too slow, or an answer that did not read.
#[derive(Debug)]
pub struct StoreError {
    source: BoxError,
}

impl StoreError {
    /// A store error caused by `source`.
    pub fn new(source: impl Into<BoxError>) -> Self {
        Self {
            source: source.into(),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the rate limit store failed: {}", self.source)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}
