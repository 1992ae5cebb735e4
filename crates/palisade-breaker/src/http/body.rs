use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http_body::{Body, Frame, SizeHint};
use palisade_core::Outcome;
use pin_project_lite::pin_project;

use super::ClassifyEos;
use crate::shared::Permit;

pin_project! {
    /// A response body that, when the outcome of its call waits on the trailers (a gRPC
    /// stream), reports the outcome to the breaker as the body ends.
    ///
    /// A body error counts as a failure; a body dropped before its end counts as cancelled.
    pub struct BreakerBody<B, C> {
        #[pin]
        inner: B,
        pending: Option<(Permit, C, ClassifyEos<C>)>,
    }
}

impl<B, C> BreakerBody<B, C> {
    /// `pending` holds what is needed to report the outcome at the end, when it waits on it.
    pub(crate) fn new(inner: B, pending: Option<(Permit, C, ClassifyEos<C>)>) -> Self {
        Self { inner, pending }
    }
}

impl<B: Body, C> Body for BreakerBody<B, C> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if let Some((permit, classifier, eos)) = this.pending.take() {
            match &frame {
                Some(Ok(frame)) => match frame.trailers_ref() {
                    Some(trailers) => permit.record(eos(&classifier, Some(trailers))),
                    None => *this.pending = Some((permit, classifier, eos)),
                },
                Some(Err(_)) => permit.record(Outcome::Failure),
                None => permit.record(eos(&classifier, None)),
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
