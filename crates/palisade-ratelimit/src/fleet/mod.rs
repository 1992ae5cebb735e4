//! Fleet mode: one limit for every instance of a service, kept in a [`Store`].
//!
//! Each instance's [`FleetRateLimitLayer`] asks the store, whose decisions are atomic and on
//! its own clock, so four instances behind a load balancer admit what one would, however
//! the balancer spreads each key's traffic.
//!
//! - **Exact** ([`Fleet::exact`]): one take a request, one round trip; the fleet admits
//!   exactly the quota.
//! - **Batched** ([`Fleet::batched`]): an instance takes a lease of several cells at once
//!   and serves them without asking again, for at most [`lease_ttl`](Fleet::lease_ttl);
//!   cells still unused then are dropped. Only one request in `cells` touches the store.
//!   The cost is accuracy: a lease is taken when its first request comes and served until
//!   it runs out or expires, so in any window the fleet may admit up to one lease per
//!   instance more than the quota (cells taken just before the window, served in it), and
//!   drops what expires unused (admitting less). A lease cut short (the store had fewer
//!   cells) is served, and the next is asked for only once a whole one could be granted.
//!   docs/ratelimit.md has the figures.
//! - **Refusals are remembered**: a store that refuses says when a cell will be free, and
//!   nothing frees one sooner (instances only take), so the instance refuses that key on its
//!   own until then (batched: until a whole lease could be granted) — most refusals cost no
//!   round trip.
//! - **When the store fails** ([`OnStoreError`]): admit (fail open, Envoy's default for its
//!   global rate limit), refuse (fail closed), or keep a local limit of a share of each
//!   quota as the floor. Every failure is counted; a store slower than
//!   [`store_timeout`](Fleet::store_timeout) (50 ms) has failed.
//!
//! A request checked against several policies takes from each in turn; a refusal by a later
//! one does not give back what the earlier ones took (that would be one more round trip
//! each): put the policy most likely to refuse first.
//!
//! [`Store`]: crate::store::Store

mod http;
mod shared;

use std::time::Duration;

use palisade_core::ConfigError;

pub use self::http::{FleetRateLimit, FleetRateLimitLayer, FleetResponseFuture};

/// What a fleet member does when the store cannot decide.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum OnStoreError {
    /// Admit the request (fail open): the limit is off while the store is.
    Admit,
    /// Refuse the request (fail closed): `429` with `Retry-After: 1`.
    Refuse,
    /// Limit locally to `share` of each quota (`0.25` for one instance of four): the floor
    /// that holds whatever the store does.
    Local {
        /// The share of each quota this instance keeps to on its own.
        share: f64,
    },
}

/// How a fleet member uses its store; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fleet {
    pub(crate) lease: Option<Lease>,
    pub(crate) on_store_error: OnStoreError,
    pub(crate) store_timeout: Duration,
}

/// Batched mode's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Lease {
    pub(crate) cells: u32,
    pub(crate) ttl: Duration,
}

impl Fleet {
    /// One take a request: the fleet admits exactly the quota, at one round trip each.
    pub fn exact() -> Self {
        Self {
            lease: None,
            on_store_error: OnStoreError::Admit,
            store_timeout: Duration::from_millis(50),
        }
    }

    /// Leases of up to `cells` cells, served locally for at most 100 ms each.
    pub fn batched(cells: u32) -> Self {
        Self {
            lease: Some(Lease {
                cells,
                ttl: Duration::from_millis(100),
            }),
            ..Self::exact()
        }
    }

    /// How long a lease's cells may be served (batched mode).
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        if let Some(lease) = &mut self.lease {
            lease.ttl = ttl;
        }
        self
    }

    /// What to do when the store fails ([`OnStoreError::Admit`] by default).
    pub fn on_store_error(mut self, action: OnStoreError) -> Self {
        self.on_store_error = action;
        self
    }

    /// How long a store may take to answer before it has failed (50 ms).
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(lease) = self.lease {
            if lease.cells == 0 {
                return Err(ConfigError::new("fleet.cells", "must be at least 1"));
            }
            if lease.ttl.is_zero() {
                return Err(ConfigError::new("fleet.lease_ttl", "must be above zero"));
            }
        }
        if let OnStoreError::Local { share } = self.on_store_error
            && !(share > 0.0 && share <= 1.0)
        {
            return Err(ConfigError::new(
                "fleet.on_store_error.share",
                "must be a share of the quota above 0 and at most 1",
            ));
        }
        if self.store_timeout.is_zero() {
            return Err(ConfigError::new(
                "fleet.store_timeout",
                "must be above zero",
            ));
        }
        Ok(())
    }
}
