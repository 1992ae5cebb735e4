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
//!   as a retry is. When an overloaded fleet slows every call, the hedges it would provoke
//!   are refused once the budget is spent, and hedging stops by itself. Retries and hedges
//!   are one count of attempts ([`max_attempts`](crate::RetryConfigBuilder::max_attempts)).
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

pub(crate) use self::future::HedgeFuture;
pub(crate) use self::latency::LatencyTracker;

/// When a hedge is sent: the delay after the last attempt with no answer.
///
/// | | default | why |
/// |---|---|---|
/// | [`floor`](Self::floor) | 1 ms | below it a hedge costs about as much as it saves |
/// | [`cap`](Self::cap) | 1 s | a percentile in a slow spell does not put hedging off for long; also the delay until enough latency is seen (200 attempts) |
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hedge {
    pub(crate) delay: HedgeDelay,
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
        }
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
    /// The chosen percentile of recent attempts (an adaptive delay only).
    percentile: Option<LatencyTracker>,
    /// The median of recent attempts: the least time a hedge needs before the deadline.
    median: LatencyTracker,
}

impl Hedging {
    pub(crate) fn new(hedge: Hedge) -> Self {
        let percentile = match hedge.delay {
            HedgeDelay::Percentile { percentile, .. } => Some(LatencyTracker::new(percentile)),
            HedgeDelay::Fixed(_) => None,
        };
        Self {
            delay: hedge.delay,
            percentile,
            median: LatencyTracker::new(0.5),
        }
    }

    /// The wait before a hedge, now.
    pub(crate) fn delay(&self) -> Duration {
        match (self.delay, &self.percentile) {
            (HedgeDelay::Percentile { floor, cap, .. }, Some(latency)) => {
                latency.get().map_or(cap, |d| d.clamp(floor, cap))
            }
            (HedgeDelay::Fixed(delay), _) | (HedgeDelay::Percentile { cap: delay, .. }, None) => {
                delay
            }
        }
    }

    /// The median attempt's latency, once known.
    pub(crate) fn median(&self) -> Option<Duration> {
        self.median.get()
    }

    /// An attempt's answer took `latency`; returns the delay when it changed.
    pub(crate) fn record(&self, latency: Duration) -> Option<Duration> {
        self.median.record(latency);
        let latency = self.percentile.as_ref()?.record(latency);
        latency.map(|_| self.delay())
    }
}
