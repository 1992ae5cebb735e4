//! The future of a hedged call: attempts in flight at once, one timer for whatever comes
//! next (the next hedge, an attempt's timeout, the deadline), the first final answer wins.
//!
//! The first attempt lives inline; only a hedge that is actually sent allocates (its
//! future is boxed into a list). A call answered before its hedge delay costs one timer,
//! and one answered at its first poll none — nor a look at the clock: its latency is read
//! as zero, and the hedge delay starts counting at the first poll that has to wait.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use palisade_core::BoxError;
use palisade_core::cancel::{self, Cancellation};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep_until};
use tower_service::Service;

use crate::error::{AttemptTimedOut, DeadlineExceeded};
use crate::metrics::{AttemptOutcome, HedgeEvent};
use crate::policy::{Decision, Policy};
use crate::replay::Replay;
use crate::shared::Shared;

/// A hedge's attempt in flight.
struct InFlight<F> {
    future: Pin<Box<F>>,
    sent: Instant,
    number: u32,
}

/// Why no further attempt will be sent.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Attempts,
    Budget,
    Deadline,
    NotReplayable,
    Pushback,
    NotReady,
    /// Not yet known: the first attempt has not had to wait. Set on its first wait.
    Unarmed,
}

impl Stop {
    fn outcome(self) -> AttemptOutcome {
        match self {
            Stop::Attempts => AttemptOutcome::AttemptsExhausted,
            Stop::Budget => AttemptOutcome::BudgetExhausted,
            Stop::Deadline => AttemptOutcome::Deadline,
            Stop::NotReplayable => AttemptOutcome::NotReplayable,
            Stop::Pushback => AttemptOutcome::Pushback,
            Stop::NotReady | Stop::Unarmed => AttemptOutcome::Done,
        }
    }
}

pin_project! {
    /// See the [module docs](self).
    #[project = Projection]
    pub(crate) struct HedgeFuture<S, R, P, Req>
    where
        R: Replay<Req>,
        S: Service<<R as Replay<Req>>::Attempt>,
    {
        // The first attempt, or a later one sent while no other was in flight.
        #[pin]
        first: Option<S::Future>,
        // When it was sent, as far as a hedge is concerned: its first wait.
        first_sent: Option<Instant>,
        first_number: u32,
        // Hedges sent while another attempt was in flight.
        rest: Vec<InFlight<S::Future>>,
        // Made on the first poll that has to wait: a call answered at once needs none.
        timer: Option<Pin<Box<Sleep>>>,
        // When the next attempt goes; `Err` once no other will.
        next: Result<Instant, Stop>,
        deadline: Option<(Instant, Duration)>,
        // The last failure the policy would have retried: the answer if nothing better comes.
        failure: Option<Result<S::Response, BoxError>>,
        service: S,
        replay: R,
        saved: R::Saved,
        shared: Arc<Shared>,
        policy: P,
        sent: u32,
        _request: PhantomData<fn(Req)>,
    }
}

impl<S, R, P, Req> HedgeFuture<S, R, P, Req>
where
    R: Replay<Req>,
    S: Service<R::Attempt>,
{
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        future: S::Future,
        deadline: Option<(Instant, Duration)>,
        shared: Arc<Shared>,
        policy: P,
        replay: R,
        service: S,
        saved: R::Saved,
    ) -> Self {
        let max = shared.config.max_attempts;
        Self {
            first: Some(future),
            first_sent: None,
            first_number: 0,
            rest: Vec::new(),
            timer: None,
            next: Err(if max > 1 {
                Stop::Unarmed
            } else {
                Stop::Attempts
            }),
            deadline,
            failure: None,
            service,
            replay,
            saved,
            shared,
            policy,
            sent: 1,
            _request: PhantomData,
        }
    }
}

/// The time, read once a turn and only when something needs it: a call answered at its
/// first poll reads it never.
#[derive(Default)]
struct Clock(Option<Instant>);

impl Clock {
    fn now(&mut self) -> Instant {
        *self.0.get_or_insert_with(Instant::now)
    }
}

/// What became of the attempts in flight.
enum Event<T> {
    Answer {
        result: T,
        // None: the first attempt, answered before it ever waited.
        sent: Option<Instant>,
        number: u32,
    },
    TimedOut,
    Nothing,
}

impl<S, R, P, Req> Future for HedgeFuture<S, R, P, Req>
where
    R: Replay<Req>,
    S: Service<R::Attempt>,
    S::Error: Into<BoxError>,
    P: Policy<Req, S::Response>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            // Projected afresh each turn: a turn that waits hands the whole future to
            // `wait`.
            let mut this = self.as_mut().project();
            let shared = &**this.shared;
            let config = &shared.config;
            let attempt_timeout = config.attempt_timeout;
            let mut clock = Clock::default();
            if let Some((deadline, timeout)) = *this.deadline
                && clock.now() >= deadline
            {
                cancel::dropping(Cancellation::TimedOut, || {
                    this.first.set(None);
                    this.rest.clear();
                });
                shared.metrics.attempt(AttemptOutcome::Deadline);
                return Poll::Ready(Err(Box::new(DeadlineExceeded {
                    deadline: timeout,
                    attempts: *this.sent,
                })));
            }

            // The attempts in flight: an answer, an attempt past its timeout, or nothing new.
            let event = poll_attempts(
                this.first.as_mut(),
                *this.first_sent,
                *this.first_number,
                this.rest,
                attempt_timeout.map(|t| clock.now().checked_sub(t)),
                cx,
            );
            let (result, sent, number) = match event {
                Event::Answer {
                    result,
                    sent,
                    number,
                } => (result.map_err(Into::into), Some(sent), number),
                Event::TimedOut => (
                    Err(Box::new(AttemptTimedOut {
                        timeout: config.attempt_timeout.unwrap_or_default(),
                    }) as BoxError),
                    None,
                    0,
                ),
                Event::Nothing => match self.as_mut().wait(clock.now(), attempt_timeout, cx) {
                    Some(answer) => return answer,
                    None => continue,
                },
            };

            let decision = this.policy.decide(result.as_ref());
            let in_flight = usize::from(this.first.is_some()) + this.rest.len();
            match decision {
                Decision::Done => {
                    shared.budget.record(false);
                    let hedging = shared.hedging.as_ref().expect("a hedging layer");
                    // An answer at the first poll took no time worth a clock read.
                    let latency = sent.map(|sent| sent.map_or(Duration::ZERO, |s| clock.now() - s));
                    if let Some(delay) = latency.and_then(|latency| hedging.record(latency)) {
                        shared.metrics.hedge_delay(delay);
                    }
                    shared.metrics.attempt(AttemptOutcome::Done);
                    if number > 0 {
                        shared.metrics.hedge(HedgeEvent::Won);
                    }
                    // The losers are dropped: their endpoints are charged the time they took.
                    for _ in 0..in_flight {
                        shared.metrics.attempt(AttemptOutcome::Cancelled);
                    }
                    this.first.set(None);
                    this.rest.clear();
                    return Poll::Ready(result);
                }
                Decision::Refused => {
                    shared.budget.record(false);
                    *this.next = Err(Stop::Pushback);
                }
                Decision::Retry { after, reason } => {
                    shared.budget.record(true);
                    tracing::debug!(retry = %config.name, reason, "a hedged attempt failed");
                    // gRFC A6: a failed hedge is followed at once by the next, unless the
                    // server pushed back.
                    let at = clock.now() + after.map_or(Duration::ZERO, |a| a.min(config.max_hint));
                    match this.next.as_mut() {
                        Ok(next) => *next = (*next).min(at),
                        Err(Stop::Unarmed) => *this.next = Ok(at),
                        Err(_) => {}
                    }
                }
            }
            // A failure: the answer if nothing better comes.
            match *this.next {
                Ok(_) => shared.metrics.attempt(AttemptOutcome::Retried),
                Err(stop) => {
                    shared.metrics.attempt(stop.outcome());
                    if in_flight == 0 {
                        return Poll::Ready(result);
                    }
                }
            }
            *this.failure = Some(result);
        }
    }
}

impl<S, R, P, Req> HedgeFuture<S, R, P, Req>
where
    R: Replay<Req>,
    S: Service<R::Attempt>,
    S::Error: Into<BoxError>,
{
    /// No attempt has answered: arms the hedge delay on the first wait, sends the next
    /// attempt if it is due, or sleeps until something is. `None`: poll the attempts again.
    ///
    /// Out of line, and given the whole future: a call answered at its first poll never
    /// comes here, and so never lays out the projection that `send` needs in memory (its
    /// fields' addresses, stored to the stack, were a tenth of `poll`'s samples).
    #[inline(never)]
    fn wait(
        self: Pin<&mut Self>,
        now: Instant,
        attempt_timeout: Option<Duration>,
        cx: &mut Context<'_>,
    ) -> Option<Poll<Result<S::Response, BoxError>>> {
        let mut this = self.project();
        if let Err(Stop::Unarmed) = *this.next {
            // The first wait: the hedge delay counts from here.
            let hedging = this.shared.hedging.as_ref().expect("a hedging layer");
            *this.first_sent = Some(now);
            *this.next = Ok(now + hedging.delay());
        }
        match self::send(&mut this, now, cx) {
            Sending::Sent => return None, // to poll the new attempt
            Sending::Answer(answer) => return Some(Poll::Ready(answer)),
            Sending::Idle => {}
        }
        // Sleep until the next thing that can happen without an answer. A due attempt
        // that was not sent waits for the service's readiness instead.
        let wake = [
            this.next.ok().filter(|&next| next > now),
            this.deadline.map(|(d, _)| d),
            earliest_timeout(*this.first_sent, this.first.is_some(), this.rest)
                .zip(attempt_timeout)
                .map(|(sent, t)| sent + t),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(wake) = wake else {
            return Some(Poll::Pending);
        };
        let timer = match this.timer {
            Some(timer) => {
                if timer.deadline() != wake {
                    timer.as_mut().reset(wake);
                }
                timer
            }
            None => this.timer.insert(Box::pin(sleep_until(wake))),
        };
        if timer.as_mut().poll(cx).is_pending() {
            return Some(Poll::Pending);
        }
        None
    }
}

/// What [`send`] did.
enum Sending<T> {
    /// An attempt went out.
    Sent,
    /// No attempt is left in flight and none will be sent: the answer.
    Answer(T),
    /// Nothing yet.
    Idle,
}

/// Sends the next attempt if it is due and may go.
fn send<S, R, P, Req>(
    this: &mut Projection<'_, S, R, P, Req>,
    now: Instant,
    cx: &mut Context<'_>,
) -> Sending<Result<S::Response, BoxError>>
where
    R: Replay<Req>,
    S: Service<R::Attempt>,
    S::Error: Into<BoxError>,
{
    let in_flight = this.first.is_some() || !this.rest.is_empty();
    if let Ok(at) = *this.next
        && at <= now
    {
        match this.service.poll_ready(cx) {
            Poll::Pending => return Sending::Idle,
            Poll::Ready(Err(error)) => {
                *this.next = Err(Stop::NotReady);
                if !in_flight {
                    return Sending::Answer(Err(error.into()));
                }
            }
            Poll::Ready(Ok(())) => {
                let hedged = hedge(this, now);
                let shared = &**this.shared;
                if let Err(stop) = hedged {
                    if let Stop::Budget = stop {
                        shared.metrics.hedge(HedgeEvent::Refused);
                    }
                    *this.next = Err(stop);
                } else {
                    let hedging = shared.hedging.as_ref().expect("a hedging layer");
                    shared.metrics.hedge(HedgeEvent::Sent);
                    *this.sent += 1;
                    *this.next = if *this.sent < shared.config.max_attempts {
                        Ok(now + hedging.delay())
                    } else {
                        Err(Stop::Attempts)
                    };
                    return Sending::Sent;
                }
            }
        }
    }
    let in_flight = this.first.is_some() || !this.rest.is_empty();
    match (*this.next, in_flight) {
        (Err(_), false) => {
            // Nothing in flight and nothing to come: the last failure is the answer.
            let failure = this.failure.take().expect("an attempt failed before");
            Sending::Answer(failure)
        }
        _ => Sending::Idle,
    }
}

/// Makes and sends the next attempt, or says why not.
fn hedge<S, R, P, Req>(this: &mut Projection<'_, S, R, P, Req>, now: Instant) -> Result<(), Stop>
where
    R: Replay<Req>,
    S: Service<R::Attempt>,
{
    let shared = &**this.shared;
    let hedging = shared.hedging.as_ref().expect("a hedging layer");
    if let Some((deadline, _)) = *this.deadline {
        // An attempt that the typical one could not finish in time is not worth sending.
        let needs = hedging.median().unwrap_or_default();
        if deadline.saturating_duration_since(now) <= needs {
            return Err(Stop::Deadline);
        }
    }
    let attempt = this
        .replay
        .again(this.saved, *this.sent)
        .ok_or(Stop::NotReplayable)?;
    if !hedging.withdraw() || !shared.budget.withdraw() {
        tracing::debug!(retry = %shared.config.name, "hedge refused by the retry budget");
        return Err(Stop::Budget);
    }
    let future = this.service.call(attempt);
    let number = *this.sent;
    if this.first.is_none() {
        this.first.set(Some(future));
        *this.first_sent = Some(now);
        *this.first_number = number;
    } else {
        this.rest.push(InFlight {
            future: Box::pin(future),
            sent: now,
            number,
        });
    }
    Ok(())
}

/// Polls every attempt in flight; an answer ends the first one to give it. An attempt sent
/// before `timed_out_before` (when a per-attempt timeout is set) is cut instead.
fn poll_attempts<F, T>(
    mut first: Pin<&mut Option<F>>,
    first_sent: Option<Instant>,
    first_number: u32,
    rest: &mut Vec<InFlight<F>>,
    timed_out_before: Option<Option<Instant>>,
    cx: &mut Context<'_>,
) -> Event<T>
where
    F: Future<Output = T>,
{
    let expired = |sent: Instant| {
        timed_out_before
            .flatten()
            .is_some_and(|before| sent <= before)
    };
    if let Some(future) = first.as_mut().as_pin_mut() {
        if let Poll::Ready(result) = future.poll(cx) {
            first.set(None);
            return Event::Answer {
                result,
                sent: first_sent,
                number: first_number,
            };
        }
        if first_sent.is_some_and(expired) {
            cancel::dropping(Cancellation::TimedOut, || first.set(None));
            return Event::TimedOut;
        }
    }
    for i in 0..rest.len() {
        if let Poll::Ready(result) = rest[i].future.as_mut().poll(cx) {
            let done = rest.swap_remove(i);
            return Event::Answer {
                result,
                sent: Some(done.sent),
                number: done.number,
            };
        }
        if expired(rest[i].sent) {
            let cut = rest.swap_remove(i);
            cancel::dropping(Cancellation::TimedOut, || drop(cut));
            return Event::TimedOut;
        }
    }
    Event::Nothing
}

/// When the oldest attempt in flight was sent.
fn earliest_timeout<F>(
    first_sent: Option<Instant>,
    first: bool,
    rest: &[InFlight<F>],
) -> Option<Instant> {
    let first = first.then_some(first_sent).flatten();
    rest.iter().map(|a| a.sent).chain(first).min()
}
