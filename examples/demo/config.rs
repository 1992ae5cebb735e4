//! The demo's stack configuration: `demo.toml` beside this file, or the file given with
//! `--config FILE`, read with `palisade::config::from_toml` — the way an application reads
//! its layers' settings so that an operator can tune them without a rebuild.
//!
//! The names in the file are the `name` labels of the layers' metrics: the live view and
//! the summary read the gateway's series by them.

use palisade::balance::BalanceConfig;
use palisade::breaker::BreakerConfig;
use palisade::deadline::{DeadlineConfig, PropagateConfig};
use palisade::idempotency::IdempotencyConfig;
use palisade::ratelimit::RateLimitConfig;
use palisade::retry::RetryConfig;
use palisade::shed::ShedConfig;
use serde::Deserialize;

/// The demo's own configuration, read when no `--config` is given.
const DEFAULT: &str = include_str!("demo.toml");

/// Every layer's configuration, as the file lays them out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Stack {
    pub(crate) server: Server,
    pub(crate) client: Client,
}

/// The gateway's own protection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Server {
    pub(crate) deadline: DeadlineConfig,
    /// Each client's quota; fleet-wide on Redis with `--redis` or `--redis-cluster`.
    pub(crate) ratelimit: RateLimitConfig,
    pub(crate) shed: ShedConfig,
    pub(crate) idempotency: IdempotencyConfig,
}

/// The stack the gateway calls the fleet through.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Client {
    pub(crate) breaker: BreakerConfig,
    /// Orders: retried, each retry carrying the order's `Idempotency-Key`.
    pub(crate) retry: RetryConfig,
    /// Reads: hedged as well as retried.
    pub(crate) reads: RetryConfig,
    pub(crate) deadline: PropagateConfig,
    pub(crate) balance: BalanceConfig,
}

impl Stack {
    /// The file at `path`, or the demo's own when there is none; a mistake is reported with
    /// the field's path and line (`client.retry.budget.percent: … (line 24)`).
    pub(crate) fn read(path: Option<&str>) -> Result<Stack, String> {
        let (text, source) = match path {
            Some(path) => (
                std::fs::read_to_string(path).map_err(|error| format!("{path}: {error}"))?,
                path,
            ),
            None => (DEFAULT.to_owned(), "demo.toml"),
        };
        palisade::config::from_toml(&text).map_err(|error| format!("{source}: {error}"))
    }
}
