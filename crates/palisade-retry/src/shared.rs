//! What every clone of one retry layer shares.

use std::sync::Arc;
use std::time::Duration;

use palisade_core::random::SharedRandom;

use crate::budget::Budget;
use crate::config::RetryConfig;
use crate::metrics::RetryMetrics;

pub(crate) struct Shared {
    pub(crate) config: RetryConfig,
    pub(crate) metrics: RetryMetrics,
    /// The budget: made from the configuration by this layer, or handed to it to share.
    pub(crate) budget: Arc<dyn Budget>,
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
    fn with_budget(config: RetryConfig, budget: Arc<dyn Budget>) -> Self {
        Self {
            budget,
            metrics: RetryMetrics::new(&config.name),
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
}
