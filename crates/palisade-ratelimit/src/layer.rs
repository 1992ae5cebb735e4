//! [`RateLimitLayer`]: the layer that limits rates in front of any service.

use std::sync::Arc;

use tower_layer::Layer;

use crate::config::RateLimitConfig;
use crate::key::Key;
use crate::limiter::Limiter;
use crate::service::RateLimit;

/// Limits request rates in front of any service (a database client, a queue consumer):
/// refusals are [`RateLimited`](crate::RateLimited) errors, at once.
///
/// Every policy counts all requests together, unless [`key_fn`](Self::key_fn) gives each
/// request a key: then every policy counts each key apart. (In HTTP mode, use
/// [`HttpRateLimitLayer`](crate::HttpRateLimitLayer), whose policies each have their own
/// [`KeySource`](crate::http::KeySource) and [`Scope`](crate::http::Scope).)
///
/// ```
/// use palisade_ratelimit::{Policy, Quota, RateLimitConfig, RateLimitLayer};
///
/// let config = RateLimitConfig::builder("reports-db")
///     .policy(Policy::new("per-tenant", Quota::per_second(20)))
///     .build()
///     .unwrap();
/// // Requests are (tenant, query) pairs: each tenant gets 20 queries a second.
/// let layer = RateLimitLayer::with_config(config).key_fn(|(tenant, _query): &(u64, String)| *tenant);
/// # let _ = layer;
/// ```
#[derive(Debug)]
pub struct RateLimitLayer<K = Global> {
    limiter: Arc<Limiter>,
    key: K,
}

impl<K: Clone> Clone for RateLimitLayer<K> {
    fn clone(&self) -> Self {
        Self {
            limiter: self.limiter.clone(),
            key: self.key.clone(),
        }
    }
}

/// The key of every request when the layer has no key function: one for all.
#[derive(Debug, Clone, Copy, Default)]
pub struct Global;

impl RateLimitLayer {
    /// A layer that limits as `config` says, one count for all requests.
    pub fn with_config(config: RateLimitConfig) -> Self {
        Self {
            limiter: Limiter::new(config, |_| false),
            key: Global,
        }
    }

    /// The same layer, each request counted against the key `f` gives it.
    pub fn key_fn<F>(self, f: F) -> RateLimitLayer<KeyFn<F>> {
        RateLimitLayer {
            limiter: Limiter::new(self.limiter.config.clone(), |_| true),
            key: KeyFn(f),
        }
    }
}

/// A function that keys requests; made by [`RateLimitLayer::key_fn`].
#[derive(Debug, Clone, Copy)]
pub struct KeyFn<F>(F);

/// What keys a request in generic mode.
pub trait KeyOf<Req> {
    /// The key of `request`.
    fn key_of(&self, request: &Req) -> Key;
}

impl<Req> KeyOf<Req> for Global {
    fn key_of(&self, _: &Req) -> Key {
        Key::Global
    }
}

impl<Req, F, K> KeyOf<Req> for KeyFn<F>
where
    F: Fn(&Req) -> K,
    K: Into<Key>,
{
    fn key_of(&self, request: &Req) -> Key {
        (self.0)(request).into()
    }
}

impl<S, K: Clone> Layer<S> for RateLimitLayer<K> {
    type Service = RateLimit<S, K>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(inner, self.limiter.clone(), self.key.clone())
    }
}
