//! The in-memory store: records in shards, each a map behind its own mutex (held for a few
//! map operations, never across an await), with expiry and bounds on entries and bytes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use ahash::RandomState;
use bytes::Bytes;
use palisade_core::ConfigError;
use tokio::time::Instant;

use super::{Claim, Record, Store, StoreFuture};
use crate::record::{Fingerprint, Owner, RecordKey, StoredResponse};

/// Records in this process's memory: for a service that runs as one instance, and for
/// tests. Records expire (in-flight ones when their lease runs out, completed ones after
/// their time to live); when a shard is over its share of the entry or byte bound, its
/// oldest completed records (by when they were claimed) are evicted first — an in-flight
/// claim is never evicted, since that would let a duplicate run.
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    max_entries_per_shard: usize,
    max_bytes_per_shard: usize,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("shards", &self.shards.len())
            .field("max_entries_per_shard", &self.max_entries_per_shard)
            .field("max_bytes_per_shard", &self.max_bytes_per_shard)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Shard {
    /// Hashed with aHash under a key of its own, drawn at random: idempotency keys are the
    /// client's to choose, so their hash must not be predictable, and std's SipHash cost
    /// several times as much a request (a record's key is hashed for its shard, then in it,
    /// at its claim and at its completion).
    entries: HashMap<RecordKey, Entry, RandomState>,
    /// Keys in the order they were claimed (a completion keeps its claim's place), each with
    /// the generation it was written at: eviction pops the oldest. An item whose key was
    /// claimed again since, or removed, is stale and skipped — cheaper than keeping an ordered
    /// map in step on every write.
    order: VecDeque<(RecordKey, u64)>,
    generation: u64,
    bytes: usize,
}

struct Entry {
    state: State,
    expires: Instant,
    generation: u64,
}

enum State {
    InFlight {
        fingerprint: Fingerprint,
        owner: Owner,
    },
    Completed {
        fingerprint: Fingerprint,
        /// [`StoredResponse::encode`]'s bytes: one allocation per record, where the decoded
        /// response holds a header map and its entries besides the body — a store full of
        /// small responses takes about half the memory this way.
        response: Bytes,
    },
}

/// What a live entry holds, copied out under the shard's lock (the response still encoded,
/// so the copy is a reference count) and made a [`Record`] after it is released.
enum Found {
    InFlight(Fingerprint),
    Completed(Fingerprint, Bytes),
}

impl Found {
    fn into_record(self) -> Record {
        match self {
            Found::InFlight(fingerprint) => Record::InFlight { fingerprint },
            Found::Completed(fingerprint, bytes) => match StoredResponse::decode(bytes) {
                Some(response) => Record::Completed {
                    fingerprint,
                    response,
                },
                // Only a bug in the codec gets here. Saying the key is in use refuses the
                // request (409) rather than letting it run a second time.
                None => {
                    tracing::error!("a stored response did not decode; answering as in flight");
                    Record::InFlight { fingerprint }
                }
            },
        }
    }
}

impl Entry {
    fn size(&self) -> usize {
        match &self.state {
            State::InFlight { .. } => 0,
            State::Completed { response, .. } => response.len(),
        }
    }

    fn found(&self) -> Found {
        match &self.state {
            State::InFlight { fingerprint, .. } => Found::InFlight(*fingerprint),
            State::Completed {
                fingerprint,
                response,
            } => Found::Completed(*fingerprint, response.clone()),
        }
    }

    fn held_by(&self, owner: Owner, now: Instant) -> bool {
        matches!(self.state, State::InFlight { owner: o, .. } if o == owner) && now < self.expires
    }
}

impl Shard {
    /// The live entry of `key`, dropping it if it expired.
    fn live(&mut self, key: &RecordKey, now: Instant) -> Option<&mut Entry> {
        // One lookup for the common case, a key not seen before.
        if self.entries.get(key)?.expires <= now {
            self.remove(key);
            return None;
        }
        self.entries.get_mut(key)
    }

    fn insert(&mut self, key: RecordKey, state: State, expires: Instant) {
        self.generation += 1;
        let entry = Entry {
            state,
            expires,
            generation: self.generation,
        };
        self.bytes += entry.size();
        if let Some(old) = self.entries.insert(key, entry) {
            self.bytes -= old.size();
        }
        self.order.push_back((key, self.generation));
        if self.order.len() > 2 * self.entries.len() + 64 {
            // Mostly stale items: keep the live ones, in order.
            let entries = &self.entries;
            self.order.retain(|(key, generation)| {
                entries
                    .get(key)
                    .is_some_and(|e| e.generation == *generation)
            });
        }
    }

    fn remove(&mut self, key: &RecordKey) {
        if let Some(entry) = self.entries.remove(key) {
            self.bytes -= entry.size();
        }
    }

    /// Evicts the oldest records while over a bound: expired or completed ones; an
    /// in-flight claim is moved to the back instead, never evicted.
    fn evict(&mut self, now: Instant, max_entries: usize, max_bytes: usize) {
        let mut in_flight_seen = 0;
        while self.entries.len() > max_entries || self.bytes > max_bytes {
            let Some((key, generation)) = self.order.pop_front() else {
                return;
            };
            let Some(entry) = self
                .entries
                .get(&key)
                .filter(|e| e.generation == generation)
            else {
                continue; // stale
            };
            if entry.expires <= now || matches!(entry.state, State::Completed { .. }) {
                self.remove(&key);
            } else {
                self.order.push_back((key, generation));
                in_flight_seen += 1;
                if in_flight_seen >= self.order.len() {
                    return; // nothing but claims in flight: nothing may go
                }
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

    /// The most records kept: the entry bound, rounded up to a whole number per shard.
    pub fn capacity(&self) -> usize {
        self.max_entries_per_shard * self.shards.len()
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
            let found = entry.found();
            drop(shard);
            return Claim::Existing(found.into_record());
        }
        shard.insert(*key, State::InFlight { fingerprint, owner }, now + lease);
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
        // Encoded before the shard is locked: the lock is held for map operations only.
        let encoded = response.encode();
        let size = encoded.len();
        let now = Instant::now();
        let mut shard = self.shard(key);
        let fingerprint = match shard.live(key, now) {
            Some(entry) if entry.held_by(owner, now) => match entry.state {
                State::InFlight { fingerprint, .. } => fingerprint,
                State::Completed { .. } => return false,
            },
            _ => return false,
        };
        // Completed in place: the record keeps its place in the eviction order (that of its
        // claim), so a record costs one item in that order, not two.
        let Some(entry) = shard.entries.get_mut(key) else {
            return false;
        };
        entry.state = State::Completed {
            fingerprint,
            response: encoded,
        };
        entry.expires = now + ttl;
        shard.bytes += size;
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
        let found = self.shard(key).live(key, Instant::now()).map(|e| e.found());
        found.map(Found::into_record)
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::{HeaderMap, StatusCode};

    use super::*;

    fn response(body: usize) -> StoredResponse {
        StoredResponse {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from(vec![0; body]),
            trailers: None,
        }
    }

    const LEASE: Duration = Duration::from_secs(60);
    const TTL: Duration = Duration::from_secs(3600);

    fn key(i: u32) -> RecordKey {
        RecordKey::new("", &i.to_string())
    }

    #[tokio::test(start_paused = true)]
    async fn over_the_entry_bound_the_oldest_completed_go_and_claims_in_flight_stay() {
        let store = MemoryStore::builder()
            .shards(1)
            .max_entries(10)
            .build()
            .unwrap();
        let owner = Owner::random();
        let fp = Fingerprint([0; 32]);
        // Five claims stay in flight; then many records complete.
        for i in 0..5 {
            store.claim_now(&key(i), fp, owner, LEASE);
        }
        for i in 5..100 {
            store.claim_now(&key(i), fp, owner, LEASE);
            assert!(store.complete_now(&key(i), owner, &response(10), TTL));
        }
        assert!(store.len() <= 10, "{} records", store.len());
        for i in 0..5 {
            assert_eq!(
                store.lookup_now(&key(i)),
                Some(Record::InFlight { fingerprint: fp }),
                "claim {i} survived"
            );
        }
        assert!(store.lookup_now(&key(99)).is_some(), "the newest is kept");
        assert!(
            store.lookup_now(&key(5)).is_none(),
            "the oldest completed went"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn over_the_byte_bound_the_oldest_completed_go() {
        let size = response(1000).encoded_len();
        let store = MemoryStore::builder()
            .shards(1)
            .max_bytes(3 * size)
            .build()
            .unwrap();
        let owner = Owner::random();
        for i in 0..10 {
            store.claim_now(&key(i), Fingerprint([0; 32]), owner, LEASE);
            store.complete_now(&key(i), owner, &response(1000), TTL);
        }
        let kept: Vec<u32> = (0..10)
            .filter(|&i| store.lookup_now(&key(i)).is_some())
            .collect();
        assert_eq!(kept, [7, 8, 9]);
        assert!(lock(&store.shards[0]).bytes <= 3 * size);
    }

    #[tokio::test(start_paused = true)]
    async fn many_short_lived_records_leave_no_trail() {
        let store = MemoryStore::builder().shards(1).build().unwrap();
        let owner = Owner::random();
        for i in 0..10_000 {
            store.claim_now(&key(i), Fingerprint([0; 32]), owner, LEASE);
            store.release_now(&key(i), owner);
        }
        let shard = lock(&store.shards[0]);
        assert!(shard.entries.is_empty());
        assert!(
            shard.order.len() <= 64 + 1,
            "{} stale items",
            shard.order.len()
        );
    }
}
