//! For any sequence of calls starting, ending (as successes, failures or ignored), being
//! dropped, and the clock moving on, the breaker agrees with a small reference model: same
//! admissions and refusals, same `Retry-After`, same state and counts after every step.
//!
//! The model is written for reading, not for speed: a queue for the window, plain integers
//! for the phase. It follows the documented behaviour, so a disagreement is a bug in one of
//! the two, and proptest shrinks it to the shortest sequence that shows it.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use palisade_breaker::{
    BreakerConfig, BreakerHandle, BreakerOpen, CircuitBreakerLayer, OpenDuration, State, Window,
};
use palisade_core::{Outcome, classify_fn};
use proptest::prelude::*;
use tokio::sync::oneshot;
use tower::{BoxError, Layer, Service, service_fn};

/// The settings a case runs with.
#[derive(Debug, Clone)]
struct Settings {
    consecutive: Option<u32>,
    /// A failure rate over a count window of this many calls, with this minimum.
    rate: Option<(f64, u32, u32)>,
    /// Open durations: the first, and the cap; each failed probe doubles it.
    open_ms: (u64, u64),
    probes: u32,
    successes_to_close: u32,
}

impl Settings {
    fn config(&self) -> BreakerConfig {
        let mut builder = BreakerConfig::builder("model")
            .open_duration(OpenDuration::Exponential {
                initial: Duration::from_millis(self.open_ms.0),
                max: Duration::from_millis(self.open_ms.1),
                multiplier: 2.0,
                jitter: 0.0,
            })
            .half_open_probes(self.probes)
            .successes_to_close(self.successes_to_close);
        builder = match self.consecutive {
            Some(n) => builder.consecutive_failures(n),
            None => builder.no_consecutive_failures(),
        };
        builder = match self.rate {
            Some((rate, window, min_calls)) => builder
                .failure_rate(rate)
                .window(Window::count(window))
                .min_calls(min_calls),
            None => builder.no_failure_rate(),
        };
        builder.build().expect("the strategy makes valid settings")
    }
}

fn settings() -> impl Strategy<Value = Settings> {
    (
        prop::option::of(1u32..5),
        prop::option::of((prop::sample::select(vec![0.25, 0.5, 1.0]), 1u32..8, 1u32..8)),
        (1u64..2_000, 0u64..6_000),
        1u32..4,
        1u32..4,
    )
        .prop_filter("some policy must be able to trip", |(c, r, ..)| {
            c.is_some() || r.is_some()
        })
        .prop_map(
            |(consecutive, rate, (initial, extra), probes, successes)| Settings {
                consecutive,
                rate,
                open_ms: (initial, initial + extra),
                probes,
                successes_to_close: successes,
            },
        )
}

#[derive(Debug, Clone)]
enum Op {
    Start,
    /// End the pending call at this index (modulo how many there are).
    Finish(usize, Outcome),
    /// Drop the pending call at this index: the client went away.
    Drop(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let outcome = prop::sample::select(vec![Outcome::Success, Outcome::Failure, Outcome::Ignored]);
    prop_oneof![
        4 => Just(Op::Start),
        4 => (any::<usize>(), outcome).prop_map(|(i, o)| Op::Finish(i, o)),
        1 => any::<usize>().prop_map(Op::Drop),
        2 => (1u64..3_000).prop_map(Op::Advance),
    ]
}

/// A call the model admitted.
#[derive(Debug, Clone, Copy)]
struct Ticket {
    generation: u64,
    probe: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Closed,
    Open { until: u64 },
    HalfOpen { in_flight: u32, successes: u32 },
}

/// The breaker as the docs describe it.
struct Model {
    settings: Settings,
    phase: Phase,
    generation: u64,
    opens: u32,
    consecutive_failures: u32,
    /// The last calls, `true` for a failure.
    window: VecDeque<bool>,
}

impl Model {
    fn new(settings: Settings) -> Self {
        Self {
            settings,
            phase: Phase::Closed,
            generation: 0,
            opens: 0,
            consecutive_failures: 0,
            window: VecDeque::new(),
        }
    }

    fn state(&self) -> State {
        match self.phase {
            Phase::Closed => State::Closed,
            Phase::Open { .. } => State::Open,
            Phase::HalfOpen { .. } => State::HalfOpen,
        }
    }

    /// Admits a call at `now`, or refuses it with the `Retry-After` a client is given.
    fn acquire(&mut self, now: u64) -> Result<Ticket, Option<Duration>> {
        match self.phase {
            Phase::Closed => Ok(self.ticket(false)),
            Phase::Open { until } if now < until => Err(Some(Duration::from_millis(until - now))),
            Phase::Open { .. } => {
                self.move_to(Phase::HalfOpen {
                    in_flight: 1,
                    successes: 0,
                });
                Ok(self.ticket(true))
            }
            Phase::HalfOpen {
                in_flight,
                successes,
            } => {
                if in_flight >= self.settings.probes {
                    return Err(Some(Duration::from_secs(1)));
                }
                self.phase = Phase::HalfOpen {
                    in_flight: in_flight + 1,
                    successes,
                };
                Ok(self.ticket(true))
            }
        }
    }

    fn ticket(&self, probe: bool) -> Ticket {
        Ticket {
            generation: self.generation,
            probe,
        }
    }

    fn move_to(&mut self, phase: Phase) {
        self.phase = phase;
        self.generation += 1;
    }

    fn finish(&mut self, ticket: Ticket, outcome: Outcome, now: u64) {
        if ticket.probe {
            return self.finish_probe(ticket, outcome, now);
        }
        let failure = match outcome {
            Outcome::Ignored => return,
            Outcome::Success => {
                self.consecutive_failures = 0;
                false
            }
            Outcome::Failure => {
                self.consecutive_failures += 1;
                true
            }
        };
        if let Some((_, size, _)) = self.settings.rate {
            self.window.push_back(failure);
            if self.window.len() > size as usize {
                self.window.pop_front();
            }
        }
        // Only a failure admitted in the current closed phase can trip the breaker.
        if failure && self.phase == Phase::Closed && ticket.generation == self.generation {
            let by_count = self
                .settings
                .consecutive
                .is_some_and(|n| self.consecutive_failures >= n);
            let by_rate = self.settings.rate.is_some_and(|(rate, _, min_calls)| {
                let calls = self.window.len();
                let failures = self.window.iter().filter(|f| **f).count();
                calls >= min_calls as usize && failures as f64 >= rate * calls as f64
            });
            if by_count || by_rate {
                self.open(1, now);
            }
        }
    }

    fn finish_probe(&mut self, ticket: Ticket, outcome: Outcome, now: u64) {
        let Phase::HalfOpen {
            in_flight,
            successes,
        } = self.phase
        else {
            return;
        };
        if ticket.generation != self.generation {
            return;
        }
        match outcome {
            Outcome::Failure => self.open(self.opens + 1, now),
            Outcome::Ignored => {
                self.phase = Phase::HalfOpen {
                    in_flight: in_flight - 1,
                    successes,
                }
            }
            Outcome::Success if successes + 1 >= self.settings.successes_to_close => {
                self.move_to(Phase::Closed);
                self.window.clear();
                self.consecutive_failures = 0;
                self.opens = 0;
            }
            Outcome::Success => {
                self.phase = Phase::HalfOpen {
                    in_flight: in_flight - 1,
                    successes: successes + 1,
                }
            }
        }
    }

    fn open(&mut self, opens: u32, now: u64) {
        let (initial, max) = self.settings.open_ms;
        let duration = initial.saturating_mul(1 << (opens - 1).min(20)).min(max);
        self.opens = opens;
        self.consecutive_failures = 0;
        self.move_to(Phase::Open {
            until: now + duration,
        });
    }

    fn cancel(&mut self, ticket: Ticket) {
        if let Phase::HalfOpen {
            in_flight,
            successes,
        } = self.phase
            && ticket.probe
            && ticket.generation == self.generation
        {
            self.phase = Phase::HalfOpen {
                in_flight: in_flight - 1,
                successes,
            };
        }
    }
}

type CallFuture = Pin<Box<dyn Future<Output = Result<Outcome, BoxError>>>>;

/// A call in flight: how to end it, its future, and what the model gave it.
struct Pending {
    end: oneshot::Sender<Outcome>,
    future: CallFuture,
    ticket: Ticket,
}

fn poll_once(future: &mut CallFuture) -> Poll<Result<Outcome, BoxError>> {
    future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
}

fn run(settings: Settings, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let layer = CircuitBreakerLayer::with_config(settings.config()).classifier(classify_fn(
            |result: Result<&Outcome, &BoxError>| result.map_or(Outcome::Failure, |o| *o),
        ));
        let handle: BreakerHandle = layer.handle();
        // Each request carries the receiver its answer will come through.
        let mut service =
            layer.layer(service_fn(|answer: oneshot::Receiver<Outcome>| async move {
                answer.await.map_err(BoxError::from)
            }));
        let mut model = Model::new(settings);
        let mut pending: Vec<Pending> = Vec::new();
        let start = tokio::time::Instant::now();
        let now_ms = || u64::try_from(start.elapsed().as_millis()).expect("fits");

        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Start => {
                    let (end, answer) = oneshot::channel();
                    let mut future: CallFuture = Box::pin(service.call(answer));
                    match model.acquire(now_ms()) {
                        Ok(ticket) => {
                            prop_assert!(
                                poll_once(&mut future).is_pending(),
                                "step {step}: the breaker refused a call the model admits"
                            );
                            pending.push(Pending {
                                end,
                                future,
                                ticket,
                            });
                        }
                        Err(retry_after) => {
                            let Poll::Ready(Err(error)) = poll_once(&mut future) else {
                                return Err(TestCaseError::fail(format!(
                                    "step {step}: the breaker admitted a call the model refuses"
                                )));
                            };
                            let open = error
                                .downcast_ref::<BreakerOpen>()
                                .expect("a refusal is a BreakerOpen");
                            prop_assert_eq!(open.retry_after(), retry_after, "step {}", step);
                        }
                    }
                }
                Op::Finish(index, outcome) if !pending.is_empty() => {
                    let mut call = pending.remove(index % pending.len());
                    call.end.send(outcome).expect("the call is waiting");
                    let Poll::Ready(result) = poll_once(&mut call.future) else {
                        return Err(TestCaseError::fail("an answered call must complete"));
                    };
                    prop_assert_eq!(result.expect("answered"), outcome);
                    model.finish(call.ticket, outcome, now_ms());
                }
                Op::Drop(index) if !pending.is_empty() => {
                    let call = pending.remove(index % pending.len());
                    drop(call.future);
                    model.cancel(call.ticket);
                }
                Op::Advance(ms) => tokio::time::advance(Duration::from_millis(ms)).await,
                Op::Finish(..) | Op::Drop(_) => {}
            }
            prop_assert_eq!(handle.state(), model.state(), "step {}", step);
            let counts = handle.counts();
            prop_assert_eq!(
                counts.consecutive_failures,
                model.consecutive_failures,
                "step {}",
                step
            );
            prop_assert_eq!(
                counts.window.calls as usize,
                model.window.len(),
                "step {}",
                step
            );
            prop_assert_eq!(
                counts.window.failures as usize,
                model.window.iter().filter(|f| **f).count(),
                "step {}",
                step
            );
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_breaker_agrees_with_the_model(
        settings in settings(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        run(settings, ops)?;
    }
}
