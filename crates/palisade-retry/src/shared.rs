//! What every clone of one retry layer shares.

use std::time::Duration;

use palisade_core::random::SharedRandom;

use crate::config::RetryConfig;
use crate::metrics::RetryMetrics;

pub(crate) struct Shared {
    pub(crate) config: RetryConfig,
    pub(crate) metrics: RetryMetrics,
    random: SharedRandom,
}

impl Shared {
    pub(crate) fn new(config: RetryConfig) -> Self {
        Self {
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
