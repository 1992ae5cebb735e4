//! One breaker as its services share it: the state machine, a clock, and what the outside
//! world sees of it (metrics, events, the watch channel, gate-mode waiters).

use std::sync::{Arc, Mutex, PoisonError};
use std::task::Waker;
use std::time::Duration;

use palisade_core::Outcome;
use palisade_core::cancel::Cancellation;
use palisade_core::clock::Clock;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::BreakerConfig;
use crate::error::BreakerOpen;
use crate::machine::{Denial, Machine, Ticket};
use crate::metrics::BreakerMetrics;
use crate::state::{State, Transition};
use crate::window::Window;

/// How long a caller refused because every probe slot is taken is told to wait.
const PROBES_BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

pub(crate) struct Shared {
    machine: Machine,
    /// The machine's clock: read on every call that a time window counts, so the CPU's
    /// time-stamp counter rather than `clock_gettime` (see [`palisade_core::clock`]).
    clock: Clock,
    /// The instant of the clock's zero, to turn its nanoseconds back into instants.
    epoch: Instant,
    /// Whether recording a success needs the time: only to place it in a time window that a
    /// policy reads. (Reading the clock is most of what a call costs otherwise.)
    needs_clock: bool,
    metrics: BreakerMetrics,
    state_tx: watch::Sender<State>,
    /// Gate-mode services waiting for a probe slot or for the override to lift. Touched only
    /// when the breaker is not closed, never held across an await.
    waiters: Mutex<Vec<Waker>>,
}

impl Shared {
    pub(crate) fn new(config: BreakerConfig) -> Arc<Self> {
        let needs_clock = config.keeps_window() && matches!(config.window, Window::Time { .. });
        Arc::new(Self {
            metrics: BreakerMetrics::new(&config.name, config.silent),
            machine: Machine::new(config),
            clock: Clock::new(),
            epoch: Instant::now(),
            needs_clock,
            state_tx: watch::Sender::new(State::Closed),
            waiters: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn machine(&self) -> &Machine {
        &self.machine
    }

    pub(crate) fn name(&self) -> &Arc<str> {
        &self.machine.config().name
    }

    #[inline]
    pub(crate) fn now(&self) -> u64 {
        self.clock.nanos()
    }

    /// The instant the machine's clock calls `nanos`.
    pub(crate) fn instant_at(&self, nanos: u64) -> Instant {
        self.epoch + Duration::from_nanos(nanos)
    }

    /// Admits a call or refuses it (the refusal is counted).
    #[inline]
    pub(crate) fn acquire(self: &Arc<Self>) -> Result<Permit, BreakerOpen> {
        match self.machine.try_acquire(|| self.now()) {
            Ok((ticket, transition)) => {
                if let Some(t) = transition {
                    self.on_transition(t);
                }
                Ok(Permit::new(Arc::clone(self), ticket))
            }
            Err(denial) => Err(self.refuse(denial)),
        }
    }

    /// Like [`acquire`](Self::acquire), for gate mode: a refusal is not counted (the caller
    /// waits rather than fails) and is returned as the reason to wait.
    pub(crate) fn try_acquire_gate(self: &Arc<Self>) -> Result<Permit, Denial> {
        let (ticket, transition) = self.machine.try_acquire(|| self.now())?;
        if let Some(t) = transition {
            self.on_transition(t);
        }
        Ok(Permit::new(Arc::clone(self), ticket))
    }

    fn refuse(&self, denial: Denial) -> BreakerOpen {
        self.metrics.rejected();
        let (state, retry_after) = match denial {
            Denial::Open { until } => (
                State::Open,
                Some(Duration::from_nanos(until.saturating_sub(self.now()))),
            ),
            Denial::ProbesBusy => (State::HalfOpen, Some(PROBES_BUSY_RETRY_AFTER)),
            Denial::ForcedOpen => (State::ForcedOpen, None),
        };
        tracing::debug!(breaker = %self.name(), %state, "call refused");
        BreakerOpen::new(Arc::clone(self.name()), state, retry_after)
    }

    #[inline]
    fn finish(&self, ticket: Ticket, outcome: Outcome, elapsed: Option<Duration>) {
        let slow = match (self.machine.config().slow_call_threshold(), elapsed) {
            (Some(threshold), Some(elapsed)) => elapsed >= threshold,
            _ => false,
        };
        self.metrics.call(outcome, slow);
        let now = if self.needs_clock || outcome == Outcome::Failure {
            self.now()
        } else {
            0
        };
        if let Some(t) = self.machine.record(ticket, outcome, slow, now) {
            self.on_transition(t);
        } else if ticket.is_probe() {
            // A probe slot came free: a waiting gate may take it.
            self.wake_waiters();
        }
    }

    fn cancel(&self, ticket: Ticket) {
        self.metrics.cancelled();
        if self.machine.release(ticket) {
            self.wake_waiters();
        }
    }

    pub(crate) fn on_transition(&self, t: Transition) {
        match t.to {
            _ if self.machine.config().silent => {
                tracing::debug!(breaker = %self.name(), from = %t.from, to = %t.to, "circuit breaker state changed");
            }
            State::Open | State::ForcedOpen => {
                tracing::warn!(breaker = %self.name(), from = %t.from, to = %t.to, "circuit breaker opened");
            }
            _ => {
                tracing::info!(breaker = %self.name(), from = %t.from, to = %t.to, "circuit breaker state changed");
            }
        }
        self.metrics.transition(t);
        self.state_tx.send_replace(t.to);
        self.wake_waiters();
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<State> {
        self.state_tx.subscribe()
    }

    pub(crate) fn add_waiter(&self, waker: &Waker) {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        if !waiters.iter().any(|w| w.will_wake(waker)) {
            waiters.push(waker.clone());
        }
    }

    fn wake_waiters(&self) {
        let waiters =
            std::mem::take(&mut *self.waiters.lock().unwrap_or_else(PoisonError::into_inner));
        for waker in waiters {
            waker.wake();
        }
    }
}

/// The right to make one call through the breaker, and the duty to report how it ended.
///
/// Dropping a permit without recording (the call's future was dropped) gives back a probe
/// slot and counts as `cancelled`: never as a success, never leaked — unless a timeout cut
/// the call ([`palisade_core::cancel`]), which is a failure: the service took too long.
pub(crate) struct Permit {
    shared: Arc<Shared>,
    ticket: Ticket,
    /// When the call started on the breaker's clock, or [`UNTIMED`] when no slow-call
    /// threshold is set. (A plain `u64` keeps the permit, which every call moves, small.)
    started: u64,
    done: bool,
}

const UNTIMED: u64 = u64::MAX;

impl Permit {
    #[inline]
    fn new(shared: Arc<Shared>, ticket: Ticket) -> Self {
        let mut permit = Self {
            shared,
            ticket,
            started: UNTIMED,
            done: false,
        };
        permit.start();
        permit
    }

    /// Restarts the slow-call clock: the call starts now, not when the permit was taken.
    #[inline]
    pub(crate) fn start(&mut self) {
        if self.shared.machine.config().slow_calls.is_some() {
            self.started = self.shared.now();
        }
    }

    #[inline]
    pub(crate) fn record(mut self, outcome: Outcome) {
        self.finish(outcome);
    }

    fn finish(&mut self, outcome: Outcome) {
        self.done = true;
        let elapsed = (self.started != UNTIMED)
            .then(|| Duration::from_nanos(self.shared.now().saturating_sub(self.started)));
        self.shared.finish(self.ticket, outcome, elapsed);
    }
}

impl Drop for Permit {
    #[inline]
    fn drop(&mut self) {
        if self.done {
            return;
        }
        match palisade_core::cancel::current() {
            Cancellation::TimedOut => self.finish(Outcome::Failure),
            _ => self.shared.cancel(self.ticket),
        }
    }
}
