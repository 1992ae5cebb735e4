//! Sliding windows of recent calls, for the rate-based trip policies.
//!
//! Both kinds count the calls, failures and slow calls they hold, and both are lock-free:
//! recording a call is a few relaxed atomic operations, and reading the totals (needed only
//! when a call failed or was slow — successes never trip a breaker) sums a few counters.

mod count;
mod time;

use std::time::Duration;

pub(crate) use self::count::CountWindow;
pub(crate) use self::time::TimeWindow;

/// Which recent calls the failure-rate and slow-call-rate policies look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Window {
    /// The last `n` calls (resilience4j's `COUNT_BASED`).
    Count(u32),
    /// The calls of the last `length`, counted in `buckets` slices of equal length that
    /// expire one at a time (resilience4j's `TIME_BASED`, Polly's `SamplingDuration`).
    Time {
        /// How far back the window reaches.
        length: Duration,
        /// How many slices the window is counted in: more is smoother, fewer is cheaper.
        buckets: u32,
    },
}

impl Window {
    /// The last `n` calls.
    pub fn count(n: u32) -> Self {
        Window::Count(n)
    }

    /// The calls of the last `length`, in ten buckets.
    pub fn time(length: Duration) -> Self {
        Window::Time {
            length,
            buckets: 10,
        }
    }
}

/// What a window holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowCounts {
    /// Calls recorded (successes and failures; ignored calls are not recorded).
    pub calls: u32,
    /// Of those, failures.
    pub failures: u32,
    /// Of those, calls at or beyond the slow-call threshold.
    pub slow: u32,
}

impl WindowCounts {
    /// Failures as a share of calls (0 when there are none).
    pub fn failure_rate(&self) -> f64 {
        ratio(self.failures, self.calls)
    }

    /// Slow calls as a share of calls (0 when there are none).
    pub fn slow_call_rate(&self) -> f64 {
        ratio(self.slow, self.calls)
    }
}

fn ratio(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        0.0
    } else {
        f64::from(part) / f64::from(whole)
    }
}

/// One of the two window kinds, chosen by configuration.
pub(crate) enum SlidingWindow {
    Count(CountWindow),
    Time(TimeWindow),
}

impl SlidingWindow {
    pub(crate) fn new(window: Window) -> Self {
        match window {
            Window::Count(n) => SlidingWindow::Count(CountWindow::new(n)),
            Window::Time { length, buckets } => {
                SlidingWindow::Time(TimeWindow::new(length, buckets))
            }
        }
    }

    pub(crate) fn record(&self, now: u64, failure: bool, slow: bool) {
        match self {
            SlidingWindow::Count(w) => w.record(failure, slow),
            SlidingWindow::Time(w) => w.record(now, failure, slow),
        }
    }

    pub(crate) fn counts(&self, now: u64) -> WindowCounts {
        match self {
            SlidingWindow::Count(w) => w.counts(),
            SlidingWindow::Time(w) => w.counts(now),
        }
    }

    pub(crate) fn reset(&self) {
        match self {
            SlidingWindow::Count(w) => w.reset(),
            SlidingWindow::Time(w) => w.reset(),
        }
    }
}
