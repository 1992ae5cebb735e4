//! Keyed breakers: one breaker per key taken from the request, in bounded memory.
//!
//! One upstream host failing should not open the breaker for every host a client calls,
//! nor one tenant's failing route for every tenant. [`KeyedBreakers`] keeps a breaker per
//! key (host, route, tenant, ...), made on first use from one [`BreakerConfig`]. Memory is
//! bounded twice: a key unused for the idle timeout is dropped, and at most `max_keys`
//! breakers live at once — when a new key would exceed it, idle keys go first, then the
//! least recently used.

use std::borrow::Cow;
use std::fmt::Display;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry as Slot;
use palisade_core::ConfigError;
use palisade_core::clock::Clock;

use crate::config::BreakerConfig;
use crate::handle::BreakerHandle;
use crate::pick::PickBreaker;
use crate::shared::Shared;

const SHARDS: usize = 16;

/// A breaker per key; use it with [`CircuitBreakerLayer::keyed`](crate::CircuitBreakerLayer::keyed)
/// or [`HttpCircuitBreakerLayer::keyed`](crate::HttpCircuitBreakerLayer::keyed).
///
/// Each breaker is named `<config name>:<key>`, which labels its metrics: keep keys few and
/// bounded (hosts, routes, tenants), never user-chosen strings.
///
/// ```
/// use palisade_breaker::{BreakerConfig, KeyedBreakers};
///
/// // One breaker per upstream host.
/// let breakers = KeyedBreakers::new(
///     BreakerConfig::builder("upstream").build().unwrap(),
///     |request: &http::Request<()>| request.uri().host().unwrap_or("").to_owned(),
/// );
/// assert!(breakers.get(&"example.com".to_owned()).is_none(), "made on first use");
/// ```
pub struct KeyedBreakers<K, F> {
    registry: Arc<Registry<K>>,
    key: F,
}

impl<K, F> std::fmt::Debug for KeyedBreakers<K, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedBreakers").finish_non_exhaustive()
    }
}

impl<K, F: Clone> Clone for KeyedBreakers<K, F> {
    fn clone(&self) -> Self {
        Self {
            registry: Arc::clone(&self.registry),
            key: self.key.clone(),
        }
    }
}

/// One shard: each key with its breaker.
type Shard<K> = HashTable<(K, Entry)>;

struct Registry<K> {
    config: BreakerConfig,
    max_keys: usize,
    idle_timeout: Duration,
    /// Read on every call, for the key's last use: the time-stamp counter rather than
    /// `clock_gettime` (tokio's clock under `test-util`), as the breaker's own windows.
    clock: Clock,
    /// One hash a call picks the shard (high bits) and the slot in it (low bits). aHash
    /// under a random key: keys come from requests, and must not be aimed at one slot.
    hasher: ahash::RandomState,
    shards: Box<[RwLock<Shard<K>>]>,
    len: AtomicUsize,
    /// When idle keys were last swept (milliseconds on `clock`).
    last_sweep: AtomicU64,
}

struct Entry {
    breaker: BreakerHandle,
    /// Milliseconds on the registry's `clock`.
    last_used: AtomicU64,
}

impl<K, F> KeyedBreakers<K, F> {
    /// A breaker per key of `key(&request)`, each configured by `config`; at most 10 000
    /// keys, each dropped after 10 minutes unused.
    pub fn new<Req>(config: BreakerConfig, key: F) -> Self
    where
        F: Fn(&Req) -> K,
    {
        Self {
            registry: Arc::new(Registry {
                config,
                max_keys: 10_000,
                idle_timeout: Duration::from_secs(600),
                clock: Clock::new(),
                hasher: ahash::RandomState::new(),
                shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
                len: AtomicUsize::new(0),
                last_sweep: AtomicU64::new(0),
            }),
            key,
        }
    }

    /// Sets the bounds: at most `max_keys` breakers (at least 1), each dropped once unused
    /// for `idle_timeout` (longer than zero). An idle breaker is dropped even if open: when
    /// its key comes back it starts closed, which is what a key unused that long deserves.
    pub fn with_limits(
        mut self,
        max_keys: usize,
        idle_timeout: Duration,
    ) -> Result<Self, ConfigError> {
        if max_keys == 0 {
            return Err(ConfigError::new("max_keys", "must be at least 1"));
        }
        if idle_timeout.is_zero() {
            return Err(ConfigError::new("idle_timeout", "must be longer than zero"));
        }
        let registry = Arc::get_mut(&mut self.registry).ok_or_else(|| {
            ConfigError::new("max_keys", "must be set before the breakers are shared")
        })?;
        registry.max_keys = max_keys;
        registry.idle_timeout = idle_timeout;
        Ok(self)
    }

    /// How many keys have a breaker now.
    pub fn len(&self) -> usize {
        self.registry.len.load(Relaxed)
    }

    /// Whether no key has a breaker.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Hash + Eq + Clone + Display, F> KeyedBreakers<K, F> {
    /// The breaker of `key`, if it has one.
    pub fn get(&self, key: &K) -> Option<BreakerHandle> {
        let registry = &self.registry;
        let hash = registry.hasher.hash_one(key);
        let shard = registry
            .shard(hash)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        shard
            .find(hash, |(k, _)| k == key)
            .map(|(_, e)| e.breaker.clone())
    }
}

impl<K: Hash + Eq + Clone + Display> Registry<K> {
    fn shard(&self, hash: u64) -> &RwLock<Shard<K>> {
        // Bits the table inside does not use: its slot takes the low ones, its tag the top 7.
        &self.shards[(hash >> 48) as usize % SHARDS]
    }

    fn now_ms(&self) -> u64 {
        self.clock.nanos() / 1_000_000
    }

    fn breaker(&self, key: K) -> BreakerHandle {
        let now = self.now_ms();
        let hash = self.hasher.hash_one(&key);
        let shard = self.shard(hash);
        if let Some((_, entry)) = shard
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .find(hash, |(k, _)| *k == key)
        {
            if entry.last_used.load(Relaxed) != now {
                entry.last_used.store(now, Relaxed);
            }
            return entry.breaker.clone();
        }
        let idle_ms = u64::try_from(self.idle_timeout.as_millis()).unwrap_or(u64::MAX);
        let swept = self.last_sweep.load(Relaxed);
        if self.len.load(Relaxed) >= self.max_keys
            || (now.saturating_sub(swept) >= idle_ms
                && self
                    .last_sweep
                    .compare_exchange(swept, now, Relaxed, Relaxed)
                    .is_ok())
        {
            self.make_room(now, idle_ms);
        }
        let mut map = shard.write().unwrap_or_else(PoisonError::into_inner);
        let rehash = |(k, _): &(K, Entry)| self.hasher.hash_one(k);
        match map.entry(hash, |(k, _)| *k == key, rehash) {
            // Made by another caller between the read and the write lock.
            Slot::Occupied(slot) => slot.get().1.breaker.clone(),
            Slot::Vacant(slot) => {
                self.len.fetch_add(1, Relaxed);
                let config = BreakerConfig {
                    name: Arc::from(format!("{}:{key}", self.config.name)),
                    ..self.config.clone()
                };
                let breaker = BreakerHandle::new(Shared::new(config));
                let entry = Entry {
                    breaker: breaker.clone(),
                    last_used: AtomicU64::new(now),
                };
                slot.insert((key, entry));
                breaker
            }
        }
    }

    /// Drops idle keys; then, if the registry is still full, the least recently used key.
    fn make_room(&self, now: u64, idle_ms: u64) {
        let mut oldest: Option<(u64, usize)> = None;
        for (index, shard) in self.shards.iter().enumerate() {
            let mut map = shard.write().unwrap_or_else(PoisonError::into_inner);
            let before = map.len();
            map.retain(|(_, e)| now.saturating_sub(e.last_used.load(Relaxed)) < idle_ms);
            self.len.fetch_sub(before - map.len(), Relaxed);
            if let Some(used) = map.iter().map(|(_, e)| e.last_used.load(Relaxed)).min()
                && oldest.is_none_or(|(t, _)| used < t)
            {
                oldest = Some((used, index));
            }
        }
        if self.len.load(Relaxed) < self.max_keys {
            return;
        }
        if let Some((used, index)) = oldest {
            let mut map = self.shards[index]
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let before = map.len();
            // One key at most: the first as old as the oldest.
            let mut found = false;
            map.retain(|(_, e)| {
                let victim = !found && e.last_used.load(Relaxed) <= used;
                found |= victim;
                !victim
            });
            self.len.fetch_sub(before - map.len(), Relaxed);
        }
    }
}

impl<K, F, Req> PickBreaker<Req> for KeyedBreakers<K, F>
where
    K: Hash + Eq + Clone + Display,
    F: Fn(&Req) -> K,
{
    fn pick(&self, request: &Req) -> Cow<'_, BreakerHandle> {
        Cow::Owned(self.registry.breaker((self.key)(request)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::State;

    fn breakers(max_keys: usize) -> KeyedBreakers<String, fn(&String) -> String> {
        let config = BreakerConfig::builder("test")
            .consecutive_failures(1)
            .build()
            .unwrap();
        KeyedBreakers::new(config, String::clone as fn(&String) -> String)
            .with_limits(max_keys, Duration::from_secs(60))
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn each_key_has_its_own_breaker() {
        let breakers = breakers(10);
        let a = breakers.pick(&"a".to_owned());
        let b = breakers.pick(&"b".to_owned());
        a.force_open();
        assert_eq!(a.state(), State::ForcedOpen);
        assert_eq!(b.state(), State::Closed);
        assert_eq!(a.name(), "test:a");
        assert_eq!(
            breakers.get(&"a".to_owned()).unwrap().state(),
            State::ForcedOpen
        );
        assert_eq!(breakers.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn memory_is_bounded_and_idle_keys_go_first() {
        let breakers = breakers(3);
        for key in ["a", "b", "c"] {
            breakers.pick(&key.to_owned());
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        // "a" is used again, so "b" is the least recently used.
        breakers.pick(&"a".to_owned());
        breakers.pick(&"d".to_owned());
        assert_eq!(breakers.len(), 3);
        assert!(breakers.get(&"b".to_owned()).is_none());
        assert!(breakers.get(&"a".to_owned()).is_some());

        // After the idle timeout every old key goes at once.
        tokio::time::advance(Duration::from_secs(61)).await;
        breakers.pick(&"e".to_owned());
        assert_eq!(breakers.len(), 1);
        assert!(breakers.get(&"e".to_owned()).is_some());
    }

    #[test]
    fn bad_limits_name_their_field() {
        let config = BreakerConfig::builder("test").build().unwrap();
        let keyed = || KeyedBreakers::new(config.clone(), |s: &String| s.clone());
        assert_eq!(
            keyed()
                .with_limits(0, Duration::from_secs(1))
                .err()
                .unwrap()
                .field(),
            "max_keys"
        );
        assert_eq!(
            keyed()
                .with_limits(1, Duration::ZERO)
                .err()
                .unwrap()
                .field(),
            "idle_timeout"
        );
    }
}
