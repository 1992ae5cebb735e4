//! [`ResponseFuture`]: an outgoing call, raced against its deadline.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use palisade_core::BoxError;
use palisade_core::cancel::{self, Cancellation};
use palisade_core::deadline::Deadline;
use pin_project_lite::pin_project;
use tokio::time::{Sleep, sleep_until};

use super::Shared;
use crate::error::DeadlineExceeded;
use crate::metrics::CallOutcome;

pin_project! {
    /// The response future of [`PropagateDeadline`](super::PropagateDeadline).
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        // No deadline to keep: the call as it is.
        Unbounded {
            #[pin]
            call: F,
        },
        // The call and the timer that ends it.
        Bounded {
            #[pin]
            call: F,
            #[pin]
            timer: Sleep,
            timeout: Duration,
            shared: Arc<Shared>,
        },
        // Not sent: the deadline had passed, or as good as.
        Expired,
        // Finished, or cut at the deadline (the call's future dropped).
        Done,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn unbounded(call: F) -> Self {
        Self {
            kind: Kind::Unbounded { call },
        }
    }

    pub(crate) fn bounded(
        call: F,
        deadline: Deadline,
        timeout: Duration,
        shared: Arc<Shared>,
    ) -> Self {
        Self {
            kind: Kind::Bounded {
                call,
                timer: sleep_until(deadline.instant()),
                timeout,
                shared,
            },
        }
    }

    pub(crate) fn expired() -> Self {
        Self {
            kind: Kind::Expired,
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut kind = self.project().kind;
        let (timeout, shared) = match kind.as_mut().project() {
            KindProj::Unbounded { call } => return call.poll(cx).map_err(Into::into),
            KindProj::Bounded {
                call,
                timer,
                timeout,
                shared,
            } => {
                // The call first: an answer ready at the deadline is still an answer.
                if let Poll::Ready(result) = call.poll(cx) {
                    shared.metrics.call(CallOutcome::Met);
                    kind.set(Kind::Done);
                    return Poll::Ready(result.map_err(Into::into));
                }
                if timer.poll(cx).is_pending() {
                    return Poll::Pending;
                }
                (*timeout, shared.clone())
            }
            KindProj::Expired => {
                kind.set(Kind::Done);
                return Poll::Ready(Err(DeadlineExceeded {
                    timeout: Duration::ZERO,
                }
                .into()));
            }
            KindProj::Done => panic!("polled after completion"),
        };
        // Cut the call: dropped saying why, so that a balancer or breaker below charges its
        // endpoint with a slow call rather than reading a caller that went away.
        cancel::dropping(Cancellation::TimedOut, || kind.set(Kind::Done));
        shared.metrics.call(CallOutcome::Exceeded);
        tracing::debug!(name = %shared.config.name, ?timeout, "deadline passed; call cut");
        Poll::Ready(Err(DeadlineExceeded { timeout }.into()))
    }
}
