//! The breaker's configuration: a builder with documented defaults, validated on `build`.

use std::sync::Arc;
use std::time::Duration;

use palisade_core::ConfigError;

use crate::phase::MAX_PROBES;
use crate::window::Window;

/// How long the breaker stays open before it lets probes through.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum OpenDuration {
    /// Always the same time (resilience4j's `waitDurationInOpenState`, Polly's
    /// `BreakDuration`).
    Fixed(Duration),
    /// `initial`, multiplied by `multiplier` each time a half-open probe fails, up to `max`,
    /// each time scaled by a random factor within `1 ± jitter` (Linkerd's failure accrual
    /// backoff, Envoy's ejection time × times ejected). Back to `initial` once the breaker
    /// closes.
    Exponential {
        /// The first open duration.
        initial: Duration,
        /// The longest open duration.
        max: Duration,
        /// The factor from one open duration to the next (at least 1).
        multiplier: f64,
        /// The random spread, as a share of the duration (within 0..=1), so that many
        /// clients that tripped together do not probe together.
        jitter: f64,
    },
}

impl OpenDuration {
    /// Always `duration`.
    pub fn fixed(duration: Duration) -> Self {
        OpenDuration::Fixed(duration)
    }

    /// From `initial` doubling up to `max`, with 20% jitter.
    pub fn exponential(initial: Duration, max: Duration) -> Self {
        OpenDuration::Exponential {
            initial,
            max,
            multiplier: 2.0,
            jitter: 0.2,
        }
    }

    /// The duration of the `opens`-th consecutive opening (the first is 1), given `random`
    /// drawn uniformly from `0..1`.
    pub(crate) fn nth(&self, opens: u32, random: f64) -> Duration {
        match *self {
            OpenDuration::Fixed(d) => d,
            OpenDuration::Exponential {
                initial,
                max,
                multiplier,
                jitter,
            } => {
                let exponent = i32::try_from(opens.saturating_sub(1)).unwrap_or(i32::MAX);
                let base =
                    (initial.as_secs_f64() * multiplier.powi(exponent)).min(max.as_secs_f64());
                let factor = 1.0 + jitter * (2.0 * random - 1.0);
                Duration::from_secs_f64((base * factor).clamp(0.0, max.as_secs_f64()))
            }
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            OpenDuration::Fixed(d) if d.is_zero() => Err(ConfigError::new(
                "open_duration",
                "must be longer than zero",
            )),
            OpenDuration::Fixed(_) => Ok(()),
            OpenDuration::Exponential {
                initial,
                max,
                multiplier,
                jitter,
            } => {
                if initial.is_zero() {
                    Err(ConfigError::new(
                        "open_duration",
                        "initial must be longer than zero",
                    ))
                } else if max < initial {
                    Err(ConfigError::new(
                        "open_duration",
                        format!("max ({max:?}) must be at least initial ({initial:?})"),
                    ))
                } else if !(multiplier >= 1.0 && multiplier.is_finite()) {
                    Err(ConfigError::new(
                        "open_duration",
                        format!(
                            "multiplier must be a finite number of at least 1, got {multiplier}"
                        ),
                    ))
                } else if !(0.0..=1.0).contains(&jitter) {
                    Err(ConfigError::new(
                        "open_duration",
                        format!("jitter must be within 0.0..=1.0, got {jitter}"),
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// A validated breaker configuration; build one with [`BreakerConfig::builder`].
///
/// Cheap to clone. A layer made from it owns one breaker; make several layers from one
/// configuration to get several independent breakers with the same settings.
#[derive(Debug, Clone)]
pub struct BreakerConfig {
    pub(crate) name: Arc<str>,
    pub(crate) consecutive_failures: Option<u32>,
    pub(crate) failure_rate: Option<f64>,
    pub(crate) slow_calls: Option<(f64, Duration)>,
    pub(crate) window: Window,
    pub(crate) min_calls: u32,
    pub(crate) open_duration: OpenDuration,
    pub(crate) half_open_probes: u32,
    pub(crate) successes_to_close: u32,
    pub(crate) jitter_seed: Option<u64>,
    pub(crate) silent: bool,
}

impl BreakerConfig {
    /// The defaults under `name`: valid by construction (`build` re-checks them in a test).
    fn defaults(name: Arc<str>) -> Self {
        Self {
            name,
            consecutive_failures: Some(5),
            failure_rate: Some(0.5),
            slow_calls: None,
            window: Window::time(Duration::from_secs(10)),
            min_calls: 20,
            open_duration: OpenDuration::exponential(
                Duration::from_secs(5),
                Duration::from_secs(60),
            ),
            half_open_probes: 3,
            successes_to_close: 3,
            jitter_seed: None,
            silent: false,
        }
    }
}

impl BreakerConfig {
    /// A builder that starts from the defaults, for the breaker called `name`: the `name`
    /// label of its metrics and events. Give every breaker its own.
    pub fn builder(name: impl Into<Arc<str>>) -> BreakerConfigBuilder {
        BreakerConfigBuilder {
            config: BreakerConfig::defaults(name.into()),
        }
    }

    /// The breaker's name, which labels its metrics and events.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The same configuration under another name: one breaker per endpoint or per key,
    /// each with its own metrics.
    pub fn renamed(&self, name: impl Into<Arc<str>>) -> BreakerConfig {
        BreakerConfig {
            name: name.into(),
            ..self.clone()
        }
    }

    /// The same configuration, [silent](BreakerConfigBuilder::silent).
    pub fn silenced(&self) -> BreakerConfig {
        BreakerConfig {
            silent: true,
            ..self.clone()
        }
    }

    /// How long the breaker stays open.
    pub fn open_duration(&self) -> OpenDuration {
        self.open_duration
    }

    /// The slow-call threshold, if slow calls can trip the breaker.
    pub(crate) fn slow_call_threshold(&self) -> Option<Duration> {
        self.slow_calls.map(|(_, threshold)| threshold)
    }

    /// Whether a policy reads the sliding window (a failure rate or a slow-call rate).
    /// Without one the window is not kept, and a call costs no window update.
    pub(crate) fn keeps_window(&self) -> bool {
        self.failure_rate.is_some() || self.slow_calls.is_some()
    }
}

impl From<&str> for BreakerConfig {
    /// The defaults, under this name: what `HttpCircuitBreakerLayer::with_config(name)` uses.
    fn from(name: &str) -> Self {
        Self::defaults(Arc::from(name))
    }
}

impl From<String> for BreakerConfig {
    /// The defaults, under this name.
    fn from(name: String) -> Self {
        Self::defaults(Arc::from(name))
    }
}

impl From<Arc<str>> for BreakerConfig {
    /// The defaults, under this name.
    fn from(name: Arc<str>) -> Self {
        Self::defaults(name)
    }
}

/// Builds a [`BreakerConfig`]. Every setting has a default, given with its source; the
/// breaker trips when **any** of its policies says so.
///
/// | setting | default | from |
/// |---|---|---|
/// | [`consecutive_failures`](Self::consecutive_failures) | 5 | Envoy's `consecutive_5xx`, Finagle's failure accrual |
/// | [`failure_rate`](Self::failure_rate) | 50 % | resilience4j's `failureRateThreshold` |
/// | [`slow_calls`](Self::slow_calls) | off | resilience4j's default (100 % over 60 s) never trips in practice |
/// | [`window`](Self::window) | the last 10 s, in 10 buckets | Polly's `SamplingDuration` (30 s), shortened to react within seconds |
/// | [`min_calls`](Self::min_calls) | 20 | resilience4j and Polly use 100; 20 lets low-traffic clients trip |
/// | [`open_duration`](Self::open_duration) | 5 s doubling to 60 s, ±20 % | Polly's 5 s, Linkerd's 60 s cap and jitter |
/// | [`half_open_probes`](Self::half_open_probes) | 3 at a time | between Polly's 1 and resilience4j's 10 |
/// | [`successes_to_close`](Self::successes_to_close) | 3 | |
#[derive(Debug, Clone)]
pub struct BreakerConfigBuilder {
    config: BreakerConfig,
}

impl BreakerConfigBuilder {
    /// The same settings under another name (a file that names the breaker).
    #[cfg(feature = "serde")]
    pub(crate) fn rename(mut self, name: String) -> Self {
        self.config.name = name.into();
        self
    }

    /// Trips after `n` failures in a row (at least 1).
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.config.consecutive_failures = Some(n);
        self
    }

    /// Turns the consecutive-failures policy off.
    pub fn no_consecutive_failures(mut self) -> Self {
        self.config.consecutive_failures = None;
        self
    }

    /// Trips when at least this share of the calls in the window failed (within `0.0..=1.0`,
    /// above 0), once the window holds [`min_calls`](Self::min_calls).
    pub fn failure_rate(mut self, rate: f64) -> Self {
        self.config.failure_rate = Some(rate);
        self
    }

    /// Turns the failure-rate policy off.
    pub fn no_failure_rate(mut self) -> Self {
        self.config.failure_rate = None;
        self
    }

    /// Trips when at least `rate` of the calls in the window took `threshold` or longer,
    /// whether they succeeded or not.
    pub fn slow_calls(mut self, rate: f64, threshold: Duration) -> Self {
        self.config.slow_calls = Some((rate, threshold));
        self
    }

    /// The window the rate policies look at.
    pub fn window(mut self, window: Window) -> Self {
        self.config.window = window;
        self
    }

    /// How many calls the window must hold before a rate can trip the breaker.
    pub fn min_calls(mut self, n: u32) -> Self {
        self.config.min_calls = n;
        self
    }

    /// How long the breaker stays open before probing.
    pub fn open_duration(mut self, duration: OpenDuration) -> Self {
        self.config.open_duration = duration;
        self
    }

    /// How many probe calls may run at once while half-open.
    pub fn half_open_probes(mut self, n: u32) -> Self {
        self.config.half_open_probes = n;
        self
    }

    /// How many probes must succeed to close the breaker; one failed probe opens it again.
    pub fn successes_to_close(mut self, n: u32) -> Self {
        self.config.successes_to_close = n;
        self
    }

    /// Seeds the open-duration jitter so that a run can be replayed exactly (simulations,
    /// tests). By default every breaker seeds itself at random. Breakers made from one seeded
    /// configuration by [`KeyedBreakers`](crate::KeyedBreakers) still draw different
    /// sequences: the seed is mixed with each breaker's name.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.config.jitter_seed = Some(seed);
        self
    }

    /// Records no metrics, and tells its changes of state at DEBUG rather than WARN/INFO:
    /// for a breaker whose owner reports for it — the ejection breaker of each endpoint in
    /// a palisade balancer, which counts ejections per balancer and would otherwise leave
    /// a set of `palisade_breaker_*` series behind every endpoint it ever had.
    pub fn silent(mut self) -> Self {
        self.config.silent = true;
        self
    }

    /// Checks every setting and returns the configuration, or the first bad setting.
    pub fn build(self) -> Result<BreakerConfig, ConfigError> {
        let c = self.config;
        if c.name.is_empty() {
            return Err(ConfigError::new("name", "must not be empty"));
        }
        if c.consecutive_failures == Some(0) {
            return Err(ConfigError::new(
                "consecutive_failures",
                "must be at least 1 (use no_consecutive_failures to turn it off)",
            ));
        }
        if let Some(rate) = c.failure_rate {
            check_rate("failure_rate", rate)?;
        }
        if let Some((rate, threshold)) = c.slow_calls {
            check_rate("slow_calls", rate)?;
            if threshold.is_zero() {
                return Err(ConfigError::new(
                    "slow_calls",
                    "threshold must be longer than zero",
                ));
            }
        }
        if c.consecutive_failures.is_none() && c.failure_rate.is_none() && c.slow_calls.is_none() {
            return Err(ConfigError::new(
                "consecutive_failures",
                "no trip policy is left: set consecutive_failures, failure_rate or slow_calls",
            ));
        }
        match c.window {
            Window::Count(0) => {
                return Err(ConfigError::new("window", "must hold at least 1 call"));
            }
            Window::Time { length, .. } if length.is_zero() => {
                return Err(ConfigError::new(
                    "window",
                    "length must be longer than zero",
                ));
            }
            Window::Time { buckets: 0, .. } => {
                return Err(ConfigError::new("window", "must have at least 1 bucket"));
            }
            _ => {}
        }
        c.open_duration.validate()?;
        for (field, n) in [
            ("half_open_probes", c.half_open_probes),
            ("successes_to_close", c.successes_to_close),
        ] {
            if n == 0 || n > MAX_PROBES {
                return Err(ConfigError::new(
                    field,
                    format!("must be within 1..={MAX_PROBES}, got {n}"),
                ));
            }
        }
        Ok(c)
    }
}

fn check_rate(field: &'static str, rate: f64) -> Result<(), ConfigError> {
    if rate > 0.0 && rate <= 1.0 {
        Ok(())
    } else {
        Err(ConfigError::new(
            field,
            format!("rate must be within 0.0..=1.0 and above 0, got {rate}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        BreakerConfig::builder("test").build().unwrap();
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases: Vec<(BreakerConfigBuilder, &str)> = vec![
            (
                BreakerConfig::builder("test").failure_rate(1.5),
                "failure_rate",
            ),
            (
                BreakerConfig::builder("test").failure_rate(0.0),
                "failure_rate",
            ),
            (
                BreakerConfig::builder("test").failure_rate(f64::NAN),
                "failure_rate",
            ),
            (
                BreakerConfig::builder("test").slow_calls(-0.1, Duration::from_secs(1)),
                "slow_calls",
            ),
            (
                BreakerConfig::builder("test").slow_calls(0.5, Duration::ZERO),
                "slow_calls",
            ),
            (
                BreakerConfig::builder("test").consecutive_failures(0),
                "consecutive_failures",
            ),
            (
                BreakerConfig::builder("test").window(Window::count(0)),
                "window",
            ),
            (
                BreakerConfig::builder("test").window(Window::time(Duration::ZERO)),
                "window",
            ),
            (
                BreakerConfig::builder("test").half_open_probes(0),
                "half_open_probes",
            ),
            (
                BreakerConfig::builder("test").successes_to_close(0),
                "successes_to_close",
            ),
            (
                BreakerConfig::builder("test").successes_to_close(70_000),
                "successes_to_close",
            ),
            (
                BreakerConfig::builder("test").open_duration(OpenDuration::fixed(Duration::ZERO)),
                "open_duration",
            ),
            (
                BreakerConfig::builder("test").open_duration(OpenDuration::exponential(
                    Duration::from_secs(10),
                    Duration::from_secs(1),
                )),
                "open_duration",
            ),
            (BreakerConfig::builder(""), "name"),
            (
                BreakerConfig::builder("test")
                    .no_consecutive_failures()
                    .no_failure_rate(),
                "consecutive_failures",
            ),
        ];
        for (builder, field) in cases {
            let err = builder.build().unwrap_err();
            assert_eq!(err.field(), field, "{err}");
        }
    }

    #[test]
    fn exponential_open_durations_grow_to_the_cap_within_the_jitter() {
        let d = OpenDuration::exponential(Duration::from_secs(5), Duration::from_secs(60));
        assert_eq!(d.nth(1, 0.5), Duration::from_secs(5));
        assert_eq!(d.nth(2, 0.5), Duration::from_secs(10));
        assert_eq!(d.nth(5, 0.5), Duration::from_secs(60));
        assert_eq!(d.nth(u32::MAX, 0.5), Duration::from_secs(60));
        assert_eq!(d.nth(1, 0.0), Duration::from_secs(4));
        assert!(d.nth(1, 0.999_999) <= Duration::from_secs(6));
        assert!(
            d.nth(5, 0.999_999) <= Duration::from_secs(60),
            "the cap holds with jitter"
        );
        let fixed = OpenDuration::fixed(Duration::from_secs(3));
        assert_eq!(fixed.nth(9, 0.9), Duration::from_secs(3));
    }
}
