//! What a request asks for, as a digest: a key reused for a different request is refused
//! (422) instead of answered with another request's response.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use sha2::{Digest, Sha256};

use crate::record::Fingerprint;

/// Computes a request's [`Fingerprint`] from its head and its whole body.
pub trait Fingerprinter: Send + Sync + 'static {
    /// The fingerprint of the request made of `parts` and `body`.
    fn fingerprint(&self, parts: &Parts, body: &[u8]) -> Fingerprint;
}

/// SHA-256 of the method, the path, the query and the body — the default. Headers are left
/// out: a retry may well carry a new `Date`, trace id or auth token.
#[derive(Debug, Clone, Copy, Default)]
pub struct MethodPathQueryBody;

impl Fingerprinter for MethodPathQueryBody {
    fn fingerprint(&self, parts: &Parts, body: &[u8]) -> Fingerprint {
        let mut hash = Sha256::new();
        for field in [
            parts.method.as_str().as_bytes(),
            parts.uri.path().as_bytes(),
            parts.uri.query().unwrap_or("").as_bytes(),
        ] {
            // Length-prefixed, so fields cannot bleed into each other.
            hash.update((field.len() as u64).to_be_bytes());
            hash.update(field);
        }
        hash.update(body);
        Fingerprint(hash.finalize().into())
    }
}

/// A fingerprinter from a closure.
pub fn fingerprint_fn<F>(f: F) -> FingerprintFn<F>
where
    F: Fn(&Parts, &[u8]) -> Fingerprint + Send + Sync + 'static,
{
    FingerprintFn(Arc::new(f))
}

/// See [`fingerprint_fn`].
#[derive(Clone)]
pub struct FingerprintFn<F>(Arc<F>);

impl<F> fmt::Debug for FingerprintFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FingerprintFn")
    }
}

impl<F> Fingerprinter for FingerprintFn<F>
where
    F: Fn(&Parts, &[u8]) -> Fingerprint + Send + Sync + 'static,
{
    fn fingerprint(&self, parts: &Parts, body: &[u8]) -> Fingerprint {
        (self.0)(parts, body)
    }
}
