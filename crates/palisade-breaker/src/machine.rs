//! The breaker's state machine: lock-free, allocation-free, and blind to clocks.
//!
//! Time comes in as nanoseconds since the breaker was made, so the same code runs under
//! tokio's clock in a service, under a proptest's scripted clock, and under loom. All that
//! it knows of the world is which calls were admitted (a [`Ticket`]) and how they ended.
//!
//! Closed, an admission is one atomic load. A success is a window update; only a failure
//! or a slow call reads the window's totals to decide whether to trip. Every change of state
//! is one compare-and-swap on the [`Phase`] word, so concurrent failures trip the breaker
//! exactly once, and half-open probes are admitted up to the permitted number and no more.

use palisade_core::Outcome;
use palisade_core::random::SharedRandom;

use crate::config::BreakerConfig;
use crate::phase::{Override, Phase, St};
use crate::state::{State, Transition};
use crate::sync::{AtomicU32, AtomicU64, Ordering::*};
use crate::window::{SlidingWindow, WindowCounts};

/// An admitted call: the generation it was admitted in, and whether it is a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket {
    generation: u32,
    probe: bool,
}

impl Ticket {
    pub(crate) fn is_probe(self) -> bool {
        self.probe
    }
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denial {
    /// Open until this instant.
    Open { until: u64 },
    /// Half-open with every probe slot taken.
    ProbesBusy,
    /// Forced open by the handle.
    ForcedOpen,
}

pub(crate) struct Machine {
    config: BreakerConfig,
    phase: AtomicU64,
    /// When the open state ends. Written before the phase turns to open (see `open`).
    open_until: AtomicU64,
    /// How many times in a row the breaker has opened without closing in between.
    opens: AtomicU32,
    consecutive_failures: AtomicU32,
    window: SlidingWindow,
    /// The open duration's jitter.
    jitter: SharedRandom,
}

impl Machine {
    pub(crate) fn new(config: BreakerConfig) -> Self {
        Self {
            window: SlidingWindow::new(config.window),
            jitter: SharedRandom::new(config.jitter_seed, &config.name),
            config,
            phase: AtomicU64::new(Phase::INITIAL.0),
            open_until: AtomicU64::new(0),
            opens: AtomicU32::new(0),
            consecutive_failures: AtomicU32::new(0),
        }
    }

    pub(crate) fn config(&self) -> &BreakerConfig {
        &self.config
    }

    #[inline]
    fn phase(&self) -> Phase {
        Phase(self.phase.load(Acquire))
    }

    fn cas(&self, current: Phase, new: Phase) -> Result<(), Phase> {
        self.phase
            .compare_exchange(current.0, new.0, AcqRel, Acquire)
            .map(drop)
            .map_err(Phase)
    }

    pub(crate) fn state(&self) -> State {
        state_of(self.phase())
    }

    /// When the current open state ends, if the breaker is open on its own accord.
    pub(crate) fn open_until(&self) -> Option<u64> {
        let p = self.phase();
        (p.over() == Override::None && p.st() == St::Open).then(|| self.open_until.load(Acquire))
    }

    pub(crate) fn counts(&self, now: u64) -> WindowCounts {
        self.window.counts(now)
    }

    pub(crate) fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Relaxed)
    }

    /// Admits a call at `now`, or says why not. Turning an open breaker half-open is part
    /// of admitting its first probe, and is reported.
    ///
    /// `now` is asked only when the breaker is open: the closed path reads no clock.
    #[inline]
    pub(crate) fn try_acquire(
        &self,
        now: impl Fn() -> u64,
    ) -> Result<(Ticket, Option<Transition>), Denial> {
        let mut p = self.phase();
        loop {
            match p.over() {
                Override::Disabled => return Ok((ticket(p, false), None)),
                Override::ForcedOpen => return Err(Denial::ForcedOpen),
                Override::None => {}
            }
            let next = match p.st() {
                St::Closed => return Ok((ticket(p, false), None)),
                St::Open => {
                    let until = self.open_until.load(Acquire);
                    if now() < until {
                        return Err(Denial::Open { until });
                    }
                    p.next(St::HalfOpen).with_probes(1, 0)
                }
                St::HalfOpen => {
                    if p.in_flight() >= self.config.half_open_probes {
                        return Err(Denial::ProbesBusy);
                    }
                    p.with_probes(p.in_flight() + 1, p.successes())
                }
            };
            match self.cas(p, next) {
                Ok(()) => {
                    let transition = (p.st() != next.st()).then(|| Transition {
                        from: state_of(p),
                        to: state_of(next),
                    });
                    return Ok((ticket(next, true), transition));
                }
                Err(actual) => p = actual,
            }
        }
    }

    /// Records how an admitted call ended; `slow` says it took the slow-call threshold or
    /// longer. Returns the transition it caused, if any.
    #[inline]
    pub(crate) fn record(
        &self,
        ticket: Ticket,
        outcome: Outcome,
        slow: bool,
        now: u64,
    ) -> Option<Transition> {
        if ticket.probe {
            return self.record_probe(ticket, outcome, slow, now);
        }
        let failure = match outcome {
            Outcome::Ignored => return None,
            Outcome::Success => {
                if self.consecutive_failures.load(Relaxed) != 0 {
                    self.consecutive_failures.store(0, Relaxed);
                }
                false
            }
            Outcome::Failure => true,
        };
        let in_a_row = if failure {
            self.consecutive_failures
                .fetch_add(1, Relaxed)
                .saturating_add(1)
        } else {
            0
        };
        if self.config.keeps_window() {
            self.window.record(now, failure, slow);
        }
        if !failure && !slow {
            // Successes never trip a breaker: the fast path ends here.
            return None;
        }
        let p = self.phase();
        if p.over() != Override::None || p.st() != St::Closed || p.generation() != ticket.generation
        {
            // Disabled, or the breaker has moved on since this call was admitted.
            return None;
        }
        if self.should_trip(in_a_row, now) {
            self.open(p, now)
        } else {
            None
        }
    }

    fn should_trip(&self, in_a_row: u32, now: u64) -> bool {
        let config = &self.config;
        if config.consecutive_failures.is_some_and(|n| in_a_row >= n) {
            return true;
        }
        if config.failure_rate.is_none() && config.slow_calls.is_none() {
            return false;
        }
        let counts = self.window.counts(now);
        if counts.calls < config.min_calls.max(1) {
            return false;
        }
        let calls = f64::from(counts.calls);
        config
            .failure_rate
            .is_some_and(|rate| f64::from(counts.failures) >= rate * calls)
            || config
                .slow_calls
                .is_some_and(|(rate, _)| f64::from(counts.slow) >= rate * calls)
    }

    fn record_probe(
        &self,
        ticket: Ticket,
        outcome: Outcome,
        slow: bool,
        now: u64,
    ) -> Option<Transition> {
        // A slow probe is a failed probe when slow calls can trip the breaker.
        let outcome = match outcome {
            Outcome::Success if slow && self.config.slow_calls.is_some() => Outcome::Failure,
            other => other,
        };
        let mut p = self.phase();
        loop {
            if !self.is_current_probe(p, ticket) {
                return None;
            }
            let next = match outcome {
                Outcome::Failure => return self.open(p, now),
                Outcome::Ignored => p.with_probes(p.in_flight().saturating_sub(1), p.successes()),
                Outcome::Success => {
                    let successes = p.successes() + 1;
                    if successes >= self.config.successes_to_close {
                        p.next(St::Closed)
                    } else {
                        p.with_probes(p.in_flight().saturating_sub(1), successes)
                    }
                }
            };
            match self.cas(p, next) {
                Ok(()) if next.st() == St::Closed => {
                    self.window.reset();
                    self.consecutive_failures.store(0, Relaxed);
                    self.opens.store(0, Relaxed);
                    return Some(Transition {
                        from: State::HalfOpen,
                        to: State::Closed,
                    });
                }
                Ok(()) => return None,
                Err(actual) => p = actual,
            }
        }
    }

    /// Gives back the slot of a probe that ended without an outcome (its future was
    /// dropped). Returns whether a slot was freed.
    pub(crate) fn release(&self, ticket: Ticket) -> bool {
        if !ticket.probe {
            return false;
        }
        let mut p = self.phase();
        loop {
            if !self.is_current_probe(p, ticket) {
                return false;
            }
            let next = p.with_probes(p.in_flight().saturating_sub(1), p.successes());
            match self.cas(p, next) {
                Ok(()) => return true,
                Err(actual) => p = actual,
            }
        }
    }

    fn is_current_probe(&self, p: Phase, ticket: Ticket) -> bool {
        p.over() == Override::None && p.st() == St::HalfOpen && p.generation() == ticket.generation
    }

    /// Opens the breaker from `p` (closed, or half-open after a failed probe), unless some
    /// other thread changed the state first.
    fn open(&self, mut p: Phase, now: u64) -> Option<Transition> {
        let from = p.st();
        let generation = p.generation();
        let opens = if from == St::Closed {
            1
        } else {
            self.opens.load(Relaxed).saturating_add(1)
        };
        let duration = self.config.open_duration.nth(opens, self.jitter.next_f64());
        let until = now.saturating_add(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
        // The deadline goes out before the phase: whoever sees "open" must see its deadline.
        // A thread that loses the race below has written a deadline computed from the same
        // moment and the same settings, so the value that stays is as good as the winner's.
        self.open_until.store(until, Release);
        self.opens.store(opens, Relaxed);
        loop {
            match self.cas(p, p.next(St::Open)) {
                Ok(()) => {
                    self.consecutive_failures.store(0, Relaxed);
                    return Some(Transition {
                        from: state_of(p),
                        to: State::Open,
                    });
                }
                // Only the probe counters moved: same state, same generation, try again.
                Err(actual)
                    if actual.st() == from
                        && actual.generation() == generation
                        && actual.over() == Override::None =>
                {
                    p = actual;
                }
                Err(_) => return None,
            }
        }
    }

    /// Imposes (or lifts, with `Override::None`) an override from the handle.
    pub(crate) fn force(&self, over: Override) -> Option<Transition> {
        let mut p = self.phase();
        loop {
            if p.over() == over {
                return None;
            }
            let next = p.with_override(over);
            match self.cas(p, next) {
                Ok(()) => {
                    let (from, to) = (state_of(p), state_of(next));
                    return (from != to).then_some(Transition { from, to });
                }
                Err(actual) => p = actual,
            }
        }
    }

    /// Back to closed with empty counts and no override.
    pub(crate) fn reset(&self) -> Option<Transition> {
        let mut p = self.phase();
        loop {
            let next = p.with_override(Override::None).next(St::Closed);
            match self.cas(p, next) {
                Ok(()) => {
                    self.window.reset();
                    self.consecutive_failures.store(0, Relaxed);
                    self.opens.store(0, Relaxed);
                    let from = state_of(p);
                    return (from != State::Closed).then_some(Transition {
                        from,
                        to: State::Closed,
                    });
                }
                Err(actual) => p = actual,
            }
        }
    }
}

fn ticket(p: Phase, probe: bool) -> Ticket {
    Ticket {
        generation: p.generation(),
        probe,
    }
}

fn state_of(p: Phase) -> State {
    match (p.over(), p.st()) {
        (Override::ForcedOpen, _) => State::ForcedOpen,
        (Override::Disabled, _) => State::Disabled,
        (Override::None, St::Closed) => State::Closed,
        (Override::None, St::Open) => State::Open,
        (Override::None, St::HalfOpen) => State::HalfOpen,
    }
}

#[cfg(all(test, palisade_loom))]
mod loom_tests {
    //! Model checks: run with `RUSTFLAGS="--cfg palisade_loom" cargo test -p palisade-breaker
    //! --lib --release -- loom_`.

    use std::time::Duration;

    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use loom::thread;

    use super::*;
    use crate::config::OpenDuration;
    use crate::window::Window;

    fn machine(consecutive: u32, probes: u32) -> Machine {
        Machine::new(
            BreakerConfig::builder("test")
                .consecutive_failures(consecutive)
                .no_failure_rate()
                .window(Window::count(4))
                .open_duration(OpenDuration::fixed(Duration::from_nanos(10)))
                .half_open_probes(probes)
                .successes_to_close(probes)
                .build()
                .unwrap(),
        )
    }

    #[test]
    fn loom_concurrent_failures_trip_exactly_once() {
        loom::model(|| {
            let m = Arc::new(machine(1, 1));
            let opened = Arc::new(AtomicUsize::new(0));
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let (m, opened) = (Arc::clone(&m), Arc::clone(&opened));
                    thread::spawn(move || {
                        if let Ok((ticket, _)) = m.try_acquire(|| 0) {
                            if let Some(t) = m.record(ticket, Outcome::Failure, false, 0) {
                                assert_eq!(t.to, State::Open);
                                opened.fetch_add(1, SeqCst);
                            }
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(opened.load(SeqCst), 1);
            assert_eq!(m.state(), State::Open);
        });
    }

    #[test]
    fn loom_no_more_probes_than_permitted() {
        loom::model(|| {
            let m = Arc::new(machine(1, 1));
            let (ticket, _) = m.try_acquire(|| 0).unwrap();
            m.record(ticket, Outcome::Failure, false, 0).unwrap();
            let running = Arc::new(AtomicUsize::new(0));
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let (m, running) = (Arc::clone(&m), Arc::clone(&running));
                    thread::spawn(move || {
                        if let Ok((ticket, _)) = m.try_acquire(|| 100) {
                            assert!(ticket.is_probe());
                            let now_running = running.fetch_add(1, SeqCst) + 1;
                            assert!(now_running <= 1, "{now_running} probes at once");
                            running.fetch_sub(1, SeqCst);
                            m.release(ticket);
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(m.state(), State::HalfOpen);
        });
    }

    #[test]
    fn loom_a_late_failure_cannot_reopen_after_close() {
        loom::model(|| {
            let m = Arc::new(machine(1, 1));
            // A call admitted while closed, finishing late.
            let (stale, _) = m.try_acquire(|| 0).unwrap();
            let (ticket, _) = m.try_acquire(|| 0).unwrap();
            m.record(ticket, Outcome::Failure, false, 0).unwrap();
            let (probe, _) = m.try_acquire(|| 100).unwrap();
            let closer = {
                let m = Arc::clone(&m);
                thread::spawn(move || m.record(probe, Outcome::Success, false, 100))
            };
            let late = m.record(stale, Outcome::Failure, false, 100);
            closer.join().unwrap();
            assert!(
                late.is_none(),
                "a failure from an old generation drove the new state"
            );
            assert_eq!(m.state(), State::Closed);
        });
    }
}
