//! An [`IdempotencyConfig`] read from a file (feature `serde`): the builder's settings under
//! the builder's names, `name` and `scope` required, durations in a human form, unknown
//! fields refused, and the builder's validation. A scope read from a file is `"global"` or
//! a checked header (`{ header = "x-api-key" }`, see [`Scope::header`]); a scope that reads
//! the request in code is set in code ([`IdempotencyConfigBuilder::scope`]), as are the
//! fingerprinter and the store policy.
//!
//! ```toml
//! name = "orders"
//! scope = { header = "x-api-key" }      # or "global"
//! header = "idempotency-key"
//! methods = ["POST", "PATCH"]
//! required = false
//! max_body = 1048576
//! max_response = 1048576
//! lease = "60s"
//! ttl = "24h"
//! wait_for_in_flight = "5s"
//! retry_after = "1s"
//! fail_open = false
//! ```

use std::time::Duration;

use http::{HeaderName, Method};
use palisade_core::ConfigError;
use palisade_core::de::{option_duration, refused};
use serde::{Deserialize, Deserializer};

use crate::config::{IdempotencyConfig, IdempotencyConfigBuilder};
use crate::scope::Scope;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    scope: ScopeFile,
    header: Option<String>,
    methods: Option<Vec<String>>,
    required: Option<bool>,
    max_body: Option<usize>,
    max_response: Option<usize>,
    #[serde(default, deserialize_with = "option_duration")]
    lease: Option<Duration>,
    #[serde(default, deserialize_with = "option_duration")]
    ttl: Option<Duration>,
    #[serde(default, deserialize_with = "option_duration")]
    wait_for_in_flight: Option<Duration>,
    #[serde(default, deserialize_with = "option_duration")]
    retry_after: Option<Duration>,
    fail_open: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum ScopeFile {
    Global,
    Header(String),
}

impl File {
    fn builder(self) -> Result<IdempotencyConfigBuilder, ConfigError> {
        let scope = match self.scope {
            ScopeFile::Global => Scope::global(),
            ScopeFile::Header(name) => Scope::header(
                HeaderName::try_from(name)
                    .map_err(|_| ConfigError::new("scope.header", "is not a valid header name"))?,
            ),
        };
        let mut b = IdempotencyConfig::builder(self.name, scope);
        if let Some(header) = self.header {
            b = b.header(header);
        }
        if let Some(methods) = self.methods {
            let methods = methods
                .iter()
                .map(|m| {
                    Method::from_bytes(m.as_bytes()).map_err(|_| {
                        ConfigError::new("methods", format!("`{m}` is not an HTTP method"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            b = b.methods(methods);
        }
        if let Some(required) = self.required {
            b = b.required(required);
        }
        if let Some(bytes) = self.max_body {
            b = b.max_body(bytes);
        }
        if let Some(bytes) = self.max_response {
            b = b.max_response(bytes);
        }
        if let Some(lease) = self.lease {
            b = b.lease(lease);
        }
        if let Some(ttl) = self.ttl {
            b = b.ttl(ttl);
        }
        if let Some(wait) = self.wait_for_in_flight {
            b = b.wait_for_in_flight(wait);
        }
        if let Some(after) = self.retry_after {
            b = b.retry_after(after);
        }
        if let Some(open) = self.fail_open {
            b = b.fail_open(open);
        }
        Ok(b)
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de> Deserialize<'de> for IdempotencyConfig {
    /// The settings of [`IdempotencyConfigBuilder`], by its methods' names; `name` and
    /// `scope` are required. See [the module](crate::de) for the form.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        File::deserialize(deserializer)?
            .builder()
            .and_then(IdempotencyConfigBuilder::build)
            .map_err(refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<IdempotencyConfig, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn every_setting_reads_as_the_builder_sets_it() {
        let config = read(
            r#"{"name": "orders", "scope": {"header": "x-api-key"}, "header": "x-request-key",
                "methods": ["POST"], "required": true, "max_body": 1024, "max_response": 2048,
                "lease": "30s", "ttl": "1h", "wait_for_in_flight": "5s", "retry_after": "2s",
                "fail_open": true}"#,
        )
        .unwrap();
        let built = IdempotencyConfig::builder(
            "orders",
            Scope::header(HeaderName::from_static("x-api-key")),
        )
        .header("x-request-key")
        .methods([Method::POST])
        .required(true)
        .max_body(1024)
        .max_response(2048)
        .lease(Duration::from_secs(30))
        .ttl(Duration::from_secs(3600))
        .wait_for_in_flight(Duration::from_secs(5))
        .retry_after(Duration::from_secs(2))
        .fail_open(true)
        .build()
        .unwrap();
        assert_eq!(format!("{config:?}"), format!("{built:?}"));
        read(r#"{"name": "orders", "scope": "global"}"#).unwrap();
    }

    #[test]
    fn bad_settings_name_their_field() {
        let err = |json: &str| read(json).unwrap_err();
        assert!(err(r#"{"name": "a"}"#).contains("missing field `scope`"));
        assert!(
            err(r#"{"name": "a", "scope": {"header": "bad header"}}"#).contains("`scope.header`")
        );
        assert!(err(r#"{"name": "a", "scope": "global", "ttl": "1s"}"#).contains("`ttl`"));
        assert!(
            err(r#"{"name": "a", "scope": "global", "methods": ["P OST"]}"#).contains("`methods`")
        );
        assert!(
            err(r#"{"name": "a", "scope": "everyone"}"#).contains("unknown variant `everyone`")
        );
    }
}
