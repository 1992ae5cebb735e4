//! Recent latency, and a percentile of it, without a lock; and the hedges sent meanwhile.
//!
//! tower's `Hedge` records every latency into a histogram behind a `Mutex`: a lock per
//! request, on every request, contended by every thread. Here a sample is one relaxed
//! `fetch_add` on a bucket of a log-linear histogram (16 buckets per power of two, so a
//! value is known to within 6.25 %), and the percentile is recomputed from the buckets every
//! [`RECOMPUTE_EVERY`] samples, by whichever thread records that sample, into an atomic that
//! every request reads.
//!
//! "Recent" is the last one to two windows of [`WINDOW`] samples: two histograms take turns,
//! the older one cleared and made current each time the current one fills up, and the
//! percentile is read over both. Stragglers (a thread that read the index before a turn)
//! may land a sample in the other histogram: the figure is a little less recent, never wrong.
//!
//! The windows also count the hedges sent while they were current, so that hedges can be
//! bounded by a share of the same answered requests ([`LatencyTracker::take_hedge`]) without
//! a count of their own on every request: the sample a request records anyway is the count.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

/// Samples per window.
pub(crate) const WINDOW: u32 = 1024;
/// How often, in samples, the percentile is recomputed.
pub(crate) const RECOMPUTE_EVERY: u32 = 32;
/// Samples needed before the percentile is believed.
pub(crate) const WARM: u64 = 200;

/// Sub-buckets per power of two: 2^4.
const SUB_BITS: u32 = 4;
const SUBS: usize = 1 << SUB_BITS;
/// Powers of two of microseconds: 2^36 µs is 19 hours.
const POWERS: usize = 37;
const BUCKETS: usize = POWERS * SUBS;

/// Hedges always allowed across the two windows, whatever their share: a client that has
/// seen few answers yet may still hedge a few.
pub(crate) const HEDGE_RESERVE: u64 = 10;

/// One window's counts.
struct Histogram {
    buckets: Box<[AtomicU32]>,
    samples: AtomicU32,
    /// Hedges sent while this window was current.
    hedges: AtomicU32,
}

impl Histogram {
    fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU32::new(0)).collect(),
            samples: AtomicU32::new(0),
            hedges: AtomicU32::new(0),
        }
    }

    fn clear(&self) {
        for bucket in &*self.buckets {
            bucket.store(0, Relaxed);
        }
        self.samples.store(0, Relaxed);
        self.hedges.store(0, Relaxed);
    }
}

/// The bucket of `micros`: values below 16 µs have a bucket each; above, a power of two
/// split in 16.
fn bucket_of(micros: u64) -> usize {
    if micros < SUBS as u64 {
        return micros as usize;
    }
    let power = 63 - micros.leading_zeros(); // ≥ SUB_BITS
    let sub = (micros >> (power - SUB_BITS)) as usize & (SUBS - 1);
    let index = (power - SUB_BITS + 1) as usize * SUBS + sub;
    index.min(BUCKETS - 1)
}

/// The largest value in `bucket`, in microseconds: a percentile read from the buckets is
/// never below the true one.
fn upper_bound(bucket: usize) -> u64 {
    if bucket < SUBS {
        return bucket as u64;
    }
    let power = (bucket / SUBS) as u32 + SUB_BITS - 1;
    let sub = (bucket % SUBS) as u64;
    let step = 1u64 << (power - SUB_BITS);
    (1u64 << power) + (sub + 1) * step - 1
}

/// The latency of recent attempts: its chosen percentile, and its median.
pub(crate) struct LatencyTracker {
    percentile: f64,
    histograms: [Histogram; 2],
    current: AtomicUsize,
    /// Whether [`WARM`] samples have been seen: the percentile is believed from then on.
    warm: AtomicBool,
    /// The percentile and the median as of the last recomputation, in nanoseconds;
    /// `u64::MAX` before any.
    cached: [AtomicU64; 2],
}

impl LatencyTracker {
    pub(crate) fn new(percentile: f64) -> Self {
        Self {
            percentile,
            histograms: [Histogram::new(), Histogram::new()],
            current: AtomicUsize::new(0),
            warm: AtomicBool::new(false),
            cached: [AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX)],
        }
    }

    /// One attempt took `latency`. Returns the percentile when this sample recomputed it.
    #[inline]
    pub(crate) fn record(&self, latency: Duration) -> Option<Duration> {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let index = self.current.load(Relaxed);
        let histogram = &self.histograms[index];
        histogram.buckets[bucket_of(micros)].fetch_add(1, Relaxed);
        let samples = histogram.samples.fetch_add(1, Relaxed) + 1;
        if samples == WINDOW {
            // This thread filled the window: it turns the histograms over. The other one is
            // cleared before it becomes current, so that it starts empty.
            let other = 1 - index;
            self.histograms[other].clear();
            self.current.store(other, Relaxed);
        }
        if !samples.is_multiple_of(RECOMPUTE_EVERY) {
            return None;
        }
        // Warm once a window has held WARM samples (a window that turned over held more):
        // checked here, every RECOMPUTE_EVERY samples, rather than counted on every one.
        if !self.warm.load(Relaxed) {
            if u64::from(samples) < WARM {
                return None;
            }
            self.warm.store(true, Relaxed);
        }
        let [value, median] = self.compute([self.percentile, 0.5]);
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.cached[0].store(nanos(value), Relaxed);
        self.cached[1].store(nanos(median), Relaxed);
        Some(value)
    }

    /// Takes one hedge if the hedges of both windows stay within `share` of their samples
    /// (plus [`HEDGE_RESERVE`]). Taken optimistically and given back if, counted again, it
    /// overdrew: concurrent callers cannot overdraw together.
    pub(crate) fn take_hedge(&self, share: f64) -> bool {
        let over = |strictly: bool| {
            let [a, b] = &self.histograms;
            let samples = u64::from(a.samples.load(Relaxed)) + u64::from(b.samples.load(Relaxed));
            let hedges = u64::from(a.hedges.load(Relaxed)) + u64::from(b.hedges.load(Relaxed));
            let allowed = HEDGE_RESERVE + (share * samples as f64) as u64;
            if strictly {
                hedges > allowed
            } else {
                hedges >= allowed
            }
        };
        if over(false) {
            return false;
        }
        let counted = &self.histograms[self.current.load(Relaxed)].hedges;
        counted.fetch_add(1, Relaxed);
        if over(true) {
            // Others took the last hedges meanwhile (or the window turned over and cleared
            // the count: then there is nothing to give back).
            let _ = counted.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
            return false;
        }
        true
    }

    /// The chosen percentile of recent latency, once enough has been seen.
    pub(crate) fn get(&self) -> Option<Duration> {
        Self::read(&self.cached[0])
    }

    /// The median of recent latency, once enough has been seen.
    pub(crate) fn median(&self) -> Option<Duration> {
        Self::read(&self.cached[1])
    }

    fn read(cached: &AtomicU64) -> Option<Duration> {
        match cached.load(Relaxed) {
            u64::MAX => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    /// The `quantiles` over both windows, from the buckets, in one pass.
    fn compute<const N: usize>(&self, quantiles: [f64; N]) -> [Duration; N] {
        let [a, b] = &self.histograms;
        let count = |i: usize| u64::from(a.buckets[i].load(Relaxed) + b.buckets[i].load(Relaxed));
        // The windows' own counts, rather than a sum over every bucket: the scan below then
        // stops at the last quantile's bucket, which for most latencies is early. A sample
        // in flight between its bucket and its count makes the ranks off by one at most.
        let total = u64::from(a.samples.load(Relaxed)) + u64::from(b.samples.load(Relaxed));
        // The rank of each quantile, at least 1: the smallest value with that many at or
        // below it.
        let ranks = quantiles.map(|q| ((total as f64 * q).ceil() as u64).max(1));
        let mut values = [Duration::from_micros(upper_bound(BUCKETS - 1)); N];
        let mut found = [false; N];
        let mut below = 0;
        for bucket in 0..BUCKETS {
            below += count(bucket);
            for i in 0..N {
                if !found[i] && below >= ranks[i] {
                    found[i] = true;
                    values[i] = Duration::from_micros(upper_bound(bucket));
                }
            }
            if found.iter().all(|&f| f) {
                break;
            }
        }
        values
    }
}

impl std::fmt::Debug for LatencyTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyTracker")
            .field("percentile", &self.percentile)
            .field("value", &self.get())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn it_says_nothing_until_warm() {
        let tracker = LatencyTracker::new(0.95);
        for _ in 0..WARM - 1 {
            tracker.record(Duration::from_millis(5));
        }
        assert_eq!(tracker.get(), None);
        for _ in 0..RECOMPUTE_EVERY {
            tracker.record(Duration::from_millis(5));
        }
        let p95 = tracker.get().expect("warm");
        assert!(
            p95 >= Duration::from_millis(5) && p95 <= Duration::from_micros(5_313),
            "{p95:?}"
        );
    }

    #[test]
    fn the_percentile_separates_the_tail() {
        let tracker = LatencyTracker::new(0.95);
        // 90 % at 5 ms, 10 % at 100 ms: the 95th percentile is in the tail.
        for i in 0..1000 {
            let ms = if i % 10 == 0 { 100 } else { 5 };
            tracker.record(Duration::from_millis(ms));
        }
        assert!(tracker.get().unwrap() >= Duration::from_millis(100));
        let p80 = LatencyTracker::new(0.80);
        for i in 0..1000 {
            let ms = if i % 10 == 0 { 100 } else { 5 };
            p80.record(Duration::from_millis(ms));
        }
        assert!(p80.get().unwrap() < Duration::from_millis(6));
    }

    #[test]
    fn old_windows_are_forgotten() {
        let tracker = LatencyTracker::new(0.5);
        for _ in 0..2 * WINDOW {
            tracker.record(Duration::from_millis(50));
        }
        assert!(tracker.get().unwrap() >= Duration::from_millis(50));
        // Two windows later, only the new latency is left.
        for _ in 0..2 * WINDOW {
            tracker.record(Duration::from_millis(2));
        }
        assert!(tracker.get().unwrap() < Duration::from_micros(2_200));
    }

    #[test]
    fn hedges_stay_within_their_share_of_the_samples() {
        let tracker = LatencyTracker::new(0.95);
        let taken = |n: usize| (0..n).filter(|_| tracker.take_hedge(0.1)).count();
        assert_eq!(
            taken(50),
            HEDGE_RESERVE as usize,
            "only the reserve before any answer"
        );
        for _ in 0..100 {
            tracker.record(Duration::from_millis(5));
        }
        assert_eq!(taken(50), 10, "a tenth of 100 answers");
        // Two windows later, the old hedges are forgotten with the old samples: one full
        // window is left, and a new one just begun.
        for _ in 0..2 * WINDOW - 100 {
            tracker.record(Duration::from_millis(5));
        }
        let allowed = HEDGE_RESERVE as usize + (0.1 * f64::from(WINDOW)) as usize;
        assert_eq!(taken(1000), allowed);
    }

    proptest! {
        #[test]
        fn a_value_falls_in_a_bucket_whose_bound_is_at_most_6_percent_above(micros in 0u64..1 << 36) {
            let bucket = bucket_of(micros);
            let bound = upper_bound(bucket);
            prop_assert!(bound >= micros, "{micros} -> {bucket} -> {bound}");
            prop_assert!(bound as f64 <= micros as f64 * 1.0625 + 1.0, "{micros} -> {bound}");
            if bucket > 0 {
                prop_assert!(upper_bound(bucket - 1) < micros);
            }
        }
    }
}
