//! The response future of the generic shedder: waits for admission, then runs the call
//! holding its permit, and gives the permit back with a latency sample (none for a refusal
//! from below, which says nothing of this server's queueing).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use palisade_core::BoxError;
use pin_project_lite::pin_project;

use crate::admission::Admission;
use crate::limiter::Permit;

pin_project! {
    /// The response future of [`Shed`](crate::Shed).
    pub struct ResponseFuture<F> {
        admission: Admission,
        permit: Option<Permit>,
        #[pin]
        inner: Option<F>,
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if this.permit.is_none() {
            match ready!(this.admission.poll_admitted(cx)) {
                Ok(permit) => *this.permit = Some(permit),
                Err(refused) => return Poll::Ready(Err(refused.into())),
            }
        }
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            unreachable!("an admitted call has an inner future");
        };
        let result = ready!(inner.poll(cx)).map_err(Into::into);
        if let Some(mut permit) = this.permit.take() {
            match &result {
                Err(error) if palisade_core::refusal::is_refusal(&**error) => permit.skip_sample(),
                _ => permit.record(),
            }
        }
        Poll::Ready(result)
    }
}

impl<F> ResponseFuture<F> {
    /// The future of a call admitted, queued or refused by `admission`; `inner` is the
    /// inner service's future, `None` when the call was refused at once.
    pub(crate) fn new(admission: Admission, inner: Option<F>) -> Self {
        Self {
            admission,
            permit: None,
            inner,
        }
    }
}
