//! How many requests may run at once: a [`Limit`] watches what finished requests measured
//! and moves the limit.
//!
//! - [`Fixed`]: a number someone chose. What tower's `ConcurrencyLimit` offers.
//! - [`Aimd`]: additive increase while latency stays under a threshold, multiplicative
//!   decrease when it does not (Netflix's `AIMDLimit`, TCP's congestion control). Simple and
//!   robust; it needs a latency threshold, which is easier to pick than a concurrency.
//! - [`Gradient`]: compares recent latency with the minimum latency the server shows when it
//!   is not queueing, measured again periodically, and scales the limit by their ratio
//!   (Envoy's adaptive concurrency, Netflix's `Gradient2`). Nothing to tune: the default.

mod aimd;
mod config;
mod fixed;
mod gradient;

use std::time::Duration;

use palisade_core::ConfigError;
use std::time::Instant;

pub use self::aimd::Aimd;
pub use self::config::LimitConfig;
pub use self::fixed::Fixed;
pub use self::gradient::Gradient;

/// What one finished request measured.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When it finished (`std`'s instant: under tokio's paused clock, the paused time).
    pub at: Instant,
    /// From admission to response.
    pub latency: Duration,
    /// Requests in flight when it was admitted, itself included.
    pub inflight: usize,
}

/// An algorithm that sets the concurrency limit from samples.
///
/// The layer calls it from the completion of requests, one call at a time (a sample that
/// arrives while another is being processed is skipped rather than waited for), and never
/// on the admission path.
pub trait Limit: Send {
    /// The limit to start with.
    fn initial(&self) -> usize;

    /// The new limit after `sample`, given the current one.
    fn update(&mut self, limit: usize, sample: Sample) -> usize;

    /// The lowest and highest limits it may set, for validation and for the handle.
    fn bounds(&self) -> (usize, usize);

    /// Whether it learns from samples. One that does not (a fixed limit) spares every
    /// request two readings of the clock, and the latency histogram stays empty.
    fn needs_samples(&self) -> bool {
        true
    }
}

/// Checks an algorithm's bounds: `1 <= min <= initial <= max`.
pub(crate) fn check_bounds(min: usize, initial: usize, max: usize) -> Result<(), ConfigError> {
    if min == 0 {
        return Err(ConfigError::new("limit.min", "must be at least 1"));
    }
    if !(min..=max).contains(&initial) {
        return Err(ConfigError::new(
            "limit.initial",
            "must be between the minimum and the maximum",
        ));
    }
    Ok(())
}
