//! The in-memory store: records in shards, each a map behind its own mutex (held for a few
//! map operations, never across an await), with expiry and bounds on entries and bytes.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use indexmap::IndexMap;
use palisade_core::ConfigError;
use tokio::time::Instant;

use super::{Claim, Record, Store, StoreFuture};
use crate::record::{Fingerprint, Owner, RecordKey, StoredResponse};

/// Records in this process's memory: for a service that runs as one instance, and for
/// tests. Records expire (in-flight ones when their lease runs out, completed ones after
/// their time to live); when a shard is over its share of the entry or byte bound, its
/// oldest completed records are evicted first — an in-flight claim is never evicted, since
/// that would let a duplicate run.
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    max_entries_per_shard: usize,
    max_bytes_per_shard: usize,
}

#[derive(Default)]
struct Shard {
    /// In insertion order (completions re-insert), so the front is the oldest.
    entries: IndexMap<RecordKey, Entry>,
    bytes: usize,
}

struct Entry {
    state: State,
    expires: Instant,
}

// Completed entries are the common case; boxing them would add an allocation each.
#[allow(clippy::large_enum_variant)]
enum State {
    InFlight {
        fingerprint: Fingerprint,
        owner: Owner,
    },
    Completed {
        fingerprint: Fingerprint,
        response: StoredResponse,
        size: usize,
    },
}

impl Entry {
    fn size(&self) -> usize {
        match &self.state {
            State::InFlight { .. } => 0,
            State::Completed { size, .. } => *size,
        }
    }

    fn record(&self) -> Record {
        match &self.state {
            State::InFlight { fingerprint, .. } => Record::InFlight {
                fingerprint: *fingerprint,
            },
            State::Completed {
                fingerprint,
                response,
                ..
            } => Record::Completed {
                fingerprint: *fingerprint,
                response: response.clone(),
            },
        }
    }

    fn held_by(&self, owner: Owner, now: Instant) -> bool {
        matches!(self.state, State::InFlight { owner: o, .. } if o == owner) && now < self.expires
    }
}

impl Shard {
    /// The live entry of `key`, dropping it if it expired.
    fn live(&mut self, key: &RecordKey, now: Instant) -> Option<&mut Entry> {
        if self.entries.get(key).is_some_and(|e| e.expires <= now) {
            self.remove(key);
        }
        self.entries.get_mut(key)
    }

    fn remove(&mut self, key: &RecordKey) {
        if let Some(entry) = self.entries.shift_remove(key) {
            self.bytes -= entry.size();
        }
    }

    /// Drops expired entries from the front, then the oldest completed ones while over a
    /// bound.
    fn evict(&mut self, now: Instant, max_entries: usize, max_bytes: usize) {
        self.entries.retain(|_, e| e.expires > now);
        self.bytes = self.entries.values().map(Entry::size).sum();
        let mut i = 0;
        while (self.entries.len() > max_entries || self.bytes > max_bytes) && i < self.entries.len()
        {
            if matches!(self.entries[i].state, State::Completed { .. }) {
                if let Some((_, entry)) = self.entries.shift_remove_index(i) {
                    self.bytes -= entry.size();
                }
            } else {
                i += 1;
            }
        }
    }
}

/// Builds a [`MemoryStore`].
///
/// | setting | default |
/// |---|---|
/// | [`max_entries`](Self::max_entries) | 100 000 |
/// | [`max_bytes`](Self::max_bytes) | 256 MiB of stored responses |
/// | [`shards`](Self::shards) | 16 |
#[derive(Debug, Clone)]
pub struct MemoryStoreBuilder {
    max_entries: usize,
    max_bytes: usize,
    shards: usize,
}

impl MemoryStoreBuilder {
    /// The most records kept; beyond it the oldest completed ones are evicted.
    pub fn max_entries(mut self, max: usize) -> Self {
        self.max_entries = max;
        self
    }

    /// The most bytes of stored responses kept; beyond it the oldest completed records are
    /// evicted.
    pub fn max_bytes(mut self, max: usize) -> Self {
        self.max_bytes = max;
        self
    }

    /// How many independently locked shards the records are spread over.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards;
        self
    }

    /// Checks the settings and makes the store.
    pub fn build(self) -> Result<MemoryStore, ConfigError> {
        if self.shards == 0 {
            return Err(ConfigError::new("shards", "must be at least 1"));
        }
        if self.max_entries < self.shards {
            return Err(ConfigError::new(
                "max_entries",
                "must be at least the number of shards",
            ));
        }
        Ok(MemoryStore {
            shards: (0..self.shards)
                .map(|_| Mutex::new(Shard::default()))
                .collect(),
            hasher: RandomState::new(),
            max_entries_per_shard: self.max_entries.div_ceil(self.shards),
            max_bytes_per_shard: self.max_bytes.div_ceil(self.shards),
        })
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::builder()
            .build()
            .expect("the default memory store is valid")
    }
}

impl MemoryStore {
    /// A store with the default bounds.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder, to set the bounds.
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder {
            max_entries: 100_000,
            max_bytes: 256 << 20,
            shards: 16,
        }
    }

    /// How many records are held now (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).entries.len()).sum()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: &RecordKey) -> MutexGuard<'_, Shard> {
        let i = self.hasher.hash_one(key) as usize % self.shards.len();
        lock(&self.shards[i])
    }

    fn claim_now(
        &self,
        key: &RecordKey,
        fingerprint: Fingerprint,
        owner: Owner,
        lease: Duration,
    ) -> Claim {
        let now = Instant::now();
        let mut shard = self.shard(key);
        if let Some(entry) = shard.live(key, now) {
            return Claim::Existing(entry.record());
        }
        shard.entries.insert(
            *key,
            Entry {
                state: State::InFlight { fingerprint, owner },
                expires: now + lease,
            },
        );
        if shard.entries.len() > self.max_entries_per_shard {
            shard.evict(now, self.max_entries_per_shard, self.max_bytes_per_shard);
        }
        Claim::Claimed
    }

    fn complete_now(
        &self,
        key: &RecordKey,
        owner: Owner,
        response: &StoredResponse,
        ttl: Duration,
    ) -> bool {
        let now = Instant::now();
        let mut shard = self.shard(key);
        let fingerprint = match shard.live(key, now) {
            Some(entry) if entry.held_by(owner, now) => match entry.state {
                State::InFlight { fingerprint, .. } => fingerprint,
                State::Completed { .. } => return false,
            },
            _ => return false,
        };
        let size = response.encoded_len();
        // Re-inserted at the back: eviction goes oldest-completed first.
        shard.remove(key);
        shard.bytes += size;
        shard.entries.insert(
            *key,
            Entry {
                state: State::Completed {
                    fingerprint,
                    response: response.clone(),
                    size,
                },
                expires: now + ttl,
            },
        );
        if shard.bytes > self.max_bytes_per_shard
            || shard.entries.len() > self.max_entries_per_shard
        {
            shard.evict(now, self.max_entries_per_shard, self.max_bytes_per_shard);
        }
        true
    }

    fn release_now(&self, key: &RecordKey, owner: Owner) -> bool {
        let now = Instant::now();
        let mut shard = self.shard(key);
        match shard.live(key, now) {
            Some(entry) if entry.held_by(owner, now) => {
                shard.remove(key);
                true
            }
            _ => false,
        }
    }

    fn extend_now(&self, key: &RecordKey, owner: Owner, lease: Duration) -> bool {
        let now = Instant::now();
        let mut shard = self.shard(key);
        match shard.live(key, now) {
            Some(entry) if entry.held_by(owner, now) => {
                entry.expires = now + lease;
                true
            }
            _ => false,
        }
    }

    fn lookup_now(&self, key: &RecordKey) -> Option<Record> {
        self.shard(key)
            .live(key, Instant::now())
            .map(|e| e.record())
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while holding a shard's lock leaves no half-made change: every change is one
    // map operation and its byte count.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Store for MemoryStore {
    fn claim<'a>(
        &'a self,
        key: &'a RecordKey,
        fingerprint: Fingerprint,
        owner: Owner,
        lease: Duration,
    ) -> StoreFuture<'a, Claim> {
        let claim = self.claim_now(key, fingerprint, owner, lease);
        Box::pin(std::future::ready(Ok(claim)))
    }

    fn complete<'a>(
        &'a self,
        key: &'a RecordKey,
        owner: Owner,
        response: &'a StoredResponse,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        let done = self.complete_now(key, owner, response, ttl);
        Box::pin(std::future::ready(Ok(done)))
    }

    fn release<'a>(&'a self, key: &'a RecordKey, owner: Owner) -> StoreFuture<'a, bool> {
        let released = self.release_now(key, owner);
        Box::pin(std::future::ready(Ok(released)))
    }

    fn extend<'a>(
        &'a self,
        key: &'a RecordKey,
        owner: Owner,
        lease: Duration,
    ) -> StoreFuture<'a, bool> {
        let extended = self.extend_now(key, owner, lease);
        Box::pin(std::future::ready(Ok(extended)))
    }

    fn lookup<'a>(&'a self, key: &'a RecordKey) -> StoreFuture<'a, Option<Record>> {
        let record = self.lookup_now(key);
        Box::pin(std::future::ready(Ok(record)))
    }
}
