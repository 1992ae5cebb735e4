//! The configuration: named policies, each a quota over a key, and how refusals are said.

use std::fmt;
use std::sync::Arc;

use palisade_core::ConfigError;

#[cfg(feature = "http")]
use crate::http::{KeySource, Scope};
use crate::quota::Quota;

/// The most keys a keyed policy tracks, by default: about 5 MB of state for address keys.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// One limit: a [`Quota`] for each key, made by the policy's key source.
///
/// ```
/// use palisade_ratelimit::{Policy, Quota};
/// # #[cfg(feature = "http")] {
/// use palisade_ratelimit::http::{KeySource, Scope};
///
/// // Each client, named by a header its gateway sets, 10 requests a second, bursts of 20.
/// let per_client = Policy::new("per-client", Quota::per_second(10).burst(20))
///     .key(KeySource::header("x-client-id"));
/// // Writes, whoever sends them, 100 a second in all.
/// let writes = Policy::new("writes", Quota::per_second(100))
///     .scope(Scope::methods(["POST", "PUT", "PATCH", "DELETE"]));
/// # let _ = (per_client, writes);
/// # }
/// ```
#[derive(Clone)]
pub struct Policy {
    pub(crate) name: Arc<str>,
    pub(crate) quota: Quota,
    #[cfg(feature = "http")]
    pub(crate) key: KeySource,
    #[cfg(feature = "http")]
    pub(crate) scope: Scope,
    pub(crate) max_keys: usize,
}

impl Policy {
    /// A policy called `name` (its name in the `RateLimit` headers and in metrics) that gives
    /// `quota` to all requests together, until [`key`](Self::key) says whom it counts.
    pub fn new(name: impl Into<Arc<str>>, quota: Quota) -> Self {
        Self {
            name: name.into(),
            quota,
            #[cfg(feature = "http")]
            key: KeySource::global(),
            #[cfg(feature = "http")]
            scope: Scope::ALL,
            max_keys: DEFAULT_MAX_KEYS,
        }
    }

    /// Whom the quota counts: each value of `key` has its own.
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub fn key(mut self, key: KeySource) -> Self {
        self.key = key;
        self
    }

    /// Which requests the policy applies to (all of them by default).
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// The most keys tracked at once ([`DEFAULT_MAX_KEYS`]): past it, idle keys are dropped
    /// first, then those nearest to idle (see the [crate docs](crate#bounded-memory)).
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys;
        self
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The policy's quota.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    fn validate(&self, field: &str) -> Result<(), ConfigError> {
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        {
            return Err(ConfigError::new(
                format!("{field}.name"),
                "must be letters, digits, `-`, `_`, `.` or `:` (it is sent in the RateLimit headers)",
            ));
        }
        self.quota.validate(&format!("{field}.quota"))?;
        #[cfg(feature = "http")]
        {
            self.key.validate(&format!("{field}.key"))?;
            self.scope.validate(&format!("{field}.scope"))?;
        }
        if self.max_keys == 0 {
            return Err(ConfigError::new(
                format!("{field}.max_keys"),
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Policy");
        d.field("name", &self.name).field("quota", &self.quota);
        #[cfg(feature = "http")]
        d.field("key", &self.key).field("scope", &self.scope);
        d.field("max_keys", &self.max_keys).finish()
    }
}

/// How a rate limiter limits; made with [`RateLimitConfig::builder`].
///
/// Settings only: each layer made from it has its own counts. Several services that share one
/// limit share one layer (its clones share its state).
#[derive(Clone, Debug)]
pub struct RateLimitConfig {
    pub(crate) name: Arc<str>,
    pub(crate) policies: Vec<Policy>,
    pub(crate) headers_on_success: bool,
}

impl RateLimitConfig {
    /// A builder for the limiter called `name` (the `name` label of its metrics), with no
    /// policy yet.
    pub fn builder(name: impl Into<Arc<str>>) -> RateLimitConfigBuilder {
        RateLimitConfigBuilder {
            config: RateLimitConfig {
                name: name.into(),
                policies: Vec::new(),
                headers_on_success: true,
            },
        }
    }

    /// The limiter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The policies, in the order they are checked.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }
}

/// Builds a [`RateLimitConfig`].
///
/// | setting | default | why |
/// |---|---|---|
/// | [`policy`](Self::policy) | none (one is needed) | a limit is a decision about numbers only its owner knows |
/// | [`Policy::max_keys`] | 100 000 keys a policy | about 5 MB for address keys; a flood of new keys evicts idle ones first |
/// | [`headers_on_success`](Self::headers_on_success) | `true` | the IETF draft's `RateLimit` on every response lets a client slow down before it is refused |
#[derive(Debug, Clone)]
pub struct RateLimitConfigBuilder {
    config: RateLimitConfig,
}

impl RateLimitConfigBuilder {
    /// Adds a policy. A request is checked against each policy that applies to it, in the
    /// order they were added; the first that refuses wins, and the quota the request took
    /// from the policies before it is given back.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.config.policies.push(policy);
        self
    }

    /// Whether admitted responses carry `RateLimit-Policy` and `RateLimit` too (refusals
    /// always do).
    pub fn headers_on_success(mut self, on: bool) -> Self {
        self.config.headers_on_success = on;
        self
    }

    /// The configuration, or the first bad setting.
    pub fn build(self) -> Result<RateLimitConfig, ConfigError> {
        let config = self.config;
        if config.policies.is_empty() {
            return Err(ConfigError::new(
                "policies",
                "must hold at least one policy (Policy::new(name, quota))",
            ));
        }
        for (i, policy) in config.policies.iter().enumerate() {
            policy.validate(&format!("policies[{i}]"))?;
            if config.policies[..i].iter().any(|p| p.name == policy.name) {
                return Err(ConfigError::new(
                    format!("policies[{i}].name"),
                    "is the name of an earlier policy: the headers tell policies by name",
                ));
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_configs_name_the_field() {
        let err = |b: RateLimitConfigBuilder| b.build().unwrap_err().field().to_owned();
        assert_eq!(err(RateLimitConfig::builder("api")), "policies");
        let ok = Policy::new("a", Quota::per_second(1));
        assert_eq!(
            err(RateLimitConfig::builder("api")
                .policy(ok.clone())
                .policy(Policy::new("b", Quota::per_second(0)))),
            "policies[1].quota.count"
        );
        assert_eq!(
            err(RateLimitConfig::builder("api")
                .policy(ok.clone())
                .policy(ok.clone())),
            "policies[1].name"
        );
        assert_eq!(
            err(RateLimitConfig::builder("api").policy(Policy::new("a b", Quota::per_second(1)))),
            "policies[0].name"
        );
        assert_eq!(
            err(RateLimitConfig::builder("api").policy(ok.max_keys(0))),
            "policies[0].max_keys"
        );
    }
}
