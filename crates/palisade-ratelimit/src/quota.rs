//! [`Quota`]: how many requests, over what period, with what burst.

use std::time::Duration;

use palisade_core::ConfigError;

use crate::gcra::Gcra;

/// How many requests a key may make: `count` every `period`, at most `burst` of them at once.
///
/// The burst is `count` unless set: `Quota::per_minute(60)` admits 60 at once, then one a
/// second. A burst of 1 spaces requests evenly (one every `period / count`), which is what a
/// downstream that cannot take bursts wants.
///
/// ```
/// use std::time::Duration;
/// use palisade_ratelimit::Quota;
///
/// let quota = Quota::per_second(100).burst(20);
/// assert_eq!(quota.interval(), Duration::from_millis(10));
/// assert_eq!(quota.burst_size(), 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    count: u32,
    period: Duration,
    burst: Option<u32>,
}

impl Quota {
    /// `count` requests a second.
    pub fn per_second(count: u32) -> Self {
        Self::new(count, Duration::from_secs(1))
    }

    /// `count` requests a minute.
    pub fn per_minute(count: u32) -> Self {
        Self::new(count, Duration::from_secs(60))
    }

    /// `count` requests an hour.
    pub fn per_hour(count: u32) -> Self {
        Self::new(count, Duration::from_secs(3600))
    }

    /// `count` requests every `period`.
    pub fn new(count: u32, period: Duration) -> Self {
        Self {
            count,
            period,
            burst: None,
        }
    }

    /// At most `burst` requests at once (`count` by default).
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// The requests admitted at once from a key at rest.
    pub fn burst_size(&self) -> u32 {
        self.burst.unwrap_or(self.count)
    }

    /// The requests of a period.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The time between two requests at the sustained rate: `period / count`.
    pub fn interval(&self) -> Duration {
        self.period / self.count.max(1)
    }

    /// The first bad setting, named `field` (`policies[0].quota`, say).
    pub(crate) fn validate(&self, field: &str) -> Result<(), ConfigError> {
        if self.count == 0 {
            return Err(ConfigError::new(
                format!("{field}.count"),
                "must be at least 1 (to refuse everything, route to a handler that does)",
            ));
        }
        if self.period.is_zero() || self.period > Duration::from_secs(366 * 24 * 3600) {
            return Err(ConfigError::new(
                format!("{field}.period"),
                "must be above zero and at most a year",
            ));
        }
        if self.interval().is_zero() {
            return Err(ConfigError::new(
                format!("{field}.count"),
                "is more than one request a nanosecond over the period",
            ));
        }
        if self.burst == Some(0) {
            return Err(ConfigError::new(
                format!("{field}.burst"),
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// The constants of the arithmetic, in nanoseconds.
    pub(crate) fn gcra(&self) -> Gcra {
        let interval = u64::try_from(self.interval().as_nanos()).unwrap_or(u64::MAX);
        Gcra {
            interval,
            tolerance: interval.saturating_mul(u64::from(self.burst_size())),
        }
    }

    /// The quota as the IETF `RateLimit-Policy` field says it: `q` requests every `w` whole
    /// seconds. A period under a second is scaled up to one (`5` per 500 ms is `q=10;w=1`).
    #[cfg(feature = "http")]
    pub(crate) fn quota_and_window(&self) -> (u64, u64) {
        let period = self.period.as_nanos();
        let window_secs = period.div_ceil(1_000_000_000).max(1);
        let quota = (u128::from(self.count) * window_secs * 1_000_000_000 + period / 2) / period;
        (
            u64::try_from(quota).unwrap_or(u64::MAX),
            u64::try_from(window_secs).unwrap_or(u64::MAX),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_quotas_name_their_field() {
        let field = |q: Quota| q.validate("quota").unwrap_err().field().to_owned();
        assert_eq!(field(Quota::per_second(0)), "quota.count");
        assert_eq!(field(Quota::new(1, Duration::ZERO)), "quota.period");
        assert_eq!(field(Quota::per_second(10).burst(0)), "quota.burst");
        assert_eq!(
            field(Quota::new(10, Duration::from_nanos(5))),
            "quota.count"
        );
        assert!(Quota::per_second(10).validate("quota").is_ok());
    }

    #[test]
    fn the_policy_window_is_whole_seconds() {
        assert_eq!(Quota::per_minute(100).quota_and_window(), (100, 60));
        assert_eq!(Quota::per_second(10).quota_and_window(), (10, 1));
        assert_eq!(
            Quota::new(5, Duration::from_millis(500)).quota_and_window(),
            (10, 1)
        );
        assert_eq!(
            Quota::new(3, Duration::from_millis(1500)).quota_and_window(),
            (4, 2)
        );
    }
}
