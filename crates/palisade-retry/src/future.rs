//! [`ResponseFuture`]: a retried call, or a hedged one.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use palisade_core::BoxError;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::hedge::HedgeFuture;
use crate::policy::Policy;
use crate::replay::Replay;
use crate::retrying::RetryFuture;

pin_project! {
    /// The response future of [`Retry`](crate::Retry).
    pub struct ResponseFuture<S, R, P, Req>
    where
        R: Replay<Req>,
        S: Service<<R as Replay<Req>>::Attempt>,
    {
        #[pin]
        kind: Kind<S, R, P, Req>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S, R, P, Req>
    where
        R: Replay<Req>,
        S: Service<<R as Replay<Req>>::Attempt>,
    {
        Retrying { #[pin] future: RetryFuture<S, R, P, Req> },
        Hedging { #[pin] future: HedgeFuture<S, R, P, Req> },
    }
}

impl<S, R, P, Req> ResponseFuture<S, R, P, Req>
where
    R: Replay<Req>,
    S: Service<R::Attempt>,
{
    pub(crate) fn retrying(future: RetryFuture<S, R, P, Req>) -> Self {
        Self {
            kind: Kind::Retrying { future },
        }
    }

    pub(crate) fn hedging(future: HedgeFuture<S, R, P, Req>) -> Self {
        Self {
            kind: Kind::Hedging { future },
        }
    }
}

impl<S, R, P, Req> Future for ResponseFuture<S, R, P, Req>
where
    R: Replay<Req>,
    S: Service<R::Attempt>,
    S::Error: Into<BoxError>,
    P: Policy<Req, S::Response>,
{
    type Output = Result<S::Response, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Retrying { future } => future.poll(cx),
            KindProj::Hedging { future } => future.poll(cx),
        }
    }
}
