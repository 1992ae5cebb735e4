//! The TATs of many keys, in bounded memory.
//!
//! governor's keyed limiter keeps every key it has seen in a concurrent map until
//! `retain_recent` is called; an attacker who cycles source addresses grows it without
//! bound. Here the keys live in shards, each with a fixed share of
//! [`max_keys`](crate::PolicyBuilder::max_keys) and a read-write lock, held for a few
//! instructions and never across an await: a known key's TAT is an atomic, moved with a
//! compare-and-swap under the shared lock, so that the threads of a server all meeting one
//! busy key do not queue for its shard; a new key takes the lock exclusively.
//! A shard that is full when a new key comes first drops its idle keys — a key whose TAT has
//! passed holds exactly what a fresh key holds, so that costs nothing in accuracy — and, if
//! none is idle, the eighth of its keys nearest to idle: those get a fresh burst a little
//! early, the only error the bound can cause, and one that falls on the quietest keys. The
//! busiest keys, the ones a limit exists for, are the last to go.

use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{PoisonError, RwLock};

use hashbrown::HashTable;

/// One shard: each key with its value (a TAT, or a lease). The hash is not kept: an
/// address key and a TAT fill 32 bytes, two entries a cache line, and a lookup among many
/// keys is one cache miss, not two when an entry straddles lines. A shard that grows hashes
/// its keys again, a handful of times in its life.
type Shard<K, V> = HashTable<(K, <V as Idle>::Stored)>;

/// A value kept for a key, and the time after which the key holds nothing a new key does
/// not (it is idle, and may be dropped without error).
pub(crate) trait Idle: Copy + Default {
    /// The value as a shard holds it.
    type Stored;

    /// Whether a known key's value is updated under the shard's shared lock
    /// ([`update_shared`](Self::update_shared)), or under its exclusive one.
    const SHARED: bool;

    /// The time, on the limiter's clock, from which the key is idle.
    fn idle_from(&self) -> u64;

    /// The value as a new key's entry holds it.
    fn store(self) -> Self::Stored;

    /// The value an entry holds now.
    fn load(stored: &Self::Stored) -> Self;

    /// Sets an entry's value, under the shard's exclusive lock.
    fn replace(stored: &mut Self::Stored, value: Self);

    /// Updates a known key's value under the shard's shared lock, if the value can be
    /// (a TAT is one atomic word); `None` if it takes the exclusive lock. `decide` may run
    /// more than once, when another thread changed the value meanwhile.
    fn update_shared<T>(
        _stored: &Self::Stored,
        _decide: &mut impl FnMut(Self) -> (Option<Self>, T),
    ) -> Option<T> {
        None
    }
}

/// A TAT: the key is idle once it has passed. Kept in an atomic, so that every thread
/// that meets a busy key (one client's flood, a big tenant) updates it at once under the
/// shard's shared lock, with a compare-and-swap, instead of queueing for the shard.
impl Idle for u64 {
    type Stored = AtomicU64;
    const SHARED: bool = true;

    fn idle_from(&self) -> u64 {
        *self
    }

    fn store(self) -> AtomicU64 {
        AtomicU64::new(self)
    }

    fn load(stored: &AtomicU64) -> Self {
        stored.load(Relaxed)
    }

    fn replace(stored: &mut AtomicU64, value: Self) {
        *stored.get_mut() = value;
    }

    #[inline]
    fn update_shared<T>(
        stored: &AtomicU64,
        decide: &mut impl FnMut(u64) -> (Option<u64>, T),
    ) -> Option<T> {
        let mut current = stored.load(Relaxed);
        loop {
            let (new, out) = decide(current);
            let Some(new) = new else {
                return Some(out);
            };
            match stored.compare_exchange_weak(current, new, Relaxed, Relaxed) {
                Ok(_) => return Some(out),
                Err(actual) => current = actual,
            }
        }
    }
}

/// How the keys fared when a full shard made room.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Evicted {
    /// Idle keys dropped: no error.
    pub(crate) idle: usize,
    /// Keys dropped before they were idle: given a fresh burst early.
    pub(crate) early: usize,
}

/// Keys and their TATs (or leases), at most `max_keys` of them.
pub(crate) struct Keyed<K, V: Idle = u64> {
    shards: Box<[RwLock<Shard<K, V>>]>,
    /// The keys a shard may hold.
    per_shard: usize,
    /// Keyed hashing: the keys come from the network, and a hash an attacker can predict
    /// lets them pile every key into one bucket. aHash, seeded from the OS's random source,
    /// is built against that (as std's SipHash is) at a fifth of SipHash's instructions on
    /// an address: hashing was the largest part of a keyed decision.
    hasher: ahash::RandomState,
}

impl<K: Hash + Eq + Clone, V: Idle> Keyed<K, V> {
    pub(crate) fn new(max_keys: usize) -> Self {
        let parallelism = std::thread::available_parallelism().map_or(4, |n| n.get());
        // Enough shards that threads rarely meet on one, few enough that each holds many
        // keys (a small shard evicts early more often). Sixteen a core (governor's map has
        // four): chosen when every update took a shard's lock exclusively, when two threads
        // on 10 000 keys cost 0.94× governor's with sixteen, 1.06× with four
        // (`cargo bench -p palisade-criterion --bench ratelimit -- 2-thread/.*keyed-10000`).
        let shards = (parallelism * 16)
            .next_power_of_two()
            .min(max_keys.next_power_of_two() / 64)
            .max(1);
        Self {
            shards: (0..shards).map(|_| RwLock::new(HashTable::new())).collect(),
            per_shard: max_keys.div_ceil(shards).max(1),
            hasher: ahash::RandomState::new(),
        }
    }

    /// Runs `decide` on `key`'s value (the default for a key not held) and stores what it
    /// returns, unless it returns `None`. Returns what `decide` did and what was evicted to
    /// make room. `decide` may run more than once (see [`Idle::update_shared`]): it must
    /// depend on nothing but the value it is given.
    #[inline]
    pub(crate) fn update<T>(
        &self,
        key: &K,
        now: u64,
        mut decide: impl FnMut(V) -> (Option<V>, T),
    ) -> (T, Evicted) {
        let hash = self.hasher.hash_one(key);
        let shard = self.shard(hash);
        if V::SHARED {
            let shared = shard.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(entry) = shared.find(hash, |entry| entry.0 == *key)
                && let Some(out) = V::update_shared(&entry.1, &mut decide)
            {
                return (out, Evicted::default());
            }
        }
        // A new key (or a value that needs the shard to itself).
        let mut shard = shard.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = shard.find_mut(hash, |entry| entry.0 == *key) {
            let (store, out) = decide(V::load(&entry.1));
            if let Some(new) = store {
                V::replace(&mut entry.1, new);
            }
            return (out, Evicted::default());
        }
        let (store, out) = decide(V::default());
        let mut evicted = Evicted::default();
        if let Some(new) = store {
            if shard.len() >= self.per_shard {
                evicted = make_room::<K, V>(&mut shard, now, self.per_shard);
            }
            // Only a new key is copied: a known one is found by reference.
            shard.insert_unique(hash, (key.clone(), new.store()), |entry| {
                self.hasher.hash_one(&entry.0)
            });
        }
        (out, evicted)
    }

    /// The keys held now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// The shard of `hash`. (A panic elsewhere while its lock was held leaves TATs that are
    /// still TATs: a poisoned lock is taken as it is.)
    fn shard(&self, hash: u64) -> &RwLock<Shard<K, V>> {
        // The high bits pick the shard; the table inside uses the low ones.
        &self.shards[(hash >> 48) as usize & (self.shards.len() - 1)]
    }
}

/// Drops the idle keys of a full shard, or, if none is, the eighth nearest to idle.
fn make_room<K, V: Idle>(shard: &mut Shard<K, V>, now: u64, per_shard: usize) -> Evicted {
    let before = shard.len();
    shard.retain(|entry| V::load(&entry.1).idle_from() > now);
    let idle = before - shard.len();
    if shard.len() < per_shard {
        return Evicted { idle, early: 0 };
    }
    let mut tats: Vec<u64> = shard
        .iter()
        .map(|entry| V::load(&entry.1).idle_from())
        .collect();
    let nth = (tats.len() / 8).max(1) - 1;
    let (below, &mut threshold, _) = tats.select_nth_unstable(nth);
    // Exactly `nth + 1` keys go: every one below the threshold, and as many at it as that
    // leaves (a flood at one instant has every TAT alike: the shard must not empty).
    let mut ties = nth + 1 - below.iter().filter(|&&t| t < threshold).count();
    let kept = shard.len();
    shard.retain(|entry| {
        let idle_from = V::load(&entry.1).idle_from();
        if idle_from == threshold && ties > 0 {
            ties -= 1;
            return false;
        }
        idle_from >= threshold
    });
    Evicted {
        idle,
        early: kept - shard.len(),
    }
}

impl<K, V: Idle> std::fmt::Debug for Keyed<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyed")
            .field("shards", &self.shards.len())
            .field("per_shard", &self.per_shard)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Admits and moves the TAT `interval` ahead, as an admission does.
    fn touch(keyed: &Keyed<u64>, key: u64, now: u64, interval: u64) -> Evicted {
        keyed
            .update(&key, now, |tat| (Some(tat.max(now) + interval), ()))
            .1
    }

    #[test]
    fn each_limiter_hashes_with_a_key_of_its_own() {
        // A hash an attacker could compute offline would let them choose keys that pile
        // into one slot: the same key hashes differently in two limiters (and two runs).
        let (a, b) = (Keyed::<u64>::new(1_000), Keyed::<u64>::new(1_000));
        let differ = (0..8u64).filter(|key| a.hasher.hash_one(key) != b.hasher.hash_one(key));
        assert_eq!(differ.count(), 8);
    }

    #[test]
    fn a_flood_of_unique_keys_stays_within_the_bound() {
        let keyed = Keyed::new(1_000);
        let mut early = 0;
        for key in 0..100_000 {
            // Every key busy for a minute: none is idle when the flood goes on.
            early += touch(&keyed, key, key, 60_000_000_000).early;
        }
        assert!(keyed.len() <= 1_000, "{} keys held", keyed.len());
        assert!(early > 0, "room was made early");
    }

    #[test]
    fn a_flood_at_one_instant_evicts_an_eighth_not_the_shard() {
        let keyed = Keyed::new(64);
        for key in 0..64 {
            touch(&keyed, key, 0, 1_000);
        }
        let evicted = touch(&keyed, 64, 0, 1_000);
        assert_eq!(evicted, Evicted { idle: 0, early: 8 });
        assert_eq!(keyed.len(), 64 - 8 + 1);
    }

    #[test]
    fn idle_keys_go_first_and_the_busiest_key_stays() {
        let keyed = Keyed::new(64);
        // A greedy key far ahead of now, then a flood of keys that are soon idle.
        touch(&keyed, u64::MAX, 0, 1_000_000_000_000);
        let mut evicted = Evicted::default();
        for key in 0..10_000 {
            let e = touch(&keyed, key, key * 10, 5);
            evicted.idle += e.idle;
            evicted.early += e.early;
        }
        assert!(evicted.idle > 0);
        assert_eq!(evicted.early, 0, "idle keys were always enough");
        let (tat, _) = keyed.update(&u64::MAX, 100_000, |tat| (None, tat));
        assert_eq!(tat, 1_000_000_000_000, "the greedy key kept its state");
    }
}
