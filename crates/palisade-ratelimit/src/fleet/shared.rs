//! What every clone of a fleet layer shares: the limiter, the store, the leases, the floor.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;

use super::{Fleet, Lease, OnStoreError};
use crate::config::RateLimitConfig;
use crate::error::RateLimited;
use crate::gcra::Verdict;
use crate::http::fields::Fields;
use crate::key::Key;
use crate::keyed::{Idle, Keyed};
use crate::limiter::Limiter;
use crate::metrics::StoreMetrics;
use crate::quota::Quota;
use crate::store::{Store, StoreError, Take};

/// What an instance knows of a key without asking the store: a lease's cells not yet
/// served and until when they may be, or a refusal and until when it holds.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Cells {
    left: u32,
    until: u64,
    /// The store refused until then: no cell can be free sooner, since other instances only
    /// take.
    refused_until: u64,
    /// When the store said the key would be whole again.
    whole_at: u64,
}

/// A lease is several words, changed together: under the shard's exclusive lock.
impl Idle for Cells {
    type Stored = Self;
    const SHARED: bool = false;

    fn idle_from(&self) -> u64 {
        let lease = if self.left == 0 { 0 } else { self.until };
        lease.max(self.refused_until)
    }

    fn store(self) -> Self {
        self
    }

    fn load(stored: &Self) -> Self {
        *stored
    }

    fn replace(stored: &mut Self, value: Self) {
        *stored = value;
    }
}

/// What an instance can decide for a key on its own.
pub(super) enum Local {
    /// Served from a lease.
    Served,
    /// Refused: the store refused a moment ago, and no cell is free yet.
    Refused(Verdict),
    /// Only the store can say.
    Ask,
}

/// The fields of an admitted request, or the refusal with its fields.
pub(super) type Checked =
    Result<Option<(HeaderValue, HeaderValue)>, (RateLimited, Option<(HeaderValue, HeaderValue)>)>;

pub(super) struct Shared {
    pub(super) limiter: Arc<Limiter>,
    store: Arc<dyn Store>,
    fleet: Fleet,
    /// Each policy's leases (batched mode) and cached refusals.
    leases: Box<[Keyed<Key, Cells>]>,
    /// `OnStoreError::Local`: each quota's share, kept here.
    floor: Option<Arc<Limiter>>,
    metrics: StoreMetrics,
}

impl Shared {
    pub(super) fn new(config: RateLimitConfig, fleet: Fleet, store: Arc<dyn Store>) -> Self {
        let keyed = |policy: &crate::config::Policy| !policy.key.is_global();
        let floor = match fleet.on_store_error {
            OnStoreError::Local { share } => Some(Limiter::new(scaled(&config, share), keyed)),
            _ => None,
        };
        let leases = config
            .policies
            .iter()
            .map(|p| Keyed::new(p.max_keys))
            .collect();
        Self {
            metrics: StoreMetrics::new(&config.name),
            limiter: Limiter::new(config, keyed),
            store,
            fleet,
            leases,
            floor,
        }
    }

    /// Decides a request of one policy on what the instance knows: a cell left in its lease,
    /// or a refusal that still holds.
    pub(super) fn local(&self, index: usize, key: &Key) -> Local {
        let live = &self.limiter.policies[index];
        let now = self.limiter.now();
        let (local, _) = self.leases[index].update(key, now, |cells| {
            if cells.left > 0 && cells.until > now {
                let left = Cells {
                    left: cells.left - 1,
                    ..cells
                };
                (Some(left), Local::Served)
            } else if cells.refused_until > now {
                let verdict = Verdict::reported(
                    false,
                    cells.whole_at.saturating_sub(now),
                    cells.refused_until - now,
                    live.gcra,
                );
                (None, Local::Refused(verdict))
            } else {
                (None, Local::Ask)
            }
        });
        match local {
            Local::Served => live.metrics.admitted.increment(1),
            Local::Refused(_) => live.metrics.refused.increment(1),
            Local::Ask => {}
        }
        local
    }

    /// The refusal of a request by policy `index`.
    pub(super) fn refusal(&self, index: usize, verdict: &Verdict) -> RateLimited {
        let live = &self.limiter.policies[index];
        RateLimited::new(
            live.policy.name.clone(),
            live.policy.quota,
            verdict.retry_after(),
        )
    }

    /// The fields of a refusal by policy `index`.
    pub(super) fn refusal_fields(
        &self,
        index: usize,
        verdict: &Verdict,
    ) -> Option<(HeaderValue, HeaderValue)> {
        let mut fields = Fields::default();
        fields.push(&self.limiter.policies[index], verdict);
        fields.into_values()
    }

    /// Checks `keys` (policy index, key) in order against the store.
    pub(super) async fn check(&self, keys: Vec<(usize, Key)>, want_fields: bool) -> Checked {
        let mut fields = Fields::default();
        for (index, key) in keys {
            let live = &self.limiter.policies[index];
            let verdict = match self.local(index, &key) {
                Local::Served => continue,
                Local::Refused(verdict) => {
                    return Err((
                        self.refusal(index, &verdict),
                        self.refusal_fields(index, &verdict),
                    ));
                }
                Local::Ask => match self.take(index, &key).await {
                    Ok(verdict) => verdict,
                    Err(error) => match self.on_error(index, &key, error) {
                        Some(verdict) => verdict,
                        None => continue,
                    },
                },
            };
            if verdict.admitted {
                live.metrics.admitted.increment(1);
                if want_fields {
                    fields.push(live, &verdict);
                }
                continue;
            }
            live.metrics.refused.increment(1);
            return Err((
                self.refusal(index, &verdict),
                self.refusal_fields(index, &verdict),
            ));
        }
        Ok(fields.into_values())
    }

    /// One take from the store: one cell, or a lease (of which this request is the first).
    async fn take(&self, index: usize, key: &Key) -> Result<Verdict, StoreError> {
        let live = &self.limiter.policies[index];
        let name = store_key(&live.policy.name, key);
        let cells = self.fleet.lease.map_or(1, |lease| lease.cells);
        let take = Take::new(
            &name,
            live.policy.quota.interval(),
            live.policy.quota.burst_size(),
            cells,
        );
        let grant =
            match tokio::time::timeout(self.fleet.store_timeout, self.store.take(take)).await {
                Ok(Ok(grant)) => {
                    self.metrics.call();
                    grant
                }
                Ok(Err(error)) => return Err(error),
                Err(_) => {
                    return Err(StoreError::new(format!(
                        "no answer within {:?}",
                        self.fleet.store_timeout
                    )));
                }
            };
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let now = self.limiter.now();
        if grant.granted == 0 {
            let over = grant.retry_after.map_or(u64::MAX, nanos);
            // Remembered: until then, the same answer without asking. In batched mode, until
            // a whole lease could be granted: under overload every instance would otherwise
            // ask for each cell as it comes free, one round trip a cell.
            let lease_wait = self.fleet.lease.map_or(0, |lease| {
                u64::from(lease.cells.saturating_sub(1)).saturating_mul(live.gcra.interval)
            });
            self.leases[index].update(key, now, |cells| {
                let refused = Cells {
                    refused_until: now.saturating_add(over).saturating_add(lease_wait),
                    whole_at: now.saturating_add(nanos(grant.ahead)),
                    ..cells
                };
                (Some(refused), ())
            });
            return Ok(Verdict::reported(
                false,
                nanos(grant.ahead),
                over,
                live.gcra,
            ));
        }
        if let Some(Lease { ttl, cells: wanted }) = self.fleet.lease {
            let until = now.saturating_add(nanos(ttl));
            // A lease cut short (the store had fewer cells): once it is served, the next
            // whole lease is that many intervals away, and asking sooner would only fetch
            // crumbs, a round trip each.
            let short = u64::from(wanted - grant.granted).saturating_mul(live.gcra.interval);
            self.leases[index].update(key, now, |cells| {
                let left = if cells.until > now { cells.left } else { 0 };
                let cells = Cells {
                    left: left.saturating_add(grant.granted - 1),
                    until,
                    refused_until: now.saturating_add(short),
                    whole_at: now.saturating_add(nanos(grant.ahead)),
                };
                (Some(cells), ())
            });
        }
        Ok(Verdict::reported(true, nanos(grant.ahead), 0, live.gcra))
    }

    /// What a failed take decides, as configured: `None` admits without a verdict.
    fn on_error(&self, index: usize, key: &Key, error: StoreError) -> Option<Verdict> {
        let live = &self.limiter.policies[index];
        self.metrics.failed();
        tracing::warn!(
            limiter = %self.limiter.config.name,
            policy = %live.policy.name,
            %error,
            action = ?self.fleet.on_store_error,
            "the rate limit store failed"
        );
        match self.fleet.on_store_error {
            OnStoreError::Admit => None,
            OnStoreError::Refuse => Some(Verdict::reported(false, 0, 1_000_000_000, live.gcra)),
            OnStoreError::Local { .. } => {
                let floor = self
                    .floor
                    .as_ref()
                    .expect("a floor for OnStoreError::Local");
                Some(floor.policies[index].decide(key, floor.now()))
            }
        }
    }
}

/// The store's name of `key` under `policy`: `{policy}:{key}`.
fn store_key(policy: &str, key: &Key) -> Vec<u8> {
    let mut name = Vec::with_capacity(policy.len() + 24);
    name.extend_from_slice(policy.as_bytes());
    name.push(b':');
    match key {
        Key::Global => name.push(b'*'),
        Key::Absent => name.push(b'-'),
        Key::Ip(ip) => name.extend_from_slice(format!("ip:{ip}").as_bytes()),
        Key::Number(n) => name.extend_from_slice(format!("n:{n}").as_bytes()),
        Key::Text(bytes) => {
            name.extend_from_slice(b"t:");
            name.extend_from_slice(bytes);
        }
    }
    name
}

/// `config` with each quota cut to `share` (at least one request, a burst of one).
fn scaled(config: &RateLimitConfig, share: f64) -> RateLimitConfig {
    let mut config = config.clone();
    for policy in &mut config.policies {
        let quota = policy.quota;
        let cut = |n: u32| ((f64::from(n) * share).ceil() as u32).max(1);
        policy.quota =
            Quota::new(cut(quota.count()), quota.period()).burst(cut(quota.burst_size()));
    }
    config
}
