//! A [`RateLimitConfig`] read from a file (feature `serde`): the builder's settings under the
//! builder's names, periods in a human form, unknown fields refused, and the builder's
//! validation, errors naming the field by its path (`policies[1].quota.count`).
//!
//! ```toml
//! name = "api"
//! headers_on_success = true
//!
//! [[policies]]
//! name = "per-client"
//! quota = { count = 10, period = "1s", burst = 20 }
//! key = { client_ip = { trusted_proxies = ["10.0.0.0/8"], header = "x-forwarded-for" } }
//! max_keys = 100000
//!
//! [[policies]]
//! name = "free-writes"
//! quota = { count = 100, period = "1h" }
//! key = { header = "x-api-key" }           # or "global" (the default), or "peer"
//! scope = { methods = ["POST", "PUT"], path_prefix = "/orders", header_is = { name = "x-tier", value = "free" } }
//! ```

use std::time::Duration;

use palisade_core::ConfigError;
use palisade_core::de::{duration, refused};
use serde::{Deserialize, Deserializer};

use crate::config::{Policy, RateLimitConfig, RateLimitConfigBuilder};
#[cfg(feature = "http")]
use crate::http::{ForwardedHeader, KeySource, Scope, TrustedProxies};
use crate::quota::Quota;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    policies: Vec<PolicyFile>,
    headers_on_success: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    name: String,
    quota: QuotaFile,
    #[cfg(feature = "http")]
    key: Option<KeyFile>,
    #[cfg(feature = "http")]
    scope: Option<ScopeFile>,
    max_keys: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaFile {
    count: u32,
    #[serde(deserialize_with = "duration")]
    period: Duration,
    burst: Option<u32>,
}

#[cfg(feature = "http")]
#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum KeyFile {
    Global,
    Peer,
    Header(String),
    ClientIp(ClientIpFile),
}

#[cfg(feature = "http")]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientIpFile {
    trusted_proxies: Vec<String>,
    header: Option<HeaderFile>,
}

#[cfg(feature = "http")]
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum HeaderFile {
    XForwardedFor,
    Forwarded,
}

#[cfg(feature = "http")]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopeFile {
    methods: Option<Vec<String>>,
    path_prefix: Option<String>,
    header_is: Option<HeaderIs>,
}

#[cfg(feature = "http")]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderIs {
    name: String,
    value: String,
}

impl PolicyFile {
    fn policy(self, field: &str) -> Result<Policy, ConfigError> {
        let mut quota = Quota::new(self.quota.count, self.quota.period);
        if let Some(burst) = self.quota.burst {
            quota = quota.burst(burst);
        }
        let mut policy = Policy::new(self.name, quota);
        #[cfg(feature = "http")]
        {
            if let Some(key) = self.key {
                policy = policy.key(match key {
                    KeyFile::Global => KeySource::global(),
                    KeyFile::Peer => KeySource::peer(),
                    KeyFile::Header(name) => KeySource::header(&name),
                    KeyFile::ClientIp(c) => {
                        let mut proxies = TrustedProxies::new(&c.trusted_proxies)
                            .map_err(|e| e.within(&format!("{field}.key.client_ip")))?;
                        if let Some(HeaderFile::Forwarded) = c.header {
                            proxies = proxies.header(ForwardedHeader::Forwarded);
                        }
                        KeySource::client_ip(proxies)
                    }
                });
            }
            if let Some(s) = self.scope {
                let mut scope = Scope::ALL;
                if let Some(methods) = s.methods {
                    scope = scope.and_methods(methods);
                }
                if let Some(prefix) = s.path_prefix {
                    scope = scope.path_prefix(prefix);
                }
                if let Some(h) = s.header_is {
                    scope = scope.header_is(&h.name, &h.value);
                }
                policy = policy.scope(scope);
            }
        }
        #[cfg(not(feature = "http"))]
        let _ = field;
        if let Some(max_keys) = self.max_keys {
            policy = policy.max_keys(max_keys);
        }
        Ok(policy)
    }
}

impl File {
    fn builder(self) -> Result<RateLimitConfigBuilder, ConfigError> {
        let mut b = RateLimitConfig::builder(self.name);
        for (i, policy) in self.policies.into_iter().enumerate() {
            b = b.policy(policy.policy(&format!("policies[{i}]"))?);
        }
        if let Some(on) = self.headers_on_success {
            b = b.headers_on_success(on);
        }
        Ok(b)
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de> Deserialize<'de> for RateLimitConfig {
    /// The settings of [`RateLimitConfigBuilder`] and [`Policy`], by their methods' names;
    /// `name` and `policies` are required. See [the module](crate::de) for the form.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        File::deserialize(deserializer)?
            .builder()
            .and_then(RateLimitConfigBuilder::build)
            .map_err(refused)
    }
}

#[cfg(all(test, feature = "http"))]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<RateLimitConfig, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn every_setting_reads_as_the_builder_sets_it() {
        let config = read(
            r#"{"name": "api", "headers_on_success": false, "policies": [
                {"name": "per-client", "quota": {"count": 10, "period": "1s", "burst": 20},
                 "key": {"client_ip": {"trusted_proxies": ["10.0.0.0/8"], "header": "forwarded"}},
                 "max_keys": 5000},
                {"name": "writes", "quota": {"count": 100, "period": "1h"}, "key": {"header": "x-api-key"},
                 "scope": {"methods": ["POST"], "path_prefix": "/orders", "header_is": {"name": "x-tier", "value": "free"}}},
                {"name": "all", "quota": {"count": 1000, "period": "1m"}, "key": "peer"}
            ]}"#,
        )
        .unwrap();
        let proxies = TrustedProxies::new(["10.0.0.0/8"])
            .unwrap()
            .header(ForwardedHeader::Forwarded);
        let built = RateLimitConfig::builder("api")
            .headers_on_success(false)
            .policy(
                Policy::new("per-client", Quota::per_second(10).burst(20))
                    .key(KeySource::client_ip(proxies))
                    .max_keys(5000),
            )
            .policy(
                Policy::new("writes", Quota::per_hour(100))
                    .key(KeySource::header("x-api-key"))
                    .scope(
                        Scope::methods(["POST"])
                            .path_prefix("/orders")
                            .header_is("x-tier", "free"),
                    ),
            )
            .policy(Policy::new("all", Quota::per_minute(1000)).key(KeySource::peer()))
            .build()
            .unwrap();
        assert_eq!(format!("{config:?}"), format!("{built:?}"));
    }

    #[test]
    fn bad_settings_name_their_field() {
        let err = |json: &str| read(json).unwrap_err();
        let policy = |p: &str| {
            format!(
                r#"{{"name": "a", "policies": [{{"name": "ok", "quota": {{"count": 1, "period": "1s"}}}}, {p}]}}"#
            )
        };
        assert!(
            err(&policy(
                r#"{"name": "b", "quota": {"count": 0, "period": "1s"}}"#
            ))
            .contains("`policies[1].quota.count`")
        );
        assert!(
            err(&policy(
                r#"{"name": "b", "quota": {"count": 1, "period": "1s"}, "key": {"header": "a b"}}"#
            ))
            .contains("`policies[1].key.header`")
        );
        assert!(
            err(&policy(r#"{"name": "b", "quota": {"count": 1, "period": "1s"}, "key": {"client_ip": {"trusted_proxies": ["ten"]}}}"#))
                .contains("`policies[1].key.client_ip.trusted_proxies[0]`")
        );
        assert!(err(&policy(r#"{"name": "b", "quota": {"count": 1, "period": "1s"}, "scope": {"methods": ["GE T"]}}"#)).contains("`policies[1].scope.methods`"));
        assert!(err(r#"{"name": "a", "policies": []}"#).contains("`policies`"));
        assert!(
            err(&policy(
                r#"{"name": "b", "quota": {"count": 1, "period": "soon"}}"#
            ))
            .contains("soon")
        );
        assert!(
            err(&policy(
                r#"{"name": "b", "quota": {"count": 1, "period": "1s"}, "key": "everyone"}"#
            ))
            .contains("unknown variant")
        );
    }
}
