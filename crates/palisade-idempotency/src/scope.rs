//! Whose key is it: the scope a key is looked up in.
//!
//! The draft asks that keys be scoped with something only the server knows, so that one
//! client can never receive another's stored response by guessing or reusing its key. The
//! layer cannot know who the caller is; the application can, so it must say — there is no
//! default. [`Scope::from_fn`] reads the request (typically the principal an authentication
//! layer put into its extensions); [`Scope::global`] is one scope for everyone, for a
//! service whose callers are all one party.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;

type ScopeFn = dyn Fn(&Parts) -> Option<String> + Send + Sync;

/// How to find the scope of a request's key.
#[derive(Clone)]
pub struct Scope(Kind);

#[derive(Clone)]
enum Kind {
    Global,
    Fn(Arc<ScopeFn>),
}

impl Scope {
    /// One scope for every caller: only for services whose callers are all one party (an
    /// internal service behind a gateway that already scopes).
    pub fn global() -> Self {
        Self(Kind::Global)
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
            Kind::Fn(scope) => scope(parts),
        }
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Kind::Global => "Scope::global()",
            Kind::Fn(_) => "Scope::from_fn(..)",
        })
    }
}
