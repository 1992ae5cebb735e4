//! [`ResponseFuture`]: the handler's future, raced against its deadline.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::Response;
use palisade_core::{ResponseBody, rejection_response};
use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;
use tokio::time::{Sleep, sleep_until};

use crate::error::DeadlineExceeded;
use crate::layer::Shared;
use crate::metrics::Outcome;
use palisade_core::deadline::Deadline;

pin_project! {
    /// The response future of [`EnforceDeadline`](crate::EnforceDeadline).
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B> {
        // The handler, run with its deadline as the task's current one, and the timer that
        // ends it.
        Bounded {
            #[pin]
            call: TaskLocalFuture<Deadline, F>,
            #[pin]
            timer: Sleep,
            timeout: Duration,
            shared: Arc<Shared>,
            grpc: bool,
        },
        // Refused before the handler ran.
        Refused {
            response: Option<Response<ResponseBody<B>>>,
        },
        // The handler was cancelled at its deadline (its future dropped).
        Cut,
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(crate) fn bounded(
        call: TaskLocalFuture<Deadline, F>,
        deadline: Deadline,
        timeout: Duration,
        shared: Arc<Shared>,
        grpc: bool,
    ) -> Self {
        Self {
            kind: Kind::Bounded {
                call,
                timer: sleep_until(deadline.instant()),
                timeout,
                shared,
                grpc,
            },
        }
    }

    pub(crate) fn refused(response: Response<ResponseBody<B>>) -> Self {
        Self {
            kind: Kind::Refused {
                response: Some(response),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut kind = self.project().kind;
        let (timeout, shared, grpc) = match kind.as_mut().project() {
            KindProj::Bounded {
                call,
                timer,
                timeout,
                shared,
                grpc,
            } => {
                // The handler first: an answer ready at the deadline is still an answer.
                if let Poll::Ready(result) = call.poll(cx) {
                    shared.metrics.result(Outcome::Met);
                    return Poll::Ready(result.map(|r| r.map(ResponseBody::inner)));
                }
                ready!(timer.poll(cx));
                (*timeout, shared.clone(), *grpc)
            }
            KindProj::Refused { response } => {
                let response = response.take().expect("polled after completion");
                return Poll::Ready(Ok(response));
            }
            KindProj::Cut => panic!("polled after completion"),
        };
        // Cancel the handler now: its future (and whatever it holds) is dropped here.
        kind.set(Kind::Cut);
        shared.metrics.result(Outcome::Exceeded);
        tracing::debug!(name = %shared.config.name, ?timeout, "deadline passed; handler cancelled");
        Poll::Ready(Ok(rejection_response(&DeadlineExceeded { timeout }, grpc)))
    }
}
