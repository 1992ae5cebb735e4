//! What every clone of one retry layer shares.

use std::sync::Arc;
use std::time::Duration;

use palisade_core::deadline::Deadline;
use palisade_core::random::SharedRandom;
use tokio::time::Instant;

use crate::budget::Budget;
use crate::config::RetryConfig;
use crate::hedge::Hedging;
use crate::metrics::RetryMetrics;

pub(crate) struct Shared {
    pub(crate) config: RetryConfig,
    pub(crate) metrics: RetryMetrics,
    /// The budget: made from the configuration by this layer, or handed to it to share.
    pub(crate) budget: Arc<dyn Budget>,
    /// The hedge delay and the latency it learns from, when the layer hedges.
    pub(crate) hedging: Option<Hedging>,
    random: SharedRandom,
}

impl Shared {
    /// The state of a layer made from `config`: a budget of its own, as `config` says.
    pub(crate) fn new(config: RetryConfig) -> Self {
        let budget = config
            .budget
            .build()
            .expect("RetryConfigBuilder::build checked the budget");
        Self::with_budget(config, budget)
    }

    /// The same layer's state, drawing on `budget` instead: a layer's `with_budget`.
    pub(crate) fn rebudgeted(&self, budget: impl Budget + 'static) -> Arc<Self> {
        Arc::new(Self::with_budget(self.config.clone(), Arc::new(budget)))
    }

    /// The state of a layer made from `config` that draws on `budget`.
    pub(crate) fn with_budget(config: RetryConfig, budget: Arc<dyn Budget>) -> Self {
        let metrics = RetryMetrics::new(&config.name);
        let hedging = config
            .hedge
            .map(|hedge| Hedging::new(hedge, config.max_attempts));
        if let Some(hedging) = &hedging {
            metrics.hedge_delay(hedging.delay());
        }
        Self {
            budget,
            hedging,
            metrics,
            random: SharedRandom::new(config.jitter_seed, &config.name),
            config,
        }
    }

    /// The wait before retry number `retry`: the server's hint, capped, or the backoff.
    pub(crate) fn delay(&self, retry: u32, previous: Duration, hint: Option<Duration>) -> Duration {
        match hint {
            Some(hint) => hint.min(self.config.max_hint),
            None => self
                .config
                .backoff
                .delay(retry, previous, self.random.next_f64()),
        }
    }

    /// When a request arriving now must be answered, and how long that gives it: the
    /// configured deadline, or the one the request inherited (the task's current
    /// [`Deadline`], which palisade-deadline's server layer sets around a handler), whichever
    /// comes first.
    pub(crate) fn deadline(&self) -> Option<(Instant, Duration)> {
        let own = self.config.deadline.map(|d| (Instant::now() + d, d));
        let inherited = Deadline::current().map(|d| (d.instant(), d.remaining()));
        match (own, inherited) {
            (Some(own), Some(inherited)) => Some(if inherited.0 < own.0 { inherited } else { own }),
            (own, inherited) => own.or(inherited),
        }
    }
}
