//! Hedged requests: an answer that is merely slow is raced by another attempt.
//!
//! One slow replica in a hundred sets the p99 of every request that fans out ("The Tail at
//! Scale", Dean & Barroso). A retry cannot help: nothing failed. A hedge can: when a
//! request has had no answer after a delay, a second attempt is sent — to another endpoint
//! when a balancer is below, which sees the first attempt's endpoint loaded — and the first
//! acceptable answer wins; the others are cancelled (their futures dropped).
//!
//! Turned on by [`RetryConfigBuilder::hedge`](crate::RetryConfigBuilder::hedge); what is
//! hedged, and how many attempts it gets, are the retry layer's own:
//!
//! - **The delay** ([`Hedge`]): fixed, or a percentile of recent latency (the 95th sends a
//!   hedge for about one request in twenty), kept without a lock and bounded by a floor and
//!   a cap.
//! - **The budget**: every hedge is taken from the retry [`Budget`](crate::budget::Budget),
//!   as a retry is, and from a share of recently answered requests of its own
//!   ([`max_extra_load`](Hedge::max_extra_load), 10 %). When an overloaded fleet slows every
//!   call, every request outlasts the recent percentile; the hedges it would provoke are
//!   refused once the share is spent, and hedging stops by itself. Retries and hedges are
//!   one count of attempts ([`max_attempts`](crate::RetryConfigBuilder::max_attempts)).
//! - **Failures** (gRPC A6's hedging): an attempt whose result the policy would retry does
//!   not end the request; the next hedge is sent at once (or after the server's pushback),
//!   and the last failure is returned only when no attempt is left in flight. A result the
//!   policy calls final — a success, or a failure retrying cannot help — wins at once.
//! - **Safe to send twice**: only requests the policy may retry — idempotent methods, or a
//!   request with an `Idempotency-Key` (which
//!   [`idempotency_keys`](crate::RetryConfigBuilder::idempotency_keys) gives a POST before its
//!   first attempt, so that a hedged POST is one operation to a palisade idempotency server).
//!   A streaming body is replayed to the hedges ([`ReplayBody`](crate::http::ReplayBody));
//!   a body over the replay limit is sent once, not hedged.
//! - **Deadlines**: no hedge is sent once the request's deadline has passed, or when what
//!   remains of it is less than the typical (median) attempt takes.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use palisade_retry::{HttpRetryLayer, RetryConfig, hedge::Hedge};
//!
//! let config = RetryConfig::builder("search")
//!     .max_attempts(2) // the first attempt and one hedge
//!     .hedge(Hedge::at_percentile(0.95).cap(Duration::from_millis(200)))
//!     .build()
//!     .unwrap();
//! let layer = HttpRetryLayer::with_config(config);
//! # let _ = layer;
//! ```

mod future;
mod latency;

use std::time::Duration;

use palisade_core::ConfigError;

/// Hedges at most 10 % of recent requests by default.
const DEFAULT_MAX_EXTRA_LOAD: f64 = 0.1;

pub(crate) use self::future::HedgeFuture;
pub(crate) use self::latency::LatencyTracker;

/// When a hedge is sent: the delay after the last attempt with no answer.
///
/// | | default | why |
/// |---|---|---|
/// | [`floor`](Self::floor) | 1 ms | below it a hedge costs about as much as it saves |
/// | [`cap`](Self::cap) | 1 s | a percentile in a slow spell does not put hedging off for long; also the delay until enough latency is seen (200 attempts) |
/// | [`max_extra_load`](Self::max_extra_load) | 10 % of the last 1024–2048 answered requests, + 10 | Finagle's `BackupRequestFilter` bounds backups by a share of requests too |
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hedge {
    pub(crate) delay: HedgeDelay,
    pub(crate) max_extra_load: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum HedgeDelay {
    Fixed(Duration),
    Percentile {
        percentile: f64,
        floor: Duration,
        cap: Duration,
    },
}

impl Hedge {
    /// A hedge after a fixed `delay` (gRPC's `hedgingDelay`; zero sends every attempt at
    /// once).
    pub fn after(delay: Duration) -> Self {
        Self {
            delay: HedgeDelay::Fixed(delay),
            max_extra_load: DEFAULT_MAX_EXTRA_LOAD,
        }
    }

    /// A hedge once a request has waited longer than `percentile` (0.95: the slowest 5 %)
    /// of recent attempts took.
    pub fn at_percentile(percentile: f64) -> Self {
        Self {
            delay: HedgeDelay::Percentile {
                percentile,
                floor: Duration::from_millis(1),
                cap: Duration::from_secs(1),
            },
            max_extra_load: DEFAULT_MAX_EXTRA_LOAD,
        }
    }

    /// The most hedges, as a share of the last 1024 to 2048 or so answered requests (plus
    /// 10), whatever the retry budget still allows.
    ///
    /// The share is counted in the windows the adaptive delay learns from: the latency a
    /// request records when it is answered is its count, so bounding hedges costs a request
    /// nothing more. A share of at least `max_attempts − 1` is not counted at all: every
    /// request may send all its hedges.
    ///
    /// A percentile follows latency from behind: when a whole fleet slows down (an
    /// overload), every request is slower than the recent 95th percentile, and each would
    /// be hedged — doubling the load of a fleet that is already failing to keep up — until
    /// the retry budget runs dry. This share stops that first. Set it above the share the
    /// delay hedges in calm times (`1 − percentile`); above 1, a request may have more than
    /// one hedge (gRPC's hedging policy, which sends every attempt after a fixed delay, is
    /// read with `max_attempts − 1`, so that only its throttling bounds it).
    pub fn max_extra_load(mut self, share: f64) -> Self {
        self.max_extra_load = share;
        self
    }

    /// The shortest delay the percentile may give.
    pub fn floor(mut self, floor: Duration) -> Self {
        if let HedgeDelay::Percentile { floor: f, .. } = &mut self.delay {
            *f = floor;
        }
        self
    }

    /// The longest delay the percentile may give, and the delay until enough latency has
    /// been seen.
    pub fn cap(mut self, cap: Duration) -> Self {
        if let HedgeDelay::Percentile { cap: c, .. } = &mut self.delay {
            *c = cap;
        }
        self
    }

    /// The first bad setting, named as the `hedge` of a retry configuration.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if !(self.max_extra_load > 0.0 && self.max_extra_load.is_finite()) {
            return Err(ConfigError::new(
                "hedge.max_extra_load",
                "must be a share of requests above 0 (0.1: one hedge for ten requests)",
            ));
        }
        match self.delay {
            HedgeDelay::Fixed(_) => Ok(()),
            HedgeDelay::Percentile {
                percentile,
                floor,
                cap,
            } => {
                if !(percentile > 0.0 && percentile < 1.0) {
                    return Err(ConfigError::new(
                        "hedge.percentile",
                        "must be between 0 and 1, exclusive (0.95 for the 95th)",
                    ));
                }
                if cap.is_zero() || floor > cap {
                    return Err(ConfigError::new(
                        "hedge.cap",
                        "must be above zero and at least the floor",
                    ));
                }
                Ok(())
            }
        }
    }
}

/// What the hedging requests of one layer share: the delay, and what it learns from.
#[derive(Debug)]
pub(crate) struct Hedging {
    delay: HedgeDelay,
    /// The latency of recent attempts: the chosen percentile (an adaptive delay), and the
    /// median — the least time a hedge needs before the deadline.
    latency: LatencyTracker,
    /// The share of answered requests that may be hedged; `None` when it cannot bind.
    share: Option<f64>,
}

impl Hedging {
    /// The hedging of a layer whose requests get `max_attempts` each.
    pub(crate) fn new(hedge: Hedge, max_attempts: u32) -> Self {
        let percentile = match hedge.delay {
            HedgeDelay::Percentile { percentile, .. } => percentile,
            HedgeDelay::Fixed(_) => 0.5,
        };
        let hedges_a_request = f64::from(max_attempts.saturating_sub(1));
        Self {
            delay: hedge.delay,
            latency: LatencyTracker::new(percentile),
            share: (hedge.max_extra_load < hedges_a_request).then_some(hedge.max_extra_load),
        }
    }

    /// The wait before a hedge, now.
    pub(crate) fn delay(&self) -> Duration {
        match self.delay {
            HedgeDelay::Fixed(delay) => delay,
            HedgeDelay::Percentile { floor, cap, .. } => {
                self.latency.get().map_or(cap, |d| d.clamp(floor, cap))
            }
        }
    }

    /// Asks for one hedge within the share.
    pub(crate) fn withdraw(&self) -> bool {
        self.share
            .is_none_or(|share| self.latency.take_hedge(share))
    }

    /// The median attempt's latency, once known.
    pub(crate) fn median(&self) -> Option<Duration> {
        self.latency.median()
    }

    /// An attempt's answer took `latency`; returns the delay when it changed.
    #[inline]
    pub(crate) fn record(&self, latency: Duration) -> Option<Duration> {
        let recomputed = self.latency.record(latency);
        match self.delay {
            HedgeDelay::Percentile { .. } => recomputed.map(|_| self.delay()),
            HedgeDelay::Fixed(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_that_cannot_bind_is_not_counted() {
        // gRPC's hedging policy: every request may send all of its hedges at once, before
        // anything is answered.
        let all = Hedging::new(Hedge::after(Duration::ZERO).max_extra_load(2.0), 3);
        assert!((0..100).all(|_| all.withdraw()));
        // A share below two hedges a request is counted: before any answer, only the reserve.
        let counted = Hedging::new(Hedge::after(Duration::ZERO).max_extra_load(1.5), 3);
        let reserve = latency::HEDGE_RESERVE as usize;
        assert_eq!((0..100).filter(|_| counted.withdraw()).count(), reserve);
    }
}
