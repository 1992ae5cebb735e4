//! The response future of [`CircuitBreaker`](crate::CircuitBreaker).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use palisade_core::{Classify, Outcome, refusal};
use pin_project_lite::pin_project;

use crate::error::BreakerOpen;
use crate::shared::Permit;

pin_project! {
    /// The response future of [`CircuitBreaker`](crate::CircuitBreaker): the inner future,
    /// whose outcome it reports to the breaker, or a refusal.
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F, C>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, C> {
        Called { #[pin] future: F, permit: Option<Permit>, classifier: C },
        Rejected { error: Option<BreakerOpen> },
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn called(future: F, permit: Permit, classifier: C) -> Self {
        Self {
            kind: Kind::Called {
                future,
                permit: Some(permit),
                classifier,
            },
        }
    }

    pub(crate) fn rejected(error: BreakerOpen) -> Self {
        Self {
            kind: Kind::Rejected { error: Some(error) },
        }
    }
}

/// The outcome a call counts as: a palisade refusal from a layer below counts neither way
/// (the service never saw the request), anything else as the classifier says.
pub(crate) fn judge<C, T, E>(classifier: &C, result: &Result<T, E>) -> Outcome
where
    C: Classify<T, E>,
    E: 'static,
{
    match result {
        Ok(response) if classifier.is_refusal(response) => Outcome::Ignored,
        Err(error) if refusal::is_refusal_error(error) => Outcome::Ignored,
        _ => classifier.classify_result(result),
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<palisade_core::BoxError> + 'static,
    C: Classify<T, E>,
{
    type Output = Result<T, palisade_core::BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Called {
                future,
                permit,
                classifier,
            } => {
                let result = ready!(future.poll(cx));
                if let Some(permit) = permit.take() {
                    permit.record(judge(classifier, &result));
                }
                Poll::Ready(result.map_err(Into::into))
            }
            KindProj::Rejected { error } => {
                let error = error
                    .take()
                    .expect("ResponseFuture polled after completion");
                Poll::Ready(Err(error.into()))
            }
        }
    }
}
