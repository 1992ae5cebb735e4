//! [`Clock`]: nanoseconds on a monotonic clock, cheap enough to read on every request.
//!
//! A rate limiter reads the time on every request, and std's `Instant::now` is a
//! `clock_gettime` call: about 20 ns on the machines we measure, more on a virtual machine
//! without a stable time-stamp counter, and more than everything else a GCRA decision
//! costs. governor reads the CPU's time-stamp counter through [quanta] instead (a few
//! nanoseconds, calibrated once per process against the OS clock, and the OS clock itself
//! where the counter is not reliable); palisade does the same, through the same crate.
//!
//! # Paused time in tests
//!
//! Tests that pause tokio's clock (`#[tokio::test(start_paused = true)]`,
//! `tokio::time::advance`) need palisade's clock to stop and move with it. Turn on the
//! `test-util` feature — of `palisade`, or of the layer crate — where you turn on tokio's,
//! in `[dev-dependencies]`: the clock is then `tokio::time::Instant`, which the paused
//! clock moves. Without it, a paused test sees the limiter's time pass for real.
//!
//! ```
//! use palisade_core::clock::Clock;
//!
//! let clock = Clock::new();
//! let before = clock.nanos();
//! assert!(clock.nanos() >= before, "monotonic");
//! ```
//!
//! [quanta]: https://docs.rs/quanta

/// A monotonic clock that counts nanoseconds from when it was made.
///
/// Cloning is cheap and keeps the zero: clones read the same time.
#[derive(Clone, Debug)]
pub struct Clock {
    inner: Inner,
}

impl Clock {
    /// A clock whose zero is now.
    ///
    /// The first clock of a process calibrates the time-stamp counter against the OS clock
    /// (a few milliseconds, 200 at most); every later one is made at once.
    pub fn new() -> Self {
        Self {
            inner: Inner::new(),
        }
    }

    /// Nanoseconds since the clock was made (saturating, after 584 years).
    #[inline]
    pub fn nanos(&self) -> u64 {
        self.inner.nanos()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// The time-stamp counter, through quanta.
#[cfg(not(any(test, feature = "test-util")))]
#[derive(Clone, Debug)]
struct Inner {
    clock: quanta::Clock,
    zero: u64,
}

#[cfg(not(any(test, feature = "test-util")))]
impl Inner {
    fn new() -> Self {
        let clock = quanta::Clock::new();
        let zero = clock.raw();
        Self { clock, zero }
    }

    #[inline]
    fn nanos(&self) -> u64 {
        self.clock.delta_as_nanos(self.zero, self.clock.raw())
    }
}

/// tokio's clock, which paused-time tests move (and this crate's own tests read).
#[cfg(any(test, feature = "test-util"))]
#[derive(Clone, Debug)]
struct Inner {
    zero: tokio::time::Instant,
}

#[cfg(any(test, feature = "test-util"))]
impl Inner {
    fn new() -> Self {
        Self {
            zero: tokio::time::Instant::now(),
        }
    }

    #[inline]
    fn nanos(&self) -> u64 {
        u64::try_from(self.zero.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn it_counts_from_its_zero_and_clones_share_it() {
        let clock = Clock::new();
        let clone = clock.clone();
        std::thread::sleep(Duration::from_millis(2));
        let (a, b) = (clock.nanos(), clone.nanos());
        assert!(a >= 2_000_000, "{a}");
        assert!(b >= a);
    }

    /// This crate's own tests read tokio's clock, as `test-util` makes other crates' tests.
    #[tokio::test(start_paused = true)]
    async fn paused_time_moves_it() {
        let clock = Clock::new();
        assert_eq!(clock.nanos(), 0);
        tokio::time::advance(Duration::from_millis(250)).await;
        assert_eq!(clock.nanos(), 250_000_000);
    }
}
