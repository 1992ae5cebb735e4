//! [`KeySource`] and [`Scope`]: whom a policy counts, and which requests it applies to.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use http::{Extensions, HeaderName, HeaderValue, Method};
use palisade_core::ConfigError;

use super::Head;
use super::client_ip::TrustedProxies;
use crate::key::Key;

type KeyFn = Arc<dyn Fn(&Head<'_>) -> Option<Key> + Send + Sync>;
type ScopeFn = Arc<dyn Fn(&Head<'_>) -> bool + Send + Sync>;

/// Whom a policy counts: each key it makes has its own quota.
///
/// A request that lacks what its key is made from (no such header, no peer address) counts
/// against one shared [`Key::Absent`] quota: leaving a header out is no way around a limit.
#[derive(Clone)]
pub struct KeySource(Source);

#[derive(Clone)]
enum Source {
    Global,
    Peer,
    ClientIp(TrustedProxies),
    Header(Result<HeaderName, Arc<str>>),
    Extension(fn(&Extensions) -> Option<Key>),
    Custom(KeyFn),
}

impl KeySource {
    /// One quota for all requests (the default).
    pub fn global() -> Self {
        Self(Source::Global)
    }

    /// The connection's peer address (see [`Head::peer`] for where it is read from).
    /// Behind a proxy or a load balancer every request has the proxy's address: use
    /// [`client_ip`](Self::client_ip) there.
    pub fn peer() -> Self {
        Self(Source::Peer)
    }

    /// The client's address behind `proxies`: the peer, or what the trusted proxies say
    /// they saw (see [`TrustedProxies`]). Forwarding headers are never read otherwise.
    pub fn client_ip(proxies: TrustedProxies) -> Self {
        Self(Source::ClientIp(proxies))
    }

    /// The value of the header `name` (an API key, a client id that a gateway sets).
    pub fn header(name: &str) -> Self {
        Self(Source::Header(
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| Arc::from(name)),
        ))
    }

    /// A request extension of type `T`, placed by a layer before this one (a tenant id
    /// from authentication).
    pub fn extension<T>() -> Self
    where
        T: Clone + Into<Key> + Send + Sync + 'static,
    {
        Self(Source::Extension(|extensions: &Extensions| {
            extensions.get::<T>().cloned().map(Into::into)
        }))
    }

    /// Any function of the request's head. `None` exempts the request from the policy.
    pub fn from_fn<F>(f: F) -> Self
    where
        F: Fn(&Head<'_>) -> Option<Key> + Send + Sync + 'static,
    {
        Self(Source::Custom(Arc::new(f)))
    }

    /// Whether every request has the same key.
    pub(crate) fn is_global(&self) -> bool {
        matches!(self.0, Source::Global)
    }

    /// The key of `head`; `None` when the request is exempt.
    #[inline]
    pub(crate) fn key_of(&self, head: &Head<'_>) -> Option<Key> {
        Some(match &self.0 {
            Source::Global => Key::Global,
            Source::Peer => head.peer().map_or_else(no_peer, |addr| Key::Ip(addr.ip())),
            Source::ClientIp(proxies) => head.peer().map_or_else(no_peer, |addr| {
                Key::Ip(proxies.client_ip(addr.ip(), head.headers()))
            }),
            Source::Header(Ok(name)) => head
                .headers()
                .get(name)
                .map_or(Key::Absent, |value| Key::text(value.as_bytes())),
            Source::Header(Err(_)) => unreachable!("a bad header name fails validation"),
            Source::Extension(get) => get(head.extensions()).unwrap_or(Key::Absent),
            Source::Custom(f) => return f(head),
        })
    }

    pub(crate) fn validate(&self, field: &str) -> Result<(), ConfigError> {
        match &self.0 {
            Source::Header(Err(name)) => Err(ConfigError::new(
                format!("{field}.header"),
                format!("`{name}` is not a header name"),
            )),
            _ => Ok(()),
        }
    }
}

/// A request with no peer address counts as [`Key::Absent`]; the first one says why once.
fn no_peer() -> Key {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Relaxed) {
        tracing::warn!(
            "a rate limit keyed by address saw a request with no peer address: serve axum with \
             `into_make_service_with_connect_info::<SocketAddr>()`, or insert the `SocketAddr`; \
             until then such requests share one quota"
        );
    }
    Key::Absent
}

impl Default for KeySource {
    fn default() -> Self {
        Self::global()
    }
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::Global => f.write_str("Global"),
            Source::Peer => f.write_str("Peer"),
            Source::ClientIp(proxies) => f.debug_tuple("ClientIp").field(proxies).finish(),
            Source::Header(Ok(name)) => f.debug_tuple("Header").field(name).finish(),
            Source::Header(Err(name)) => f.debug_tuple("Header").field(name).finish(),
            Source::Extension(_) => f.write_str("Extension"),
            Source::Custom(_) => f.write_str("Custom"),
        }
    }
}

/// Which requests a policy applies to: every condition set must hold.
///
/// ```
/// use palisade_ratelimit::http::Scope;
///
/// // Free-tier writes to the orders API.
/// let scope = Scope::methods(["POST"]).path_prefix("/orders").header_is("x-tier", "free");
/// # let _ = scope;
/// ```
#[derive(Clone, Default)]
pub struct Scope {
    methods: Option<Vec<Method>>,
    path_prefix: Option<Arc<str>>,
    header: Option<(HeaderName, HeaderValue)>,
    when: Option<ScopeFn>,
    invalid: Option<(&'static str, String)>,
}

impl Scope {
    /// Every request (the default).
    pub const ALL: Scope = Scope {
        methods: None,
        path_prefix: None,
        header: None,
        when: None,
        invalid: None,
    };

    /// Requests with one of these methods.
    pub fn methods<I>(methods: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Self::ALL.and_methods(methods)
    }

    /// Also: requests with one of these methods.
    pub fn and_methods<I>(mut self, methods: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut parsed = Vec::new();
        for method in methods {
            match Method::from_bytes(method.as_ref().as_bytes()) {
                Ok(m) => parsed.push(m),
                Err(_) => {
                    self.invalid =
                        Some(("methods", format!("`{}` is not a method", method.as_ref())))
                }
            }
        }
        self.methods = Some(parsed);
        self
    }

    /// Also: requests whose path starts with `prefix`.
    pub fn path_prefix(mut self, prefix: impl Into<Arc<str>>) -> Self {
        self.path_prefix = Some(prefix.into());
        self
    }

    /// Also: requests whose header `name` is `value` (a tier, a plan).
    pub fn header_is(mut self, name: &str, value: &str) -> Self {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(name), Ok(value)) => self.header = Some((name, value)),
            _ => self.invalid = Some(("header_is", format!("`{name}: {value}` is not a header"))),
        }
        self
    }

    /// Also: requests for which `f` is true.
    pub fn when<F>(mut self, f: F) -> Self
    where
        F: Fn(&Head<'_>) -> bool + Send + Sync + 'static,
    {
        self.when = Some(Arc::new(f));
        self
    }

    #[inline]
    pub(crate) fn applies(&self, head: &Head<'_>) -> bool {
        self.methods
            .as_ref()
            .is_none_or(|methods| methods.contains(head.method()))
            && self
                .path_prefix
                .as_ref()
                .is_none_or(|prefix| head.uri().path().starts_with(&**prefix))
            && self
                .header
                .as_ref()
                .is_none_or(|(name, value)| head.headers().get(name) == Some(value))
            && self.when.as_ref().is_none_or(|f| f(head))
    }

    pub(crate) fn validate(&self, field: &str) -> Result<(), ConfigError> {
        match &self.invalid {
            Some((what, reason)) => {
                Err(ConfigError::new(format!("{field}.{what}"), reason.clone()))
            }
            None => Ok(()),
        }
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("methods", &self.methods)
            .field("path_prefix", &self.path_prefix)
            .field("header", &self.header)
            .field("when", &self.when.as_ref().map(|_| "fn"))
            .finish()
    }
}
