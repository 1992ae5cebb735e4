//! How long to wait before a retry.
//!
//! Exponential backoff spreads a client's retries out in time; jitter spreads many clients'
//! retries apart, so that the clients an outage failed together do not come back together.
//! Brooker's simulations for AWS found full jitter does the least total work and decorrelated
//! jitter finishes soonest; no jitter is by far the worst. Full jitter is the default.

use std::time::Duration;

use palisade_core::ConfigError;

/// How the exponential delay is randomised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Jitter {
    /// Exactly `min(cap, base × 2ⁿ)`: for tests; a fleet retries in lockstep with it.
    None,
    /// Uniform in `0 ..= min(cap, base × 2ⁿ)` (AWS's and Envoy's default).
    Full,
    /// Half the exponential delay, plus up to as much again at random.
    Equal,
    /// Uniform in `base ..= 3 × the previous delay`, capped (AWS's "decorrelated jitter").
    Decorrelated,
}

/// Exponential backoff with jitter and a cap.
///
/// The default is Envoy's: 25 ms doubling to at most 250 ms, full jitter. gRPC's retry
/// policy (gRFC A6) is `exponential(initialBackoff, maxBackoff)` with its
/// `backoffMultiplier` as the [`multiplier`](Self::multiplier), full jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    multiplier: f64,
    jitter: Jitter,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(25),
            cap: Duration::from_millis(250),
            multiplier: 2.0,
            jitter: Jitter::Full,
        }
    }
}

impl Backoff {
    /// From `base`, doubling each retry, never above `cap`, with full jitter.
    pub fn exponential(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            multiplier: 2.0,
            jitter: Jitter::Full,
        }
    }

    /// The same backoff growing `multiplier`-fold each retry instead of doubling (gRPC's
    /// `backoffMultiplier`).
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// The same backoff with another jitter.
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.base.is_zero() {
            return Err(ConfigError::new("backoff.base", "must be longer than zero"));
        }
        if self.cap < self.base {
            return Err(ConfigError::new("backoff.cap", "must be at least the base"));
        }
        if !(self.multiplier.is_finite() && self.multiplier > 0.0) {
            return Err(ConfigError::new(
                "backoff.multiplier",
                "must be a number above zero",
            ));
        }
        Ok(())
    }

    /// The delay before retry number `retry` (the first retry is 1), given the delay before
    /// the previous one (zero for the first) and `random` drawn uniformly from `0..1`.
    pub fn delay(&self, retry: u32, previous: Duration, random: f64) -> Duration {
        let exponential = if self.multiplier == 2.0 {
            // Doubling, in integers: exact.
            self.base
                .saturating_mul(1u32 << retry.saturating_sub(1).min(31))
                .min(self.cap)
        } else {
            let grown = self.base.as_secs_f64()
                * self
                    .multiplier
                    .powi(i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX));
            // Capped before it becomes a duration: a growth past any duration is the cap.
            Duration::from_secs_f64(grown.min(self.cap.as_secs_f64()))
        };
        match self.jitter {
            Jitter::None => exponential,
            Jitter::Full => exponential.mul_f64(random),
            Jitter::Equal => exponential / 2 + (exponential / 2).mul_f64(random),
            Jitter::Decorrelated => {
                let high = previous.max(self.base).saturating_mul(3);
                (self.base + (high - self.base).mul_f64(random)).min(self.cap)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn every_jitter_stays_within_its_bounds() {
        let backoff = Backoff::exponential(10 * MS, 100 * MS);
        for retry in 1..=8 {
            let exponential = (10 * MS * (1 << (retry - 1))).min(100 * MS);
            for random in [0.0, 0.25, 0.5, 0.999_999] {
                let none = backoff.jitter(Jitter::None).delay(retry, MS, random);
                assert_eq!(none, exponential);
                let full = backoff.delay(retry, MS, random);
                assert!(full <= exponential);
                let equal = backoff.jitter(Jitter::Equal).delay(retry, MS, random);
                assert!(equal >= exponential / 2 && equal <= exponential);
                let previous = 40 * MS;
                let decorrelated = backoff
                    .jitter(Jitter::Decorrelated)
                    .delay(retry, previous, random);
                assert!(decorrelated >= 10 * MS && decorrelated <= 100 * MS);
            }
        }
        assert_eq!(
            backoff.delay(3, MS, 0.5),
            20 * MS,
            "full jitter: half of 40 ms"
        );
        assert_eq!(backoff.delay(40, MS, 0.0), Duration::ZERO, "no overflow");
    }

    #[test]
    fn a_multiplier_grows_the_delay_as_grpc_s_does() {
        // gRFC A6: the n-th retry waits random(0, min(initial × multiplier^(n−1), max)).
        let backoff = Backoff::exponential(100 * MS, Duration::from_secs(1))
            .multiplier(1.5)
            .jitter(Jitter::None);
        let delays: Vec<_> = (1..=7).map(|n| backoff.delay(n, MS, 0.0)).collect();
        let millis: Vec<u128> = delays.iter().map(|d| d.as_millis()).collect();
        assert_eq!(millis, [100, 150, 225, 337, 506, 759, 1000]);
        let huge = backoff.multiplier(1e10);
        assert_eq!(huge.delay(u32::MAX, MS, 0.0), Duration::from_secs(1));
        assert_eq!(
            Backoff::default()
                .multiplier(0.0)
                .validate()
                .unwrap_err()
                .field(),
            "backoff.multiplier"
        );
    }

    #[test]
    fn bad_settings_name_their_field() {
        assert_eq!(
            Backoff::exponential(Duration::ZERO, MS)
                .validate()
                .unwrap_err()
                .field(),
            "backoff.base"
        );
        assert_eq!(
            Backoff::exponential(2 * MS, MS)
                .validate()
                .unwrap_err()
                .field(),
            "backoff.cap"
        );
    }
}
