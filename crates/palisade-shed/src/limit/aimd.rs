use std::time::Duration;

use palisade_core::ConfigError;

use super::{Limit, Sample};

/// Additive increase, multiplicative decrease.
///
/// A request slower than `threshold` multiplies the limit by `backoff` (0.9): the server is
/// queueing. A request under it adds one — but only when the server was using at least half
/// of the limit, so that a limit that is never reached does not grow without end (Netflix's
/// rule).
#[derive(Debug, Clone, Copy)]
pub struct Aimd {
    min: usize,
    max: usize,
    initial: usize,
    threshold: Duration,
    backoff: f64,
}

impl Aimd {
    /// From `initial`, between `min` and `max`, backing off on requests slower than
    /// `threshold`.
    pub fn new(
        min: usize,
        initial: usize,
        max: usize,
        threshold: Duration,
    ) -> Result<Self, ConfigError> {
        super::check_bounds(min, initial, max)?;
        if threshold.is_zero() {
            return Err(ConfigError::new(
                "limit.threshold",
                "must be longer than zero",
            ));
        }
        Ok(Self {
            min,
            max,
            initial,
            threshold,
            backoff: 0.9,
        })
    }

    /// The factor applied on a slow request (within 0.5..1; 0.9 by default).
    pub fn backoff(mut self, factor: f64) -> Result<Self, ConfigError> {
        if !(0.5..1.0).contains(&factor) {
            return Err(ConfigError::new(
                "limit.backoff",
                "must be at least 0.5 and below 1",
            ));
        }
        self.backoff = factor;
        Ok(self)
    }
}

impl Limit for Aimd {
    fn initial(&self) -> usize {
        self.initial
    }

    fn update(&mut self, limit: usize, sample: Sample) -> usize {
        let next = if sample.latency >= self.threshold {
            (limit as f64 * self.backoff) as usize
        } else if sample.inflight * 2 >= limit {
            limit + 1
        } else {
            limit
        };
        next.clamp(self.min, self.max)
    }

    fn bounds(&self) -> (usize, usize) {
        (self.min, self.max)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn sample(latency_ms: u64, inflight: usize) -> Sample {
        Sample {
            at: Instant::now(),
            latency: Duration::from_millis(latency_ms),
            inflight,
        }
    }

    #[test]
    fn grows_by_one_backs_off_by_a_factor_and_stays_in_bounds() {
        let mut aimd = Aimd::new(2, 10, 12, Duration::from_millis(100)).unwrap();
        assert_eq!(aimd.update(10, sample(10, 5)), 11, "busy enough to grow");
        assert_eq!(
            aimd.update(10, sample(10, 4)),
            10,
            "a limit not used does not grow"
        );
        assert_eq!(aimd.update(12, sample(10, 12)), 12, "capped at the maximum");
        assert_eq!(aimd.update(10, sample(100, 10)), 9, "slow: × 0.9");
        assert_eq!(aimd.update(2, sample(500, 2)), 2, "never under the minimum");
    }

    #[test]
    fn bad_settings_name_their_field() {
        let ms = Duration::from_millis(1);
        assert_eq!(Aimd::new(0, 1, 2, ms).unwrap_err().field(), "limit.min");
        assert_eq!(Aimd::new(2, 1, 4, ms).unwrap_err().field(), "limit.initial");
        assert_eq!(
            Aimd::new(1, 1, 2, Duration::ZERO).unwrap_err().field(),
            "limit.threshold"
        );
        let aimd = Aimd::new(1, 1, 2, ms).unwrap();
        assert_eq!(aimd.backoff(1.0).unwrap_err().field(), "limit.backoff");
    }
}
