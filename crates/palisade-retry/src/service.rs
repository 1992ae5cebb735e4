//! The retrying service.

use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use crate::future::ResponseFuture;
use crate::hedge::HedgeFuture;
use crate::policy::Policy;
use crate::replay::Replay;
use crate::retrying::RetryFuture;
use crate::shared::Shared;

use palisade_core::BoxError;

/// A service whose calls are retried; made by [`RetryLayer`](crate::RetryLayer) or
/// [`HttpRetryLayer`](crate::HttpRetryLayer).
///
/// `poll_ready` is the inner service's. A call that may be retried keeps a clone of the
/// inner service, which it drives to readiness before each retry (as tower's `Retry` does).
/// Every request — retried or not — is deposited in the budget.
#[derive(Clone)]
pub struct Retry<S, P, R> {
    inner: S,
    shared: Arc<Shared>,
    policy: P,
    replay: R,
}

impl<S, P, R> Retry<S, P, R> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>, policy: P, replay: R) -> Self {
        Self {
            inner,
            shared,
            policy,
            replay,
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

impl<S: std::fmt::Debug, P, R> std::fmt::Debug for Retry<S, P, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("name", &self.shared.config.name)
            .finish_non_exhaustive()
    }
}

impl<S, P, R, Req> Service<Req> for Retry<S, P, R>
where
    R: Replay<Req> + Clone,
    S: Service<R::Attempt> + Clone,
    S::Error: Into<BoxError>,
    P: Policy<Req, S::Response> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, R, P, Req>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        start(
            &mut self.inner,
            &self.shared,
            &self.policy,
            &self.replay,
            request,
        )
    }
}

/// Sends `request`'s first attempt through `inner`, and returns the future that retries or
/// hedges it as `shared` and `policy` say: the `call` of every retrying service (one
/// configuration for all its requests, or one per gRPC method).
pub(crate) fn start<S, P, R, Req>(
    inner: &mut S,
    shared: &Arc<Shared>,
    policy: &P,
    replay: &R,
    mut request: Req,
) -> ResponseFuture<S, R, P, Req>
where
    R: Replay<Req> + Clone,
    S: Service<R::Attempt> + Clone,
    S::Error: Into<BoxError>,
    P: Policy<Req, S::Response> + Clone,
{
    replay.prepare(&mut request);
    shared.budget.deposit();
    let deadline = shared.deadline();
    // The request's own copy: `may_retry` may note what the decisions need.
    let mut policy = policy.clone();
    if shared.config.max_attempts == 1 || !policy.may_retry(&request) {
        let future = inner.call(replay.only(request));
        return ResponseFuture::retrying(RetryFuture::once(
            future,
            deadline,
            shared.clone(),
            policy,
        ));
    }
    let (attempt, saved) = replay.first(request);
    if shared.hedging.is_some() {
        let future = inner.call(attempt);
        return ResponseFuture::hedging(HedgeFuture::new(
            future,
            deadline,
            shared.clone(),
            policy,
            replay.clone(),
            inner.clone(),
            saved,
        ));
    }
    let future = inner.call(attempt);
    ResponseFuture::retrying(RetryFuture::retryable(
        future,
        deadline,
        shared.clone(),
        policy,
        replay.clone(),
        inner.clone(),
        saved,
    ))
}
