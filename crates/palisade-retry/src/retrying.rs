//! The future of a retried call: attempts, backoffs and timers, as one state machine. It
//! allocates only the timers it needs: none for a call that succeeds at once with no
//! timeout or deadline.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use palisade_core::cancel::{self, Cancellation};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep, sleep_until};
use tower_service::Service;

use crate::error::{AttemptTimedOut, DeadlineExceeded};
use crate::metrics::AttemptOutcome;
use crate::policy::{Decision, Policy};
use crate::replay::Replay;
use crate::shared::Shared;

use palisade_core::BoxError;

/// Where a call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// An attempt is in flight.
    Calling,
    /// Waiting out the backoff before the next attempt.
    BackingOff,
    /// Waiting for the inner service to be ready for the next attempt.
    Readying,
}

/// What a call that may be retried keeps for its next attempt.
struct Retrying<S, R, Req>
where
    R: Replay<Req>,
{
    service: S,
    replay: R,
    saved: R::Saved,
    next: Option<R::Attempt>,
}

pin_project! {
    /// A call that backs off between attempts.
    pub(crate) struct RetryFuture<S, R, P, Req>
    where
        R: Replay<Req>,
        S: Service<<R as Replay<Req>>::Attempt>,
    {
        #[pin]
        attempt: Option<S::Future>,
        // The per-attempt timeout while calling, the backoff while backing off. Boxed: a
        // `Sleep` is large, and a call that succeeds at once with no timeout configured (the
        // common case) should not carry one inline.
        timer: Option<Pin<Box<Sleep>>>,
        deadline: Option<Pin<Box<Sleep>>>,
        // How long the deadline gave the call, for its error.
        given: Duration,
        // When the attempt in flight started, while there is a deadline to fit attempts in.
        attempt_started: Option<Instant>,
        retrying: Option<Retrying<S, R, Req>>,
        shared: Arc<Shared>,
        policy: P,
        phase: Phase,
        attempts: u32,
        last_delay: Duration,
        _request: PhantomData<fn(Req)>,
    }
}

impl<S, R, P, Req> RetryFuture<S, R, P, Req>
where
    R: Replay<Req>,
    S: Service<R::Attempt>,
{
    #[inline]
    fn new(
        future: S::Future,
        deadline: Option<(Instant, Duration)>,
        shared: Arc<Shared>,
        policy: P,
        retrying: Option<Retrying<S, R, Req>>,
    ) -> Self {
        let config = &shared.config;
        Self {
            attempt: Some(future),
            timer: config.attempt_timeout.map(|t| Box::pin(sleep(t))),
            deadline: deadline.map(|(at, _)| Box::pin(sleep_until(at))),
            given: deadline.map_or(Duration::ZERO, |(_, given)| given),
            // The deadline was set as the first attempt went: no clock to read.
            attempt_started: deadline.map(|(at, given)| at - given),
            retrying,
            shared,
            policy,
            phase: Phase::Calling,
            attempts: 0,
            last_delay: Duration::ZERO,
            _request: PhantomData,
        }
    }

    #[inline]
    pub(crate) fn once(
        future: S::Future,
        deadline: Option<(Instant, Duration)>,
        shared: Arc<Shared>,
        policy: P,
    ) -> Self {
        Self::new(future, deadline, shared, policy, None)
    }

    #[inline]
    pub(crate) fn retryable(
        future: S::Future,
        deadline: Option<(Instant, Duration)>,
        shared: Arc<Shared>,
        policy: P,
        replay: R,
        service: S,
        saved: R::Saved,
    ) -> Self {
        let retrying = Retrying {
            service,
            replay,
            saved,
            next: None,
        };
        Self::new(future, deadline, shared, policy, Some(retrying))
    }
}

/// Drops an attempt that a timeout or the deadline cut, saying so to the layers below (a
/// balancer charges its endpoint, a breaker counts a failure: [`palisade_core::cancel`]).
fn cut<F>(mut attempt: Pin<&mut Option<F>>) {
    cancel::dropping(Cancellation::TimedOut, || attempt.set(None));
}

impl<S, R, P, Req> Future for RetryFuture<S, R, P, Req>
where
    R: Replay<Req>,
    S: Service<R::Attempt>,
    S::Error: Into<BoxError>,
    P: Policy<Req, S::Response>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let shared = &**this.shared;
        let config = &shared.config;
        let given = *this.given;
        let deadline_passed = |attempts: u32| -> BoxError {
            Box::new(DeadlineExceeded {
                deadline: given,
                attempts,
            })
        };
        loop {
            match *this.phase {
                Phase::Calling => {
                    let Some(attempt) = this.attempt.as_mut().as_pin_mut() else {
                        unreachable!("an attempt is in flight while calling");
                    };
                    let result = match attempt.poll(cx) {
                        Poll::Ready(result) => {
                            this.attempt.set(None);
                            result.map_err(Into::into)
                        }
                        Poll::Pending => {
                            if this
                                .deadline
                                .as_mut()
                                .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready())
                            {
                                cut(this.attempt.as_mut());
                                return Poll::Ready(Err(deadline_passed(*this.attempts + 1)));
                            }
                            let timed_out = this
                                .timer
                                .as_mut()
                                .is_some_and(|timer| timer.as_mut().poll(cx).is_ready());
                            if !timed_out {
                                return Poll::Pending;
                            }
                            cut(this.attempt.as_mut());
                            Err(Box::new(AttemptTimedOut {
                                timeout: config.attempt_timeout.unwrap_or_default(),
                            }) as BoxError)
                        }
                    };
                    *this.timer = None;
                    *this.attempts += 1;

                    let decision = this.policy.decide(result.as_ref());
                    let (reason, hint) = match decision {
                        Decision::Retry { reason, after } => (reason, after),
                        Decision::Done | Decision::Refused => {
                            shared.budget.record(false);
                            shared.metrics.attempt(if decision == Decision::Refused {
                                AttemptOutcome::Pushback
                            } else {
                                AttemptOutcome::Done
                            });
                            return Poll::Ready(result);
                        }
                    };
                    shared.budget.record(true);
                    let Some(retrying) = this.retrying.as_mut() else {
                        // A request the policy does not let be retried.
                        shared.metrics.attempt(AttemptOutcome::Done);
                        return Poll::Ready(result);
                    };
                    if *this.attempts >= config.max_attempts {
                        shared.metrics.attempt(AttemptOutcome::AttemptsExhausted);
                        return Poll::Ready(result);
                    }
                    let delay = shared.delay(*this.attempts, *this.last_delay, hint);
                    let now = Instant::now();
                    let resume_at = now + delay;
                    // An attempt that cannot finish before the deadline is not started: it
                    // would take as long as the one that just failed, as far as can be told.
                    let needs = this.attempt_started.map_or(Duration::ZERO, |started| {
                        now.saturating_duration_since(started)
                    });
                    if this
                        .deadline
                        .as_ref()
                        .is_some_and(|d| resume_at + needs >= d.deadline())
                    {
                        shared.metrics.attempt(AttemptOutcome::Deadline);
                        return Poll::Ready(result);
                    }
                    let Some(next) = retrying.replay.again(&retrying.saved, *this.attempts) else {
                        shared.metrics.attempt(AttemptOutcome::NotReplayable);
                        return Poll::Ready(result);
                    };
                    if !shared.budget.withdraw() {
                        shared.metrics.attempt(AttemptOutcome::BudgetExhausted);
                        tracing::debug!(retry = %config.name, reason, "retry budget exhausted");
                        return Poll::Ready(result);
                    }
                    shared.metrics.attempt(AttemptOutcome::Retried);
                    shared.metrics.backoff(delay);
                    tracing::debug!(
                        retry = %config.name,
                        reason,
                        attempt = *this.attempts + 1,
                        delay_ms = delay.as_millis() as u64,
                        "retrying"
                    );
                    drop(result);
                    retrying.next = Some(next);
                    *this.last_delay = delay;
                    if this.attempt_started.is_some() {
                        *this.attempt_started = Some(resume_at);
                    }
                    if delay.is_zero() {
                        *this.phase = Phase::Readying;
                    } else {
                        *this.timer = Some(Box::pin(sleep_until(resume_at)));
                        *this.phase = Phase::BackingOff;
                    }
                }
                Phase::BackingOff => {
                    if let Some(timer) = this.timer.as_mut() {
                        ready!(timer.as_mut().poll(cx));
                    }
                    *this.timer = None;
                    *this.phase = Phase::Readying;
                }
                Phase::Readying => {
                    let Some(retrying) = this.retrying.as_mut() else {
                        unreachable!("only a retryable call gets ready again");
                    };
                    match retrying.service.poll_ready(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(error)) => return Poll::Ready(Err(error.into())),
                        Poll::Pending => {
                            if this
                                .deadline
                                .as_mut()
                                .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready())
                            {
                                return Poll::Ready(Err(deadline_passed(*this.attempts)));
                            }
                            return Poll::Pending;
                        }
                    }
                    let Some(request) = retrying.next.take() else {
                        unreachable!("the next attempt is made before getting ready");
                    };
                    this.attempt.set(Some(retrying.service.call(request)));
                    if let Some(timeout) = config.attempt_timeout {
                        *this.timer = Some(Box::pin(sleep(timeout)));
                    }
                    *this.phase = Phase::Calling;
                }
            }
        }
    }
}
