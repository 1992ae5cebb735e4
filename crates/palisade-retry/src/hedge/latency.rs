//! Recent latency, and a percentile of it, without a lock; and the hedges sent meanwhile.
//!
//! tower's `Hedge` records every latency into a histogram behind a `Mutex`: a lock per
//! request, on every request, contended by every thread. Here a sample is one relaxed
//! `fetch_add` on a bucket of a log-linear histogram (16 buckets per power of two, so a
//! value is known to within 6.25 %) — the only read-modify-write a request pays — and the
//! percentile is recomputed from the buckets, into an atomic that every request reads, by
//! the caller whose sample brings its bucket to a multiple of [`RECOMPUTE_EVERY`].
//!
//! Nothing counts the samples one by one: a second locked increment on every answer cost
//! as much as the histogram's own (a tenth of a retried call's cost, on one thread). A
//! recomputation counts them instead, summing the buckets between the lowest and the
//! highest a sample has landed in (a window keeps both, written only when a sample falls
//! outside them). Triggered by buckets, recomputations come about once every
//! [`RECOMPUTE_EVERY`] samples when latency is spread over a few dozen buckets, as most
//! are; a latency spread thinly over many more is recomputed less often early in a window,
//! and its windows grow (spread evenly over 100 buckets, to about 3 200 samples).
//!
//! "Recent" is the last one to two windows of about [`WINDOW`] samples: two histograms take
//! turns, the older one cleared and made current by the first recomputation that finds the
//! current one holding [`WINDOW`] samples or more, and the percentile is read over both.
//! Stragglers (a thread that read the index before a turn) may land a sample in the other
//! histogram: the figure is a little less recent, never wrong.
//!
//! The windows also count the hedges sent while they were current, so that hedges can be
//! bounded by a share of the same answered requests ([`LatencyTracker::take_hedge`]) without
//! a count of their own on every request: the samples a recomputation counts are the answers.

use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

/// Samples per window, at least.
pub(crate) const WINDOW: u64 = 1024;
/// A bucket's count at whose multiples the percentile is recomputed.
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
    /// The lowest and the highest bucket written since the window was cleared: a count
    /// reads between them only. The lowest is above the highest while the window is empty.
    lowest: AtomicUsize,
    highest: AtomicUsize,
    /// Hedges sent while this window was current.
    hedges: AtomicU32,
}

impl Histogram {
    fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU32::new(0)).collect(),
            lowest: AtomicUsize::new(BUCKETS),
            highest: AtomicUsize::new(0),
            hedges: AtomicU32::new(0),
        }
    }

    /// Counts a sample in `bucket`; returns the bucket's count with it.
    #[inline]
    fn add(&self, bucket: usize) -> u32 {
        let count = self.buckets[bucket].fetch_add(1, Relaxed) + 1;
        // Loads, not read-modify-writes, on the common path: the range only widens, and a
        // sample inside it (nearly every one, once a window has begun) writes nothing.
        if bucket > self.highest.load(Relaxed) {
            self.highest.fetch_max(bucket, Relaxed);
        }
        if bucket < self.lowest.load(Relaxed) {
            self.lowest.fetch_min(bucket, Relaxed);
        }
        count
    }

    /// The buckets written since the window was cleared; empty when none was.
    fn range(&self) -> RangeInclusive<usize> {
        self.lowest.load(Relaxed)..=self.highest.load(Relaxed).min(BUCKETS - 1)
    }

    fn count(&self, bucket: usize) -> u64 {
        u64::from(self.buckets[bucket].load(Relaxed))
    }

    /// The samples in the window.
    fn total(&self) -> u64 {
        self.range().map(|bucket| self.count(bucket)).sum()
    }

    /// Empties the window. Every bucket, not only its range: a straggler's sample that
    /// landed outside the range as it was reset must not outlive the window.
    fn clear(&self) {
        // The range first: a sample that lands while the buckets are cleared widens the
        // new range, and is kept or cleared with its bucket.
        self.lowest.store(BUCKETS, Relaxed);
        self.highest.store(0, Relaxed);
        self.hedges.store(0, Relaxed);
        for bucket in &*self.buckets {
            bucket.store(0, Relaxed);
        }
    }
}

/// The bucket of `micros`: values below 16 µs have a bucket each; above, a power of two
/// split in 16.
#[inline]
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
    /// The samples in both windows as of the last recomputation: the answers that hedges
    /// are a share of.
    answered: AtomicU64,
}

impl LatencyTracker {
    pub(crate) fn new(percentile: f64) -> Self {
        Self {
            percentile,
            histograms: [Histogram::new(), Histogram::new()],
            current: AtomicUsize::new(0),
            warm: AtomicBool::new(false),
            cached: [AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX)],
            answered: AtomicU64::new(0),
        }
    }

    /// One attempt took `latency`. Returns the percentile when this sample recomputed it.
    #[inline]
    pub(crate) fn record(&self, latency: Duration) -> Option<Duration> {
        // In u64, not `as_micros`'s u128: 2^64 µs is half a million years.
        let micros = (latency.as_secs().saturating_mul(1_000_000))
            .saturating_add(u64::from(latency.subsec_micros()));
        let index = self.current.load(Relaxed);
        let count = self.histograms[index].add(bucket_of(micros));
        if !count.is_multiple_of(RECOMPUTE_EVERY) {
            return None;
        }
        self.recompute(index)
    }

    /// Counts both windows, turns them over when the current one (`index`, as its caller
    /// read it) is full, and recomputes the percentile and the median.
    #[inline(never)]
    fn recompute(&self, index: usize) -> Option<Duration> {
        let [current, older] = [index, 1 - index].map(|i| &self.histograms[i]);
        let mut samples = [current.total(), older.total()];
        // The switch before the clearing: a straggler whose `index` is stale fails it, and
        // so cannot clear the window in use. The few samples that reach the older window
        // between the two are lost with it.
        if samples[0] >= WINDOW
            && self
                .current
                .compare_exchange(index, 1 - index, Relaxed, Relaxed)
                .is_ok()
        {
            older.clear();
            samples[1] = 0;
        }
        let total = samples[0] + samples[1];
        self.answered.store(total, Relaxed);
        if !self.warm.load(Relaxed) {
            if total < WARM {
                return None;
            }
            self.warm.store(true, Relaxed);
        }
        let [value, median] = self.compute(total, [self.percentile, 0.5]);
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.cached[0].store(nanos(value), Relaxed);
        self.cached[1].store(nanos(median), Relaxed);
        Some(value)
    }

    /// Takes one hedge if the hedges of both windows stay within `share` of their answers
    /// (plus [`HEDGE_RESERVE`]). Taken optimistically and given back if, counted again, it
    /// overdrew: concurrent callers cannot overdraw together.
    pub(crate) fn take_hedge(&self, share: f64) -> bool {
        let over = |strictly: bool| {
            let [a, b] = &self.histograms;
            let answered = self.answered.load(Relaxed);
            let hedges = u64::from(a.hedges.load(Relaxed)) + u64::from(b.hedges.load(Relaxed));
            let allowed = HEDGE_RESERVE + (share * answered as f64) as u64;
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

    /// The `quantiles` of `total` samples over both windows, from the buckets, in one pass
    /// from the lowest bucket written: it stops at the last quantile's bucket, which for
    /// most latencies is early.
    fn compute<const N: usize>(&self, total: u64, quantiles: [f64; N]) -> [Duration; N] {
        let [a, b] = &self.histograms;
        let from = (*a.range().start()).min(*b.range().start());
        // The rank of each quantile, at least 1: the smallest value with that many at or
        // below it. A sample that lands between the count and this pass moves a rank by
        // one at most.
        let ranks = quantiles.map(|q| ((total as f64 * q).ceil() as u64).max(1));
        let mut values = [Duration::from_micros(upper_bound(BUCKETS - 1)); N];
        let mut found = [false; N];
        let mut below = 0;
        for bucket in from..BUCKETS {
            below += a.count(bucket) + b.count(bucket);
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

    /// A latency spread evenly over 100 buckets (from 8.7 to 655 ms), so thinly that no
    /// bucket reaches a recomputation's count in the first three thousand samples.
    fn spread(i: u64) -> Duration {
        Duration::from_micros(upper_bound(160 + (i % 100) as usize))
    }

    #[test]
    fn a_latency_spread_thin_is_measured_and_forgotten() {
        let tracker = LatencyTracker::new(0.95);
        for i in 0..20 * WINDOW {
            tracker.record(spread(i));
        }
        // The 95th of 100 equally likely buckets, within a bucket either way (the windows
        // hold whole rounds of the 100 but for the last).
        let p95 = tracker.get().expect("warm");
        let expected = spread(94);
        assert!(
            p95 >= spread(93) && p95 <= spread(95),
            "{p95:?}, expected about {expected:?}"
        );
        // Its windows still turn over: a new latency replaces it within two of them.
        for _ in 0..2 * WINDOW + u64::from(RECOMPUTE_EVERY) {
            tracker.record(Duration::from_millis(2));
        }
        assert!(
            tracker.get().unwrap() < Duration::from_micros(2_200),
            "{:?}",
            tracker.get()
        );
    }

    #[test]
    fn threads_recording_at_once_agree_with_one() {
        // 90 % at 5 ms, 10 % at 50 ms, from four threads at once: every sample counted
        // by its bucket's own increment, the median at 5 ms and the 95th in the tail.
        let tracker = LatencyTracker::new(0.95);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for i in 0..20_000 {
                        let ms = if i % 10 == 0 { 50 } else { 5 };
                        tracker.record(Duration::from_millis(ms));
                    }
                });
            }
        });
        let (p95, median) = (tracker.get().unwrap(), tracker.median().unwrap());
        assert!(p95 >= Duration::from_millis(50), "{p95:?}");
        assert!(
            median >= Duration::from_millis(5) && median < Duration::from_micros(5_313),
            "{median:?}"
        );
        let answered = tracker.answered.load(Relaxed);
        assert!(
            (WINDOW..=3 * WINDOW).contains(&answered),
            "the two windows hold {answered} samples"
        );
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
        // Answers are counted when the percentile is recomputed: 160 is a count at which
        // it is.
        for _ in 0..160 {
            tracker.record(Duration::from_millis(5));
        }
        assert_eq!(taken(50), 16, "a tenth of 160 answers");
        // Two windows later, the old hedges are forgotten with the old samples: one full
        // window is left, and a new one just begun.
        for _ in 0..2 * WINDOW - 160 {
            tracker.record(Duration::from_millis(5));
        }
        let allowed = HEDGE_RESERVE as usize + (0.1 * WINDOW as f64) as usize;
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
