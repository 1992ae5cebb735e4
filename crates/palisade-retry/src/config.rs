//! The retry layer's configuration: a builder with documented defaults, validated on `build`.

use std::sync::Arc;
use std::time::Duration;

use palisade_core::ConfigError;

use crate::backoff::Backoff;
use crate::budget::BudgetConfig;
use crate::hedge::Hedge;

/// How a retry layer retries; made with [`RetryConfig::builder`].
///
/// Settings only: a layer made from it makes its own budget, so two layers made from one
/// configuration (or a clone of it) are bounded separately. To share one budget, say so:
/// [`RetryLayer::with_budget`](crate::RetryLayer::with_budget).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    pub(crate) name: Arc<str>,
    pub(crate) max_attempts: u32,
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) deadline: Option<Duration>,
    pub(crate) backoff: Backoff,
    pub(crate) max_hint: Duration,
    pub(crate) budget: BudgetConfig,
    pub(crate) replay_limit: usize,
    pub(crate) idempotency_keys: bool,
    pub(crate) jitter_seed: Option<u64>,
    pub(crate) hedge: Option<Hedge>,
}

impl RetryConfig {
    /// The defaults under `name`.
    fn defaults(name: Arc<str>) -> Self {
        Self {
            name,
            max_attempts: 3,
            attempt_timeout: None,
            deadline: None,
            backoff: Backoff::default(),
            max_hint: Duration::from_secs(30),
            budget: BudgetConfig::default(),
            replay_limit: 64 * 1024,
            idempotency_keys: false,
            jitter_seed: None,
            hedge: None,
        }
    }
}

impl RetryConfig {
    /// A builder that starts from the defaults, for the layer called `name`: the `name`
    /// label of its metrics and events. Give every layer its own.
    pub fn builder(name: impl Into<Arc<str>>) -> RetryConfigBuilder {
        RetryConfigBuilder {
            config: RetryConfig::defaults(name.into()),
        }
    }

    /// The layer's name, which labels its metrics and events.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The most attempts a request gets, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The longest a request may take, attempts and waits included, if bounded.
    pub fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// The wait between attempts when the server gives no hint.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// When requests are hedged, if they are.
    pub fn hedge(&self) -> Option<Hedge> {
        self.hedge
    }
}

impl From<&str> for RetryConfig {
    /// The defaults, under this name: what `HttpRetryLayer::with_config(name)` uses.
    fn from(name: &str) -> Self {
        Self::defaults(Arc::from(name))
    }
}

impl From<String> for RetryConfig {
    /// The defaults, under this name.
    fn from(name: String) -> Self {
        Self::defaults(Arc::from(name))
    }
}

impl From<Arc<str>> for RetryConfig {
    /// The defaults, under this name.
    fn from(name: Arc<str>) -> Self {
        Self::defaults(name)
    }
}

/// Builds a [`RetryConfig`]. Every setting has a default, given with its source.
///
/// | setting | default | from |
/// |---|---|---|
/// | [`max_attempts`](Self::max_attempts) | 3, the first included | gRPC, Polly, Google SRE |
/// | [`attempt_timeout`](Self::attempt_timeout) | none | Envoy's per-try timeout is opt-in too |
/// | [`deadline`](Self::deadline) | none | Polly's total timeout is opt-in |
/// | [`backoff`](Self::backoff) | 25 ms doubling to 250 ms, full jitter | Envoy; AWS's full jitter |
/// | [`max_hint`](Self::max_hint) | 30 s | Envoy caps `Retry-After` at 300 s; a client rarely waits that long |
/// | [`budget`](Self::budget) | 20 % of the last 10 s + 10/s, throttled: 100 tokens, a failure takes 1, a success gives ½ | Finagle's `RetryBudget` and Envoy's 20 %, with gRPC's `retryThrottling` |
/// | [`replay_limit`](Self::replay_limit) | 64 KiB | Envoy's default buffer for retries |
/// | [`idempotency_keys`](Self::idempotency_keys) | off | |
/// | [`hedge`](Self::hedge) | off | Envoy, gRPC and Finagle leave hedging opt-in |
#[derive(Debug, Clone)]
pub struct RetryConfigBuilder {
    config: RetryConfig,
}

impl RetryConfigBuilder {
    /// The most attempts a request gets, **the first included** (1 to 100): 3 means one
    /// call and up to two retries.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.config.max_attempts = n;
        self
    }

    /// Gives up on an attempt after `timeout`; the timeout is an [`AttemptTimedOut`]
    /// error, which the default policies retry.
    ///
    /// [`AttemptTimedOut`]: crate::AttemptTimedOut
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.config.attempt_timeout = Some(timeout);
        self
    }

    /// Bounds the whole request, every attempt and backoff included: when it passes during
    /// an attempt the caller gets [`DeadlineExceeded`](crate::DeadlineExceeded), and a retry
    /// whose backoff would end after it is not made (the last result is returned).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.config.deadline = Some(deadline);
        self
    }

    /// The backoff between attempts.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.config.backoff = backoff;
        self
    }

    /// The longest wait a server's hint (`Retry-After`, `grpc-retry-pushback-ms`) can impose;
    /// longer hints are cut to it.
    pub fn max_hint(mut self, max: Duration) -> Self {
        self.config.max_hint = max;
        self
    }

    /// The budget each layer made from this configuration takes its retries from. To share
    /// one budget between layers, or to use a [`Budget`](crate::budget::Budget) of your own,
    /// hand it to the layer instead: [`RetryLayer::with_budget`](crate::RetryLayer::with_budget).
    pub fn budget(mut self, budget: BudgetConfig) -> Self {
        self.config.budget = budget;
        self
    }

    /// The largest HTTP request body recorded for replay (bodies over it are sent once and
    /// not retried).
    pub fn replay_limit(mut self, bytes: usize) -> Self {
        self.config.replay_limit = bytes;
        self
    }

    /// Gives every HTTP request with a non-idempotent method an `Idempotency-Key` before its
    /// first attempt, unless it has one, and so makes it retryable.
    pub fn idempotency_keys(mut self, on: bool) -> Self {
        self.config.idempotency_keys = on;
        self
    }

    /// Hedges requests that may be retried: after [`Hedge`]'s delay with no answer, another
    /// attempt is sent while the first is still in flight, and the first final answer wins
    /// (see [`hedge`](crate::hedge)). Hedges are attempts: they count towards
    /// [`max_attempts`](Self::max_attempts) and draw on the budget. A failure the policy
    /// would retry is followed by the next attempt at once, without backoff (gRPC's hedging).
    pub fn hedge(mut self, hedge: Hedge) -> Self {
        self.config.hedge = Some(hedge);
        self
    }

    /// Seeds the backoff's jitter, for simulations and tests that must replay exactly.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.config.jitter_seed = Some(seed);
        self
    }

    /// Checks every setting and returns the configuration, or the first bad setting.
    pub fn build(self) -> Result<RetryConfig, ConfigError> {
        let c = &self.config;
        if !(1..=100).contains(&c.max_attempts) {
            return Err(ConfigError::new(
                "max_attempts",
                "must be from 1 to 100 (the first attempt included)",
            ));
        }
        if c.attempt_timeout.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::new(
                "attempt_timeout",
                "must be longer than zero",
            ));
        }
        if c.deadline.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::new("deadline", "must be longer than zero"));
        }
        c.backoff.validate()?;
        c.budget.build()?;
        if let Some(hedge) = &c.hedge {
            hedge.validate()?;
        }
        Ok(self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        RetryConfig::builder("test").build().unwrap();
    }

    #[test]
    fn bad_settings_name_their_field() {
        let field = |b: RetryConfigBuilder| b.build().unwrap_err().field().to_owned();
        let b = || RetryConfig::builder("test");
        assert_eq!(field(b().max_attempts(0)), "max_attempts");
        assert_eq!(field(b().max_attempts(101)), "max_attempts");
        assert_eq!(
            field(b().attempt_timeout(Duration::ZERO)),
            "attempt_timeout"
        );
        assert_eq!(field(b().deadline(Duration::ZERO)), "deadline");
        assert_eq!(
            field(b().budget(BudgetConfig::percent(-1.0))),
            "budget.percent"
        );
        assert_eq!(
            field(b().backoff(Backoff::exponential(Duration::ZERO, Duration::ZERO))),
            "backoff.base"
        );
        assert_eq!(
            field(b().hedge(Hedge::at_percentile(1.0))),
            "hedge.percentile"
        );
        assert_eq!(
            field(
                b().hedge(
                    Hedge::at_percentile(0.9)
                        .floor(Duration::from_secs(2))
                        .cap(Duration::from_secs(1))
                )
            ),
            "hedge.cap"
        );
    }
}
