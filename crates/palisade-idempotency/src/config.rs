//! The layer's configuration: a builder with documented defaults, validated on `build`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Method};
use palisade_core::ConfigError;

use crate::fingerprint::{Fingerprinter, MethodPathQueryBody};
use crate::policy::{DefaultStorePolicy, StorePolicy};
use crate::scope::Scope;

/// How the idempotency layer behaves; made with [`IdempotencyConfig::builder`].
#[derive(Clone)]
pub struct IdempotencyConfig {
    pub(crate) name: Arc<str>,
    pub(crate) header: HeaderName,
    pub(crate) methods: Vec<Method>,
    pub(crate) required: bool,
    pub(crate) scope: Scope,
    pub(crate) max_body: usize,
    pub(crate) max_response: usize,
    pub(crate) lease: Duration,
    pub(crate) ttl: Duration,
    pub(crate) wait: Option<Duration>,
    pub(crate) retry_after: Duration,
    pub(crate) fail_open: bool,
    pub(crate) fingerprinter: Arc<dyn Fingerprinter>,
    pub(crate) policy: Arc<dyn StorePolicy>,
}

impl fmt::Debug for IdempotencyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyConfig")
            .field("name", &self.name)
            .field("header", &self.header)
            .field("methods", &self.methods)
            .field("required", &self.required)
            .field("scope", &self.scope)
            .field("max_body", &self.max_body)
            .field("max_response", &self.max_response)
            .field("lease", &self.lease)
            .field("ttl", &self.ttl)
            .field("wait", &self.wait)
            .field("fail_open", &self.fail_open)
            .finish_non_exhaustive()
    }
}

impl IdempotencyConfig {
    /// A builder that starts from the defaults, for the layer called `name` (the `name`
    /// label of its metrics and events; give every layer its own), with keys scoped by
    /// `scope` — whose key it is, which has no default: see [`Scope`].
    pub fn builder(name: impl Into<Arc<str>>, scope: Scope) -> IdempotencyConfigBuilder {
        IdempotencyConfigBuilder {
            header: palisade_core::IDEMPOTENCY_KEY.as_str().to_owned(),
            config: IdempotencyConfig::defaults(name.into(), scope),
        }
    }

    /// The layer's name: the `name` label of its metrics and events.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The defaults under `name`, with keys scoped by `scope`.
    pub(crate) fn defaults(name: Arc<str>, scope: Scope) -> Self {
        {
            IdempotencyConfig {
                name,
                header: palisade_core::IDEMPOTENCY_KEY,
                methods: vec![Method::POST, Method::PATCH],
                required: false,
                scope,
                max_body: 1 << 20,
                max_response: 1 << 20,
                lease: Duration::from_secs(60),
                ttl: Duration::from_secs(24 * 3600),
                wait: None,
                retry_after: Duration::from_secs(1),
                fail_open: false,
                fingerprinter: Arc::new(MethodPathQueryBody),
                policy: Arc::new(DefaultStorePolicy),
            }
        }
    }

    /// How long records are kept: the expiry policy the draft asks a resource to publish.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// Builds an [`IdempotencyConfig`]. Every setting but the scope has a default.
///
/// | setting | default | from |
/// |---|---|---|
/// | scope (given to [`builder`](IdempotencyConfig::builder)) | none: must be chosen | the draft: keys scoped by something only the server knows |
/// | [`header`](Self::header) | `Idempotency-Key` | the draft |
/// | [`methods`](Self::methods) | `POST`, `PATCH` | the draft (the methods that are not idempotent) |
/// | [`required`](Self::required) | no: requests without a key pass through | the draft lets a resource require it |
/// | [`max_body`](Self::max_body) | 1 MiB, larger keyed requests get 413 | axum's default body limit is 2 MiB |
/// | [`max_response`](Self::max_response) | 1 MiB, larger responses are sent, not stored | |
/// | [`lease`](Self::lease) | 60 s, renewed while the handler runs | Brandur's lock timeout |
/// | [`ttl`](Self::ttl) | 24 h | Stripe |
/// | [`wait_for_in_flight`](Self::wait_for_in_flight) | no: a duplicate gets 409 at once | the draft's 409 |
/// | [`fail_open`](Self::fail_open) | no: store down → 503 | a duplicate charge is worse than a refusal |
pub struct IdempotencyConfigBuilder {
    header: String,
    config: IdempotencyConfig,
}

impl fmt::Debug for IdempotencyConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyConfigBuilder")
            .field("header", &self.header)
            .field("config", &self.config)
            .finish()
    }
}

impl IdempotencyConfigBuilder {
    /// Whose key it is: see [`Scope`] (replacing the one given to `builder`).
    pub fn scope(mut self, scope: Scope) -> Self {
        self.config.scope = scope;
        self
    }

    /// The header that carries the key.
    pub fn header(mut self, name: impl Into<String>) -> Self {
        self.header = name.into();
        self
    }

    /// The methods the layer handles; others pass through untouched.
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.config.methods = methods.into_iter().collect();
        self
    }

    /// Whether a request of a handled method without a key is refused (400) rather than
    /// passed through.
    pub fn required(mut self, required: bool) -> Self {
        self.config.required = required;
        self
    }

    /// The largest keyed request body buffered (to fingerprint it); larger ones get 413.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.config.max_body = bytes;
        self
    }

    /// The largest response body stored; a larger one is sent in full, not stored, and its
    /// key released.
    pub fn max_response(mut self, bytes: usize) -> Self {
        self.config.max_response = bytes;
        self
    }

    /// How long a claim holds without renewal. The layer renews it every third of it while
    /// the handler runs, so it only runs out when the process holding it stops.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.config.lease = lease;
        self
    }

    /// How long a completed record is kept.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config.ttl = ttl;
        self
    }

    /// Lets a duplicate that arrives while the first request runs wait up to `wait` for it
    /// to finish and get its response, instead of a 409 at once.
    pub fn wait_for_in_flight(mut self, wait: Duration) -> Self {
        self.config.wait = Some(wait);
        self
    }

    /// The `Retry-After` of a 409 (first request still running) and of a 503 (store down).
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.config.retry_after = after;
        self
    }

    /// Runs keyed requests without protection when the store fails, instead of refusing
    /// them; each is logged and counted (`result="unprotected"`). A store that lends the
    /// handler its transaction (`PostgresStore`) still lends one, committed without a
    /// record when the response is final and rolled back otherwise.
    pub fn fail_open(mut self, fail_open: bool) -> Self {
        self.config.fail_open = fail_open;
        self
    }

    /// How requests are fingerprinted (default: method, path, query and body).
    pub fn fingerprinter(mut self, fingerprinter: impl Fingerprinter) -> Self {
        self.config.fingerprinter = Arc::new(fingerprinter);
        self
    }

    /// Which responses are stored (default: [`DefaultStorePolicy`]).
    pub fn store_policy(mut self, policy: impl StorePolicy) -> Self {
        self.config.policy = Arc::new(policy);
        self
    }

    /// Checks every setting and returns the configuration, or the first bad setting.
    pub fn build(self) -> Result<IdempotencyConfig, ConfigError> {
        let mut config = self.config;
        config.header = HeaderName::try_from(self.header)
            .map_err(|_| ConfigError::new("header", "is not a valid header name"))?;
        if config.methods.is_empty() {
            return Err(ConfigError::new("methods", "must name at least one method"));
        }
        if config.lease.is_zero() {
            return Err(ConfigError::new("lease", "must be longer than zero"));
        }
        if config.ttl < config.lease {
            return Err(ConfigError::new(
                "ttl",
                "must not be shorter than the lease",
            ));
        }
        if config.retry_after.is_zero() {
            return Err(ConfigError::new("retry_after", "must be longer than zero"));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_name_their_field() {
        let b = || IdempotencyConfig::builder("test", Scope::global());
        let field = |b: IdempotencyConfigBuilder| b.build().unwrap_err().field().to_owned();
        assert_eq!(field(b().header("bad header")), "header");
        assert_eq!(field(b().methods([])), "methods");
        assert_eq!(field(b().lease(Duration::ZERO)), "lease");
        assert_eq!(field(b().ttl(Duration::from_secs(1))), "ttl");
        assert_eq!(field(b().retry_after(Duration::ZERO)), "retry_after");
        b().build().unwrap();
    }
}
