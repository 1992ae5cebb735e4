//! The response future of generic mode.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use palisade_core::BoxError;
use pin_project_lite::pin_project;

use crate::error::RateLimited;

pin_project! {
    /// The response future of [`RateLimit`](crate::RateLimit): the inner service's, or a
    /// refusal.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        // Boxed when made: the future of an admitted request stays small.
        refused: Option<BoxError>,
    }
}

impl<F> ResponseFuture<F> {
    #[inline]
    pub(crate) fn admitted(inner: F) -> Self {
        Self {
            inner: Some(inner),
            refused: None,
        }
    }

    pub(crate) fn refused(refused: RateLimited) -> Self {
        Self {
            inner: None,
            refused: Some(Box::new(refused)),
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.inner.as_pin_mut() {
            Some(inner) => Poll::Ready(ready!(inner.poll(cx)).map_err(Into::into)),
            None => Poll::Ready(Err(this
                .refused
                .take()
                .expect("a refused future is polled once"))),
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}
