use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::limiter::Permit;

pin_project! {
    /// A response body that holds its request's slot until it ends or is dropped.
    pub struct ShedBody<B> {
        #[pin]
        inner: B,
        permit: Option<Permit>,
    }
}

impl<B> ShedBody<B> {
    pub(crate) fn new(inner: B, permit: Option<Permit>) -> Self {
        Self { inner, permit }
    }
}

impl<B: Body> Body for ShedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        if frame.is_none() || this.inner.is_end_stream() {
            // The response is sent: the slot is free.
            this.permit.take();
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
