//! gRPC's retry design (gRFC A6) read from a service config, as gRPC users write it
//! (feature `service-config`).
//!
//! A gRPC service config says, per method, how calls are retried or hedged and how long
//! they may take; gRPC's own clients (Go, Java, C++) read it, tonic does not. [`ServiceConfig`]
//! reads the same JSON into palisade's configuration, and [`GrpcRetryLayer`] applies it to a
//! tonic `Channel` (or any HTTP/2 client), choosing each call's configuration by its path
//! (`/package.Service/Method`):
//!
//! | service config | palisade |
//! |---|---|
//! | `methodConfig[].name` (`{service, method}`, `{service}`, `{}`) | the most specific entry that names the call's method, its service, or everything |
//! | `timeout` | the call's [`deadline`](crate::RetryConfigBuilder::deadline), attempts and waits included (an earlier inherited deadline still wins) |
//! | `retryPolicy.maxAttempts` (read as at most 5) | [`max_attempts`](crate::RetryConfigBuilder::max_attempts) |
//! | `initialBackoff`, `maxBackoff`, `backoffMultiplier` | [`Backoff::exponential`](crate::backoff::Backoff::exponential) with its [`multiplier`](crate::backoff::Backoff::multiplier), full jitter: A6's `random(0, min(initial × multiplierⁿ⁻¹, max))` |
//! | `retryableStatusCodes` | the statuses the [`HttpPolicy`] retries, for every method (gRPC leaves safety to whoever writes the config) |
//! | `hedgingPolicy {maxAttempts, hedgingDelay, nonFatalStatusCodes}` | [`Hedge::after`](crate::hedge::Hedge::after)`(hedgingDelay)`; a non-fatal status sends the next hedge at once, any other ends the call; only the throttling bounds the hedges, as in A6 |
//! | `retryThrottling {maxTokens, tokenRatio}` | one [`TokenBudget`](crate::budget::TokenBudget) for every method: retries and hedges stop while at most half the tokens are left |
//!
//! Where A6 and palisade's defaults differ, the config is read as A6 means it, with one
//! exception: a config without `retryThrottling` gets palisade's default budget (A6 would
//! retry without bound), shared by every method. Pushback (`grpc-retry-pushback-ms`) and
//! `grpc-previous-rpc-attempts` are the retry layer's own. A method no entry names is sent
//! once.
//!
//! A config that A6 would refuse is a [`ConfigError`] naming the JSON path of the mistake
//! (`$.methodConfig[0].retryPolicy.maxAttempts`); fields this layer does not use
//! (`loadBalancingConfig`, `waitForReady`, …) are ignored, as gRPC ignores what it does not
//! know.
//!
//! ```
//! use palisade_retry::service_config::ServiceConfig;
//!
//! let config = ServiceConfig::from_json(r#"{
//!   "methodConfig": [{
//!     "name": [{"service": "shop.Orders"}],
//!     "timeout": "2s",
//!     "retryPolicy": {
//!       "maxAttempts": 4,
//!       "initialBackoff": "0.1s",
//!       "maxBackoff": "1s",
//!       "backoffMultiplier": 2,
//!       "retryableStatusCodes": ["UNAVAILABLE"]
//!     }
//!   }, {
//!     "name": [{"service": "shop.Search", "method": "Find"}],
//!     "hedgingPolicy": {"maxAttempts": 2, "hedgingDelay": "0.05s"}
//!   }],
//!   "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1}
//! }"#).unwrap();
//! let orders = config.retry_config("orders", "shop.Orders", "Place").unwrap();
//! assert_eq!(orders.max_attempts(), 4);
//! let layer = config.layer("shop");
//! # let _ = layer;
//! ```

mod json;
mod layer;
mod parse;

use std::time::Duration;

use http::StatusCode;
use palisade_core::ConfigError;
use palisade_core::grpc::GrpcCode;

use crate::backoff::Backoff;
use crate::config::RetryConfig;
use crate::hedge::Hedge;
use crate::policy::HttpPolicy;

pub use self::layer::{GrpcRetry, GrpcRetryLayer};

/// A gRPC service config's retry, hedging, throttling and timeout settings, per method: see
/// [the module](self).
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    methods: Vec<MethodConfig>,
    throttling: Option<Throttling>,
}

/// One `methodConfig` entry.
#[derive(Debug, Clone, PartialEq)]
struct MethodConfig {
    names: Vec<MethodName>,
    timeout: Option<Duration>,
    policy: Option<Policy>,
}

/// A `name` of a `methodConfig`: a method, a whole service, or (neither) every method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct MethodName {
    service: Option<String>,
    method: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Policy {
    Retry {
        max_attempts: u32,
        initial_backoff: Duration,
        max_backoff: Duration,
        multiplier: f64,
        codes: Vec<GrpcCode>,
    },
    Hedging {
        max_attempts: u32,
        delay: Duration,
        codes: Vec<GrpcCode>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Throttling {
    max_tokens: f64,
    token_ratio: f64,
}

/// The HTTP statuses a gRPC client reads as one of these codes (a proxy's `503` is
/// `UNAVAILABLE`, as gRPC maps it): retried alike.
fn statuses_of(codes: &[GrpcCode]) -> impl Iterator<Item = StatusCode> + '_ {
    [400, 401, 403, 404, 429, 502, 503, 504]
        .into_iter()
        .filter_map(|code| StatusCode::from_u16(code).ok())
        .filter(|status| codes.contains(&GrpcCode::from_http_status(*status)))
}

impl ServiceConfig {
    /// Reads a service config's JSON; a [`ConfigError`] names the JSON path of what A6
    /// refuses.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        parse::service_config(text)
    }

    /// The layer that applies this config to a gRPC client; `name` is its metrics' label.
    pub fn layer(&self, name: &str) -> GrpcRetryLayer {
        GrpcRetryLayer::new(self, name)
    }

    /// The retry configuration a call to `service`/`method` gets, named `name`: `None` when
    /// no entry names it (it is sent once).
    pub fn retry_config(&self, name: &str, service: &str, method: &str) -> Option<RetryConfig> {
        let entry = self.entry_for(service, method)?;
        Some(entry.retry_config(name))
    }

    /// The entry for a method: the one naming it, else its service's, else the default.
    fn entry_for(&self, service: &str, method: &str) -> Option<&MethodConfig> {
        let names = |entry: &&MethodConfig, wanted: &MethodName| entry.names.contains(wanted);
        let exact = MethodName {
            service: Some(service.to_owned()),
            method: Some(method.to_owned()),
        };
        let whole = MethodName {
            service: Some(service.to_owned()),
            method: None,
        };
        let default = MethodName {
            service: None,
            method: None,
        };
        [exact, whole, default]
            .iter()
            .find_map(|wanted| self.methods.iter().find(|e| names(e, wanted)))
    }
}

impl MethodConfig {
    fn retry_config(&self, name: &str) -> RetryConfig {
        let mut builder = RetryConfig::builder(name).max_attempts(1);
        if let Some(timeout) = self.timeout {
            builder = builder.deadline(timeout);
        }
        match &self.policy {
            Some(Policy::Retry {
                max_attempts,
                initial_backoff,
                max_backoff,
                multiplier,
                ..
            }) => {
                builder = builder.max_attempts(*max_attempts).backoff(
                    Backoff::exponential(*initial_backoff, *max_backoff).multiplier(*multiplier),
                );
            }
            Some(Policy::Hedging {
                max_attempts,
                delay,
                ..
            }) => {
                let hedges = f64::from(max_attempts - 1);
                builder = builder
                    .max_attempts(*max_attempts)
                    .hedge(Hedge::after(*delay).max_extra_load(hedges));
            }
            None => {}
        }
        builder
            .build()
            .expect("every value was checked as it was read")
    }

    /// What this entry retries (or, hedging, what does not end a call).
    fn policy(&self) -> HttpPolicy {
        let codes: &[GrpcCode] = match &self.policy {
            Some(Policy::Retry { codes, .. } | Policy::Hedging { codes, .. }) => codes,
            None => &[],
        };
        HttpPolicy::default()
            .any_method()
            .grpc_codes(codes.iter().copied())
            .statuses(statuses_of(codes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(json: &str) -> (String, String) {
        let error = ServiceConfig::from_json(json).unwrap_err();
        (error.field().to_owned(), error.to_string())
    }

    const RETRY: &str = r#""retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.1s",
        "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}"#;

    #[test]
    fn the_most_specific_entry_wins() {
        let json = format!(
            r#"{{"methodConfig": [
                {{"name": [{{}}], "timeout": "9s"}},
                {{"name": [{{"service": "a.S"}}], "timeout": "5s", {RETRY}}},
                {{"name": [{{"service": "a.S", "method": "M"}}], "timeout": "1s"}}
            ]}}"#
        );
        let config = ServiceConfig::from_json(&json).unwrap();
        let deadline = |s, m| config.retry_config("t", s, m).unwrap().deadline();
        assert_eq!(deadline("a.S", "M"), Some(Duration::from_secs(1)));
        assert_eq!(deadline("a.S", "N"), Some(Duration::from_secs(5)));
        assert_eq!(deadline("b.S", "M"), Some(Duration::from_secs(9)));
        assert_eq!(
            config.retry_config("t", "a.S", "N").unwrap().max_attempts(),
            3
        );
        assert_eq!(
            config.retry_config("t", "a.S", "M").unwrap().max_attempts(),
            1
        );
    }

    #[test]
    fn max_attempts_above_five_reads_as_five() {
        let json = r#"{"methodConfig": [{"name": [{}], "hedgingPolicy": {"maxAttempts": 9}}]}"#;
        let config = ServiceConfig::from_json(json).unwrap();
        assert_eq!(
            config.retry_config("t", "a", "b").unwrap().max_attempts(),
            5
        );
        assert!(
            ServiceConfig::from_json(r#"{}"#)
                .unwrap()
                .retry_config("t", "a", "b")
                .is_none()
        );
    }

    #[test]
    fn a_mistake_is_named_by_its_json_path() {
        let cases = [
            ("[]", "$"),
            ("{", "$"),
            (r#"{"methodConfig": {}}"#, "$.methodConfig"),
            (r#"{"methodConfig": [{}]}"#, "$.methodConfig[0]"),
            (
                r#"{"methodConfig": [{"name": []}]}"#,
                "$.methodConfig[0].name",
            ),
            (
                r#"{"methodConfig": [{"name": [{"method": "M"}]}]}"#,
                "$.methodConfig[0].name[0]",
            ),
            (
                r#"{"methodConfig": [{"name": [{}], "timeout": "1"}]}"#,
                "$.methodConfig[0].timeout",
            ),
            (
                r#"{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 1}}]}"#,
                "$.methodConfig[0].retryPolicy.maxAttempts",
            ),
            (
                r#"{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 2}}]}"#,
                "$.methodConfig[0].retryPolicy",
            ),
            (
                r#"{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 2,
                    "initialBackoff": "1s", "maxBackoff": "0.5s", "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"]}}]}"#,
                "$.methodConfig[0].retryPolicy.maxBackoff",
            ),
            (
                r#"{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 2,
                    "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE", "NOT_A_CODE"]}}]}"#,
                "$.methodConfig[0].retryPolicy.retryableStatusCodes[1]",
            ),
            (
                r#"{"methodConfig": [{"name": [{}], "hedgingPolicy": {"maxAttempts": 2},
                    "retryPolicy": {}}]}"#,
                "$.methodConfig[0].hedgingPolicy",
            ),
            (
                r#"{"methodConfig": [{"name": [{"service": "a"}]}, {"name": [{"service": "a"}]}]}"#,
                "$.methodConfig[1].name[0]",
            ),
            (
                r#"{"retryThrottling": {"maxTokens": 2000, "tokenRatio": 0.1}}"#,
                "$.retryThrottling.maxTokens",
            ),
            (
                r#"{"retryThrottling": {"maxTokens": 10}}"#,
                "$.retryThrottling",
            ),
        ];
        for (json, path) in cases {
            let (field, message) = error(json);
            assert_eq!(field, path, "{json}: {message}");
        }
    }

    #[test]
    fn codes_decide_statuses_too() {
        let statuses: Vec<_> = statuses_of(&[GrpcCode::Unavailable]).collect();
        assert_eq!(
            statuses,
            [
                StatusCode::TOO_MANY_REQUESTS,
                StatusCode::BAD_GATEWAY,
                StatusCode::SERVICE_UNAVAILABLE,
                StatusCode::GATEWAY_TIMEOUT
            ]
        );
    }
}
