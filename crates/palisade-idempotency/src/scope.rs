//! Whose key is it: the scope a key is looked up in.
//!
//! The draft asks that keys be scoped with something only the server knows, so that one
//! client can never receive another's stored response by guessing or reusing its key. The
//! layer cannot know who the caller is; the application can, so it must say — there is no
//! default. [`Scope::from_fn`] reads the request (typically the principal an authentication
//! layer put into its extensions); [`Scope::header`] reads a header that authentication has
//! already checked (an API key); [`Scope::global`] is one scope for everyone, for a service
//! whose callers are all one party.

use std::fmt;
use std::sync::Arc;

use http::HeaderName;
use http::request::Parts;

type ScopeFn = dyn Fn(&Parts) -> Option<String> + Send + Sync;

/// How to find the scope of a request's key.
#[derive(Clone)]
pub struct Scope(Kind);

#[derive(Clone)]
enum Kind {
    Global,
    Header(HeaderName),
    Fn(Arc<ScopeFn>),
}

impl Scope {
    /// One scope for every caller: only for services whose callers are all one party (an
    /// internal service behind a gateway that already scopes).
    pub fn global() -> Self {
        Self(Kind::Global)
    }

    /// The value of the request's `name` header: for a header that identifies the caller
    /// and that an authentication layer in front has checked (an API key — never one the
    /// caller may set freely, or one caller could read another's responses). A request
    /// without it, with it twice, or with a value that is not text is refused (400).
    pub fn header(name: HeaderName) -> Self {
        Self(Kind::Header(name))
    }

    /// The scope `scope` reads from the request: the caller's identity, for example the
    /// principal an authentication layer put into the request's extensions. `None` means
    /// the request has no identity to scope its key to: it is refused (400), since running
    /// it unprotected or in a shared scope would be wrong either way.
    pub fn from_fn<F>(scope: F) -> Self
    where
        F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    {
        Self(Kind::Fn(Arc::new(scope)))
    }

    pub(crate) fn of(&self, parts: &Parts) -> Option<String> {
        match &self.0 {
            Kind::Global => Some(String::new()),
            Kind::Header(name) => {
                let mut values = parts.headers.get_all(name).iter();
                match (values.next(), values.next()) {
                    (Some(value), None) => value.to_str().ok().map(str::to_owned),
                    _ => None,
                }
            }
            Kind::Fn(scope) => scope(parts),
        }
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Global => f.write_str("Scope::global()"),
            Kind::Header(name) => write!(f, "Scope::header({name:?})"),
            Kind::Fn(_) => f.write_str("Scope::from_fn(..)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&'static str, &'static str)]) -> Parts {
        let mut request = http::Request::builder();
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_header_scope_is_its_one_value() {
        let scope = Scope::header(HeaderName::from_static("x-api-key"));
        assert_eq!(
            scope.of(&parts(&[("x-api-key", "k1")])),
            Some("k1".to_owned())
        );
        assert_eq!(scope.of(&parts(&[])), None, "no identity: refused");
        let twice = parts(&[("x-api-key", "k1"), ("x-api-key", "k2")]);
        assert_eq!(scope.of(&twice), None, "which one? refused");
        assert_eq!(Scope::global().of(&parts(&[])), Some(String::new()));
    }
}
