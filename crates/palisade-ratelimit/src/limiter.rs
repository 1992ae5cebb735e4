//! The live state of a limiter: each policy's TATs, and the decision for one request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use palisade_core::clock::Clock;

use crate::config::{Policy, RateLimitConfig};
use crate::error::RateLimited;
use crate::gcra::{Gcra, Verdict};
use crate::key::Key;
use crate::keyed::Keyed;
use crate::metrics::PolicyMetrics;

/// A policy, live.
#[derive(Debug)]
pub(crate) struct Live {
    pub(crate) policy: Policy,
    pub(crate) gcra: Gcra,
    /// The policy's item of the `RateLimit-Policy` field: `"name";q=100;w=60`.
    #[cfg(feature = "http")]
    pub(crate) policy_item: Box<str>,
    /// The same, as a header value: a single policy's `RateLimit-Policy` is a clone.
    #[cfg(feature = "http")]
    pub(crate) policy_value: http::HeaderValue,
    /// The start of the policy's item of the `RateLimit` field: `"name";r=`.
    #[cfg(feature = "http")]
    pub(crate) state_prefix: Box<[u8]>,
    state: State,
    pub(crate) metrics: PolicyMetrics,
}

/// Where a policy keeps its TATs.
#[derive(Debug)]
enum State {
    /// One TAT for every request: a compare-and-swap, no lock.
    Global(AtomicU64),
    /// A TAT a key, bounded.
    Keyed(Keyed<Key>),
}

/// The state of every policy of one limiter, shared by its layer's clones.
#[derive(Debug)]
pub(crate) struct Limiter {
    pub(crate) config: RateLimitConfig,
    pub(crate) policies: Box<[Live]>,
    clock: Clock,
}

impl Limiter {
    /// The live state of `config`; `keyed` says which policies count each key apart.
    pub(crate) fn new(config: RateLimitConfig, keyed: impl Fn(&Policy) -> bool) -> Arc<Self> {
        let policies = config
            .policies
            .iter()
            .map(|policy| Live {
                gcra: policy.quota.gcra(),
                #[cfg(feature = "http")]
                policy_item: policy_item(policy).into(),
                #[cfg(feature = "http")]
                policy_value: http::HeaderValue::try_from(policy_item(policy))
                    .expect("policy names are validated to be header-safe"),
                #[cfg(feature = "http")]
                state_prefix: format!("\"{}\";r=", policy.name).into_bytes().into(),
                state: if keyed(policy) {
                    State::Keyed(Keyed::new(policy.max_keys))
                } else {
                    State::Global(AtomicU64::new(0))
                },
                metrics: PolicyMetrics::new(&config.name, &policy.name),
                policy: policy.clone(),
            })
            .collect();
        Arc::new(Self {
            config,
            policies,
            clock: Clock::new(),
        })
    }

    /// Nanoseconds since the limiter was made.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        self.clock.nanos()
    }

    /// Checks a request against every policy `key_of` gives a key for (`None`: the policy
    /// does not apply), in order, until one refuses; `seen` is told each verdict. The quota
    /// taken by the policies before a refusing one is given back.
    #[inline]
    pub(crate) fn check<'a>(
        &'a self,
        mut key_of: impl FnMut(&Policy) -> Option<Key>,
        mut seen: impl FnMut(&'a Live, &Verdict),
    ) -> Result<(), RateLimited> {
        let now = self.now();
        // One policy, the common case: nothing can have to be given back.
        if let [live] = &*self.policies {
            // Read where the key function left it: moving a key out of its `Option` copied
            // it with wider loads than the stores that wrote it, which the processor could
            // not forward (a stall perf found on every request).
            let key = key_of(&live.policy);
            let Some(key) = &key else {
                return Ok(());
            };
            let verdict = live.decide(key, now);
            seen(live, &verdict);
            return self.count(live, key, &verdict);
        }
        // The policies that admitted, to give back if a later one refuses. A request meets
        // few policies: up to four are remembered without allocating.
        let mut taken: Taken = Taken::default();
        for (index, live) in self.policies.iter().enumerate() {
            let Some(key) = key_of(&live.policy) else {
                continue;
            };
            let verdict = live.decide(&key, now);
            seen(live, &verdict);
            if let Err(refused) = self.count(live, &key, &verdict) {
                for (index, key) in taken.drain() {
                    self.policies[index].refund(&key, now);
                }
                return Err(refused);
            }
            // Only a later policy can refuse and make this one give back.
            if index + 1 < self.policies.len() {
                taken.push(index, key);
            }
        }
        Ok(())
    }

    /// Counts `live`'s verdict on `key`, and makes a refusal of it.
    #[inline]
    fn count(&self, live: &Live, key: &Key, verdict: &Verdict) -> Result<(), RateLimited> {
        if verdict.admitted {
            live.metrics.admitted.increment(1);
            return Ok(());
        }
        Err(self.refused(live, key, verdict))
    }

    #[cold]
    fn refused(&self, live: &Live, key: &Key, verdict: &Verdict) -> RateLimited {
        live.metrics.refused.increment(1);
        tracing::debug!(
            limiter = %self.config.name,
            policy = %live.policy.name,
            key = ?key,
            "rate limited"
        );
        RateLimited::new(
            live.policy.name.clone(),
            live.policy.quota,
            verdict.retry_after(),
        )
    }
}

impl Live {
    #[inline]
    pub(crate) fn decide(&self, key: &Key, now: u64) -> Verdict {
        match &self.state {
            State::Global(tat) => {
                let mut current = tat.load(Relaxed);
                loop {
                    let verdict = self.gcra.decide(current, now, 1);
                    if !verdict.admitted {
                        return verdict;
                    }
                    match tat.compare_exchange_weak(current, verdict.tat, Relaxed, Relaxed) {
                        Ok(_) => return verdict,
                        Err(actual) => current = actual,
                    }
                }
            }
            State::Keyed(keyed) => {
                let (verdict, evicted) = keyed.update(key, now, |tat| {
                    let verdict = self.gcra.decide(tat, now, 1);
                    (verdict.admitted.then_some(verdict.tat), verdict)
                });
                self.metrics.evicted(evicted);
                verdict
            }
        }
    }

    fn refund(&self, key: &Key, now: u64) {
        match &self.state {
            State::Global(tat) => {
                let _ = tat.fetch_update(Relaxed, Relaxed, |t| Some(self.gcra.refund(t, now, 1)));
            }
            State::Keyed(keyed) => {
                keyed.update(key, now, |tat| (Some(self.gcra.refund(tat, now, 1)), ()));
            }
        }
    }
}

/// A policy's item of the `RateLimit-Policy` field: `"name";q=100;w=60`.
#[cfg(feature = "http")]
fn policy_item(policy: &Policy) -> String {
    let (q, w) = policy.quota.quota_and_window();
    format!("\"{}\";q={q};w={w}", policy.name)
}

/// The policies that admitted a request so far, with its key in each.
#[derive(Default)]
struct Taken {
    inline: [Option<(usize, Key)>; 4],
    more: Vec<(usize, Key)>,
}

impl Taken {
    fn push(&mut self, index: usize, key: Key) {
        match self.inline.iter_mut().find(|slot| slot.is_none()) {
            Some(slot) => *slot = Some((index, key)),
            None => self.more.push((index, key)),
        }
    }

    fn drain(&mut self) -> impl Iterator<Item = (usize, Key)> + '_ {
        self.inline
            .iter_mut()
            .filter_map(Option::take)
            .chain(self.more.drain(..))
    }
}
