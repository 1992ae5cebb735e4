//! Retries as a share of recent requests, plus a floor (Finagle's and Envoy's design).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use palisade_core::ConfigError;
use tokio::time::Instant;

use super::Budget;

const BUCKETS: u64 = 10;

/// Requests counted in a tenth of `ttl` between two readings of the clock.
const REQUESTS_PER_CLOCK_READ: u32 = 16;

/// Retries may be at most `percent` of the requests of the last `ttl`, plus
/// `min_per_sec × ttl` retries that are always allowed.
///
/// Defaults are Finagle's: 20 % of the last 10 s, plus 10 retries a second. Unlike tower's
/// `TpsBudget`, bad settings are a [`ConfigError`] rather than a panic, and a fractional
/// percentage counts as such (tower #857).
///
/// Lock-free: requests and retries are counted in ten buckets across `ttl` that expire one
/// at a time. A retry is taken optimistically and given back if, counted again, it overdrew
/// the budget, so concurrent callers can never overdraw it together.
///
/// Reading the clock costs more than everything else a request does here, so a request is
/// counted in the tenth of `ttl` last seen, and the clock is read again by every 16th
/// request counted in a tenth, and at every retry. A request counted in a tenth that has
/// passed expires early, so this can only make the budget stricter, by at most 16 requests
/// per tenth.
///
/// The floor is a pool, not a rate: `min_per_sec × ttl` retries per window, which a client
/// whose requests all fail spends as soon as the oldest tenth of the window expires.
///
/// ```
/// use std::time::Duration;
/// use palisade_retry::budget::{Budget, PercentBudget};
///
/// // 10 % of the last 10 s, and no floor.
/// let budget = PercentBudget::new(Duration::from_secs(10), 0, 0.1).unwrap();
/// for _ in 0..20 {
///     budget.deposit();
/// }
/// assert!(budget.withdraw());
/// assert!(budget.withdraw());
/// assert!(!budget.withdraw(), "2 retries for 20 requests is 10 %");
/// ```
#[derive(Debug)]
pub struct PercentBudget {
    percent: f64,
    /// Retries always allowed in any `ttl`: `min_per_sec × ttl`.
    reserve: u64,
    bucket_nanos: u64,
    epoch: Instant,
    /// The tenth of `ttl` the clock was last seen in.
    seen_slice: AtomicU64,
    buckets: [Bucket; BUCKETS as usize],
}

#[derive(Debug, Default)]
struct Bucket {
    /// The slice of time the counts belong to, plus one (zero: never used).
    slice: AtomicU64,
    requests: AtomicU32,
    retries: AtomicU32,
}

impl Default for PercentBudget {
    fn default() -> Self {
        Self::new(Duration::from_secs(10), 10, 0.2).expect("the defaults are valid")
    }
}

impl PercentBudget {
    /// A budget of `percent` (a ratio: `0.2` is 20 %, up to `10.0`) of the requests of the
    /// last `ttl` (1 s to 60 s), plus `min_per_sec` retries a second.
    pub fn new(ttl: Duration, min_per_sec: u32, percent: f64) -> Result<Self, ConfigError> {
        if !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&ttl) {
            return Err(ConfigError::new("budget.ttl", "must be from 1 s to 60 s"));
        }
        if !(0.0..=10.0).contains(&percent) {
            return Err(ConfigError::new(
                "budget.percent",
                "must be a ratio from 0.0 to 10.0 (0 % to 1000 %)",
            ));
        }
        let ttl_nanos = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
        Ok(Self {
            percent,
            reserve: u64::from(min_per_sec) * ttl.as_secs().max(1),
            bucket_nanos: ttl_nanos / BUCKETS,
            epoch: Instant::now(),
            seen_slice: AtomicU64::new(1),
            buckets: Default::default(),
        })
    }

    /// The current tenth of `ttl`, from the clock.
    fn slice(&self) -> u64 {
        let nanos = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let slice = nanos / self.bucket_nanos + 1;
        self.seen_slice.fetch_max(slice, Relaxed);
        slice
    }

    /// The bucket of `slice`, emptied first if it still holds an older slice.
    fn bucket(&self, slice: u64) -> Option<&Bucket> {
        let bucket = &self.buckets[(slice % BUCKETS) as usize];
        let seen = bucket.slice.load(Relaxed);
        if seen > slice {
            // Only a caller that read the clock long ago gets here: nothing to count into.
            return None;
        }
        if seen < slice
            && bucket
                .slice
                .compare_exchange(seen, slice, Relaxed, Relaxed)
                .is_ok()
        {
            // A count that lands between the swap and these stores is lost: a request
            // (which makes the budget stricter) or a retry (given back below by its own
            // recount, or at worst one retry at a bucket boundary).
            bucket.requests.store(0, Relaxed);
            bucket.retries.store(0, Relaxed);
        }
        Some(bucket)
    }

    /// Requests and retries in the window that ends in `slice`.
    fn totals(&self, slice: u64) -> (u64, u64) {
        let oldest = slice.saturating_sub(BUCKETS - 1).max(1);
        self.buckets
            .iter()
            .filter(|b| (oldest..=slice).contains(&b.slice.load(Relaxed)))
            .fold((0, 0), |(requests, retries), b| {
                (
                    requests + u64::from(b.requests.load(Relaxed)),
                    retries + u64::from(b.retries.load(Relaxed)),
                )
            })
    }

    fn allowed(&self, requests: u64) -> u64 {
        self.reserve + (self.percent * requests as f64) as u64
    }

    /// Retries the budget would allow now, beyond those already taken.
    pub fn available(&self) -> u64 {
        let (requests, retries) = self.totals(self.slice());
        self.allowed(requests).saturating_sub(retries)
    }
}

impl Budget for PercentBudget {
    fn deposit(&self) {
        let Some(bucket) = self.bucket(self.seen_slice.load(Relaxed)) else {
            return;
        };
        // The bucket's own count says when to look at the clock again: one atomic
        // increment a request, where a count of its own for the clock was a second one
        // that every thread's core had to take the line for.
        let counted = bucket.requests.fetch_add(1, Relaxed);
        if counted.is_multiple_of(REQUESTS_PER_CLOCK_READ) {
            self.slice();
        }
    }

    fn withdraw(&self) -> bool {
        let slice = self.slice();
        let (requests, retries) = self.totals(slice);
        if retries >= self.allowed(requests) {
            return false;
        }
        let Some(bucket) = self.bucket(slice) else {
            return false;
        };
        bucket.retries.fetch_add(1, Relaxed);
        // Count again with this retry in: if others took the last retries meanwhile, give
        // this one back. Every retry that stands was within the budget when it was counted.
        let (requests, retries) = self.totals(slice);
        if retries > self.allowed(requests) {
            let _ = bucket
                .retries
                .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_name_their_field() {
        let ttl = Duration::from_secs(10);
        assert_eq!(
            PercentBudget::new(ttl, 0, 1.5e9).unwrap_err().field(),
            "budget.percent"
        );
        assert_eq!(
            PercentBudget::new(ttl, 0, f64::NAN).unwrap_err().field(),
            "budget.percent"
        );
        assert_eq!(
            PercentBudget::new(Duration::ZERO, 0, 0.2)
                .unwrap_err()
                .field(),
            "budget.ttl"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn fractional_percentages_count() {
        // 0.5 % of 1000 requests is 5 retries (tower #857 rounded such budgets to zero).
        let budget = PercentBudget::new(Duration::from_secs(10), 0, 0.005).unwrap();
        for _ in 0..1000 {
            budget.deposit();
        }
        assert_eq!((0..10).filter(|_| budget.withdraw()).count(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn the_floor_allows_retries_without_requests_and_requests_expire() {
        let budget = PercentBudget::new(Duration::from_secs(10), 2, 0.5).unwrap();
        assert_eq!(budget.available(), 20, "2 a second over 10 s");
        for _ in 0..10 {
            budget.deposit();
        }
        assert_eq!(budget.available(), 25);
        assert!(budget.withdraw());
        assert_eq!(budget.available(), 24);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(
            budget.available(),
            20,
            "requests and retries left the window"
        );
    }
}
