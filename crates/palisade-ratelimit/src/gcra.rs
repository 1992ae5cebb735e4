//! GCRA, the arithmetic: one timestamp per key, no timer.
//!
//! The generic cell rate algorithm keeps, for each key, the *theoretical arrival time* (TAT):
//! when the key's bucket would be full again if nothing else came. A quota of `n` a `period`
//! with a `burst` sends one cell every `T = period / n` (the emission interval) and tolerates
//! requests up to `burst × T` ahead of schedule. A request at `now` is admitted when
//! `max(TAT, now) + T − now ≤ burst × T`, and then moves TAT by `T`. It is a token bucket
//! that refills continuously, computed on demand: no timer, one integer per key, and a key
//! whose TAT has passed holds nothing a fresh key does not — which is what lets the keyed
//! state evict idle keys without error.
//!
//! Times are nanoseconds from the limiter's epoch, in integers: the figures in the headers
//! and in `Retry-After` are exact, and the Redis script computes the same ones.

use std::time::Duration;

/// A quota's constants, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gcra {
    /// The emission interval `T`: one cell every `T`.
    pub(crate) interval: u64,
    /// `burst × T`: how far ahead of now the TAT may be after an admission.
    pub(crate) tolerance: u64,
}

/// What one request was told. The figures a response may carry (`remaining`, `reset`,
/// `retry_after`) are worked out when asked: generic mode never asks, and a division per
/// request is most of what the decision itself costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// Admitted.
    pub(crate) admitted: bool,
    /// The key's TAT afterwards: moved when admitted, as it was when refused.
    pub(crate) tat: u64,
    now: u64,
    /// When refused: how far past the tolerance this request would have put the TAT
    /// (`u64::MAX`: a cost above the burst, never admitted).
    over: u64,
    gcra: Gcra,
}

impl Verdict {
    #[cfg(feature = "http")]
    /// The verdict a store reported: admitted or not, the key's TAT `ahead` of now
    /// afterwards, and when refused how far `over` the tolerance the request was.
    pub(crate) fn reported(admitted: bool, ahead: u64, over: u64, gcra: Gcra) -> Self {
        Self {
            admitted,
            tat: ahead,
            now: 0,
            over,
            gcra,
        }
    }

    /// Requests the key could make at once now, after this one.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn remaining(&self) -> u64 {
        let ahead = self.tat.saturating_sub(self.now).min(self.gcra.tolerance);
        (self.gcra.tolerance - ahead) / self.gcra.interval
    }

    /// Until the key is back to a full burst.
    pub(crate) fn reset(&self) -> Duration {
        Duration::from_nanos(self.tat.saturating_sub(self.now))
    }

    /// When refused: until this request would be admitted. `Duration::MAX` for a cost above
    /// the burst, which never will.
    pub(crate) fn retry_after(&self) -> Duration {
        match self.over {
            u64::MAX => Duration::MAX,
            over => Duration::from_nanos(over),
        }
    }
}

impl Gcra {
    /// The decision for a request of `cost` cells at `now`, for a key whose TAT is `tat`
    /// (`0`, or any time in the past, for a key with nothing recorded).
    #[inline]
    pub(crate) fn decide(&self, tat: u64, now: u64, cost: u64) -> Verdict {
        let base = tat.max(now);
        let new_tat = base.saturating_add(self.interval.saturating_mul(cost));
        let ahead = new_tat - now;
        let admitted = ahead <= self.tolerance;
        let over = if admitted {
            0
        } else if self.interval.saturating_mul(cost) > self.tolerance {
            u64::MAX
        } else {
            ahead - self.tolerance
        };
        Verdict {
            admitted,
            tat: if admitted { new_tat } else { tat },
            now,
            over,
            gcra: *self,
        }
    }

    /// Takes as many of `cells` as the key has now, at least one: what a fleet member asks
    /// its store for, to serve a lease of requests without asking again. Returns the cells
    /// granted and the verdict (refused when none could be).
    pub(crate) fn take_up_to(&self, tat: u64, now: u64, cells: u64) -> (u64, Verdict) {
        let base = tat.max(now);
        let room = self.tolerance.saturating_sub(base - now) / self.interval;
        let granted = room.min(cells);
        if granted == 0 {
            return (0, self.decide(tat, now, 1));
        }
        (granted, self.decide(tat, now, granted))
    }

    /// Gives back `cost` cells taken at or before `now`: a request admitted by one policy and
    /// refused by a later one did not happen. Never below `now` (the key cannot be more than
    /// full).
    pub(crate) fn refund(&self, tat: u64, now: u64, cost: u64) -> u64 {
        tat.saturating_sub(self.interval.saturating_mul(cost))
            .max(now)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MS: u64 = 1_000_000;

    /// 10 a second, a burst of 5.
    fn ten_a_second_burst_five() -> Gcra {
        Gcra {
            interval: 100 * MS,
            tolerance: 500 * MS,
        }
    }

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let gcra = ten_a_second_burst_five();
        let mut tat = 0;
        for expected_remaining in (0..5).rev() {
            let v = gcra.decide(tat, 0, 1);
            assert!(v.admitted);
            assert_eq!(v.remaining(), expected_remaining);
            tat = v.tat;
        }
        let refused = gcra.decide(tat, 0, 1);
        assert!(!refused.admitted);
        assert_eq!(refused.remaining(), 0);
        assert_eq!(refused.retry_after(), Duration::from_millis(100));
        assert_eq!(refused.reset(), Duration::from_millis(500));
        // One interval later, exactly one more.
        let v = gcra.decide(tat, 100 * MS, 1);
        assert!(v.admitted);
        assert_eq!(v.remaining(), 0);
        assert!(!gcra.decide(v.tat, 100 * MS, 1).admitted);
        // 30 ms early is refused, and told to come back in 30 ms.
        let early = gcra.decide(v.tat, 170 * MS, 1);
        assert_eq!(early.retry_after(), Duration::from_millis(30));
    }

    #[test]
    fn a_lease_takes_what_there_is_up_to_its_size() {
        let gcra = ten_a_second_burst_five();
        let (granted, v) = gcra.take_up_to(0, 0, 3);
        assert_eq!((granted, v.remaining()), (3, 2));
        let (granted, v) = gcra.take_up_to(v.tat, 0, 3);
        assert_eq!((granted, v.remaining()), (2, 0), "only two were left");
        let (granted, v) = gcra.take_up_to(v.tat, 0, 3);
        assert_eq!(granted, 0);
        assert!(!v.admitted);
        assert_eq!(v.retry_after(), Duration::from_millis(100));
    }

    #[test]
    fn a_cost_above_the_burst_is_never_admitted() {
        let gcra = ten_a_second_burst_five();
        let v = gcra.decide(0, 0, 6);
        assert!(!v.admitted);
        assert_eq!(v.retry_after(), Duration::MAX);
        assert!(gcra.decide(0, 0, 5).admitted);
    }

    #[test]
    fn a_refund_gives_back_what_was_taken_and_no_more() {
        let gcra = ten_a_second_burst_five();
        let v = gcra.decide(0, 0, 1);
        assert_eq!(gcra.refund(v.tat, 0, 1), 0);
        assert_eq!(gcra.refund(v.tat, 50 * MS, 1), 50 * MS, "never below now");
    }

    /// The reference: a token bucket of `burst` tokens refilled one every `interval`,
    /// counted in whole cells with the time of the last refill.
    struct Bucket {
        tokens: u64,
        burst: u64,
        interval: u64,
        last: u64,
    }

    impl Bucket {
        fn take(&mut self, now: u64) -> bool {
            let refills = (now - self.last) / self.interval;
            if refills > 0 {
                self.tokens = (self.tokens + refills).min(self.burst);
                self.last += refills * self.interval;
            }
            if self.tokens == self.burst {
                // A full bucket does not bank time: refills count from now.
                self.last = now;
            }
            if self.tokens == 0 {
                return false;
            }
            self.tokens -= 1;
            true
        }
    }

    proptest! {
        /// GCRA admits exactly what a token bucket with the same rate and burst admits.
        #[test]
        fn it_admits_what_a_token_bucket_admits(
            burst in 1u64..20,
            interval_ms in 1u64..200,
            gaps in proptest::collection::vec(0u64..400, 1..300),
        ) {
            let gcra = Gcra { interval: interval_ms * MS, tolerance: burst * interval_ms * MS };
            let mut bucket = Bucket { tokens: burst, burst, interval: interval_ms * MS, last: 0 };
            let (mut tat, mut now) = (0, 0);
            for gap in gaps {
                now += gap * MS;
                let v = gcra.decide(tat, now, 1);
                prop_assert_eq!(v.admitted, bucket.take(now), "at {} ms", now / MS);
                prop_assert_eq!(v.remaining(), bucket.tokens, "at {} ms", now / MS);
                tat = v.tat;
            }
        }
    }
}
