//! The response future: reports each request's latency, or failure, to its endpoint's load.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use palisade_core::cancel::Cancellation;
use palisade_core::{Classify, Outcome};
use pin_project_lite::pin_project;
use tokio::time::Instant;

use crate::error::NoReadyEndpoints;
use crate::load::Load;

use palisade_core::BoxError;

pin_project! {
    /// The response future of [`Balance`](crate::Balance).
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F, C>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, C> {
        Called { #[pin] future: F, tracker: Option<Tracker>, classifier: C, max_hint: Duration },
        Refused { refusal: Option<NoReadyEndpoints> },
    }
}

/// A request in flight on an endpoint. Dropped unfinished, its time counts against the
/// endpoint: as a failure if a timeout cut it ([`palisade_core::cancel`]), as a latency of
/// at least that long otherwise.
struct Tracker {
    load: Arc<Load>,
    started: Instant,
    finished: bool,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        if !self.finished {
            let timed_out = palisade_core::cancel::current() == Cancellation::TimedOut;
            self.load.cancel(self.started.elapsed(), timed_out);
        }
    }
}

impl Tracker {
    fn finish(mut self, failed: bool, hold: Option<Duration>) {
        self.finished = true;
        self.load.finish(self.started.elapsed(), failed);
        if let Some(wait) = hold {
            self.load.hold(wait);
        }
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn called(future: F, load: Arc<Load>, classifier: C, max_hint: Duration) -> Self {
        let tracker = Tracker {
            load,
            started: Instant::now(),
            finished: false,
        };
        Self {
            kind: Kind::Called {
                future,
                tracker: Some(tracker),
                classifier,
                max_hint,
            },
        }
    }

    pub(crate) fn refused(refusal: NoReadyEndpoints) -> Self {
        Self {
            kind: Kind::Refused {
                refusal: Some(refusal),
            },
        }
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Classify<T, E>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Called {
                future,
                tracker,
                classifier,
                max_hint,
            } => {
                let result = ready!(future.poll(cx));
                if let Some(tracker) = tracker.take() {
                    let failed = classifier.classify_result(&result) == Outcome::Failure;
                    let hold = result
                        .as_ref()
                        .ok()
                        .and_then(|response| classifier.retry_after(response))
                        .map(|wait| wait.min(*max_hint));
                    tracker.finish(failed, hold);
                }
                Poll::Ready(result.map_err(Into::into))
            }
            KindProj::Refused { refusal } => Poll::Ready(Err(refusal
                .take()
                .expect("a refused future is polled once")
                .into())),
        }
    }
}
