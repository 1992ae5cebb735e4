//! The calls of the last `length`, in buckets that expire one at a time, striped by thread.

use std::cell::Cell;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use super::WindowCounts;
use crate::sync::{AtomicU32, AtomicU64, Ordering::Relaxed};

/// A time window striped by thread: each thread records into its own stripe of buckets, so
/// two threads recording successes do not fight over one cache line, and reading the totals
/// (only after a failure or a slow call) sums every stripe.
///
/// A bucket is claimed for a new slice of time by swapping its epoch; a call recorded by
/// another thread between that swap and the reset of the bucket's counters can be lost. That
/// is at most a few calls at a bucket boundary under contention, which a rate over hundreds of
/// calls does not notice, and it is the price of not locking.
pub(crate) struct TimeWindow {
    bucket_nanos: u64,
    buckets: u64,
    stripes: Box<[Box<[Bucket]>]>,
}

#[derive(Default)]
struct Bucket {
    /// The slice of time the counts belong to, plus one (zero: never used).
    epoch: AtomicU64,
    calls: AtomicU32,
    failures: AtomicU32,
    slow: AtomicU32,
}

impl TimeWindow {
    pub(crate) fn new(length: Duration, buckets: u32) -> Self {
        let buckets = u64::from(buckets.max(1));
        let length = u64::try_from(length.as_nanos())
            .unwrap_or(u64::MAX)
            .max(buckets);
        let stripes = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        Self {
            bucket_nanos: length / buckets,
            buckets,
            stripes: (0..stripes)
                .map(|_| (0..buckets).map(|_| Bucket::default()).collect())
                .collect(),
        }
    }

    fn epoch(&self, now: u64) -> u64 {
        now / self.bucket_nanos + 1
    }

    pub(crate) fn record(&self, now: u64, failure: bool, slow: bool) {
        let epoch = self.epoch(now);
        let stripe = &self.stripes[stripe_of_this_thread() % self.stripes.len()];
        let bucket = &stripe[(epoch % self.buckets) as usize];
        let seen = bucket.epoch.load(Relaxed);
        if seen != epoch {
            if seen > epoch {
                // A caller that read the clock long ago: its slice has expired.
                return;
            }
            if bucket
                .epoch
                .compare_exchange(seen, epoch, Relaxed, Relaxed)
                .is_ok()
            {
                bucket.calls.store(0, Relaxed);
                bucket.failures.store(0, Relaxed);
                bucket.slow.store(0, Relaxed);
            }
        }
        bucket.calls.fetch_add(1, Relaxed);
        if failure {
            bucket.failures.fetch_add(1, Relaxed);
        }
        if slow {
            bucket.slow.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn counts(&self, now: u64) -> WindowCounts {
        let current = self.epoch(now);
        // Epoch 0 marks a bucket never used (or reset): never in the window.
        let oldest = current.saturating_sub(self.buckets - 1).max(1);
        let mut counts = WindowCounts::default();
        for bucket in self.stripes.iter().flat_map(|s| s.iter()) {
            let epoch = bucket.epoch.load(Relaxed);
            if (oldest..=current).contains(&epoch) {
                counts.calls = counts.calls.saturating_add(bucket.calls.load(Relaxed));
                counts.failures = counts
                    .failures
                    .saturating_add(bucket.failures.load(Relaxed));
                counts.slow = counts.slow.saturating_add(bucket.slow.load(Relaxed));
            }
        }
        counts.failures = counts.failures.min(counts.calls);
        counts.slow = counts.slow.min(counts.calls);
        counts
    }

    pub(crate) fn reset(&self) {
        for bucket in self.stripes.iter().flat_map(|s| s.iter()) {
            bucket.epoch.store(0, Relaxed);
        }
    }
}

fn stripe_of_this_thread() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    STRIPE.with(|s| {
        if s.get() == usize::MAX {
            s.set(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        }
        s.get()
    })
}

#[cfg(all(test, not(palisade_loom)))]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn buckets_expire_one_at_a_time() {
        let w = TimeWindow::new(Duration::from_secs(10), 10);
        w.record(0, true, false);
        w.record(SEC / 2, false, true);
        w.record(5 * SEC, false, false);
        assert_eq!(
            w.counts(5 * SEC),
            WindowCounts {
                calls: 3,
                failures: 1,
                slow: 1
            }
        );
        // At 10 s the first second's bucket has left the window.
        assert_eq!(
            w.counts(10 * SEC),
            WindowCounts {
                calls: 1,
                failures: 0,
                slow: 0
            }
        );
        assert_eq!(w.counts(15 * SEC), WindowCounts::default());
        // A bucket reused for a later slice starts from zero.
        w.record(20 * SEC, true, false);
        assert_eq!(
            w.counts(20 * SEC),
            WindowCounts {
                calls: 1,
                failures: 1,
                slow: 0
            }
        );
        w.reset();
        assert_eq!(w.counts(20 * SEC), WindowCounts::default());
    }

    #[test]
    fn a_reset_empties_the_window_in_its_first_seconds_too() {
        let w = TimeWindow::new(Duration::from_secs(10), 10);
        w.record(SEC, true, false);
        w.reset();
        assert_eq!(w.counts(2 * SEC), WindowCounts::default());
    }
}
