//! Slow start: a new or returning endpoint's share of traffic ramps up over a window.
//!
//! A server that has just started is cold — caches empty, connections unpooled, code not yet
//! compiled by its JIT — and the first full share of traffic it gets is served slowly, or
//! not at all. Least-loaded balancing makes it worse by itself: an endpoint with no history
//! has no queue and looks idle. palisade's balancer has always started a new endpoint at a
//! cold latency estimate (30 ms), which keeps it out of the way until its estimate decays —
//! a ramp set by the estimate's decay, not by anyone's choice. With [`SlowStart`], the new
//! endpoint starts at the fleet's current estimate instead, and its *weight* ramps up over a
//! window, as Envoy's `slow_start_config` does: at `t` into the window its weight is
//! `max(min_weight, (t / window)^(1 / aggression))` of its own (its cost divided by that).
//! An endpoint that comes back from ejection ramps up again from the start.
//!
//! ```
//! use std::time::Duration;
//! use palisade_balance::{BalanceConfig, SlowStart};
//!
//! let config = BalanceConfig::builder("inventory")
//!     // Full share after 30 s; a linear ramp from a tenth of it (Envoy's defaults).
//!     .slow_start(SlowStart::new(Duration::from_secs(30)))
//!     .build()
//!     .unwrap();
//! # let _ = config;
//! ```

use std::time::Duration;

use palisade_core::ConfigError;

/// How a new or returning endpoint's share ramps up; see the [module docs](self).
///
/// | setting | default | from |
/// |---|---|---|
/// | window | (required) | Envoy's `slow_start_window` |
/// | [`aggression`](Self::aggression) | 1.0: linear | Envoy's `aggression` |
/// | [`min_weight`](Self::min_weight) | 0.1 of its weight | Envoy's `min_weight_percent` (10 %) |
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlowStart {
    window: Duration,
    aggression: f64,
    min_weight: f64,
}

impl SlowStart {
    /// A ramp over `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            aggression: 1.0,
            min_weight: 0.1,
        }
    }

    /// How fast the weight rises early in the window: above 1 it rises faster at first,
    /// below 1 slower (1: linearly).
    pub fn aggression(mut self, aggression: f64) -> Self {
        self.aggression = aggression;
        self
    }

    /// The least share of its weight an endpoint gets, however early in the window.
    pub fn min_weight(mut self, share: f64) -> Self {
        self.min_weight = share;
        self
    }

    /// The ramp's window.
    pub fn window(&self) -> Duration {
        self.window
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.window.is_zero() {
            return Err(ConfigError::new(
                "slow_start.window",
                "must be longer than zero",
            ));
        }
        if !(self.aggression > 0.0 && self.aggression.is_finite()) {
            return Err(ConfigError::new(
                "slow_start.aggression",
                "must be above zero (1: a linear ramp)",
            ));
        }
        if !(self.min_weight > 0.0 && self.min_weight <= 1.0) {
            return Err(ConfigError::new(
                "slow_start.min_weight",
                "must be a share above 0 and at most 1",
            ));
        }
        Ok(())
    }

    /// The share of its weight an endpoint gets `elapsed` after it joined.
    pub(crate) fn factor(&self, elapsed: Duration) -> f64 {
        if elapsed >= self.window {
            return 1.0;
        }
        let t = elapsed.as_secs_f64() / self.window.as_secs_f64();
        t.powf(1.0 / self.aggression).max(self.min_weight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weight_ramps_from_the_floor_to_whole() {
        let linear = SlowStart::new(Duration::from_secs(10));
        assert_eq!(linear.factor(Duration::ZERO), 0.1);
        assert_eq!(linear.factor(Duration::from_millis(500)), 0.1, "the floor");
        assert!((linear.factor(Duration::from_secs(5)) - 0.5).abs() < 1e-9);
        assert_eq!(linear.factor(Duration::from_secs(10)), 1.0);
        assert_eq!(linear.factor(Duration::from_secs(60)), 1.0);
        let eager = linear.aggression(2.0);
        assert!((eager.factor(Duration::from_millis(2_500)) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn bad_settings_name_their_field() {
        let field = |s: SlowStart| s.validate().unwrap_err().field().to_owned();
        assert_eq!(field(SlowStart::new(Duration::ZERO)), "slow_start.window");
        let s = SlowStart::new(Duration::from_secs(1));
        assert_eq!(field(s.aggression(0.0)), "slow_start.aggression");
        assert_eq!(field(s.min_weight(0.0)), "slow_start.min_weight");
        assert_eq!(field(s.min_weight(1.5)), "slow_start.min_weight");
        s.validate().unwrap();
    }
}
