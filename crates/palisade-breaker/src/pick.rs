//! Which breaker a request goes through: the one breaker of a layer, or one per key.

use crate::handle::BreakerHandle;

/// Chooses the breaker for a request.
///
/// A [`BreakerHandle`] picks itself for every request; [`KeyedBreakers`](crate::KeyedBreakers)
/// picks by a key taken from the request. Implement it to keep breakers in a registry of
/// your own.
pub trait PickBreaker<Req> {
    /// The breaker `request` goes through.
    fn pick(&self, request: &Req) -> BreakerHandle;
}

impl<Req> PickBreaker<Req> for BreakerHandle {
    fn pick(&self, _: &Req) -> BreakerHandle {
        self.clone()
    }
}
