//! The rate-limited service of generic mode.

use std::sync::Arc;
use std::task::{Context, Poll};

use palisade_core::BoxError;
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::layer::KeyOf;
use crate::limiter::Limiter;

/// A service behind a rate limiter; made by [`RateLimitLayer`](crate::RateLimitLayer).
///
/// `poll_ready` is the inner service's; the limit is checked in `call`, and a refused
/// request fails at once with a [`RateLimited`](crate::RateLimited).
#[derive(Clone, Debug)]
pub struct RateLimit<S, K> {
    inner: S,
    limiter: Arc<Limiter>,
    key: K,
}

impl<S, K> RateLimit<S, K> {
    pub(crate) fn new(inner: S, limiter: Arc<Limiter>, key: K) -> Self {
        Self {
            inner,
            limiter,
            key,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, K, Req> Service<Req> for RateLimit<S, K>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    K: KeyOf<Req>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let key = self.key.key_of(&request);
        match self.limiter.check(|_| Some(key.clone()), |_, _| {}) {
            Ok(()) => ResponseFuture::admitted(self.inner.call(request)),
            Err(limited) => ResponseFuture::refused(limited),
        }
    }
}
