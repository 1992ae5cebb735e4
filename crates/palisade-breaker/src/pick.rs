//! Which breaker a request goes through: the one breaker of a layer, or one per key.

use std::borrow::Cow;

use crate::handle::BreakerHandle;

/// Chooses the breaker for a request.
///
/// A [`BreakerHandle`] picks itself for every request; [`KeyedBreakers`](crate::KeyedBreakers)
/// picks by a key taken from the request. Implement it to keep breakers in a registry of
/// your own.
pub trait PickBreaker<Req> {
    /// The breaker `request` goes through: borrowed when the picker holds it (no reference
    /// count touched per call), owned when it comes out of a registry.
    fn pick(&self, request: &Req) -> Cow<'_, BreakerHandle>;
}

impl<Req> PickBreaker<Req> for BreakerHandle {
    fn pick(&self, _: &Req) -> Cow<'_, BreakerHandle> {
        Cow::Borrowed(self)
    }
}
