//! The breaker as a `Service` over any request and response type.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use palisade_core::Classify;
use tokio::time::Sleep;
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::handle::BreakerHandle;
use crate::machine::Denial;
use crate::pick::PickBreaker;
use crate::shared::Permit;

/// A service behind a circuit breaker; made by [`CircuitBreakerLayer`](crate::CircuitBreakerLayer).
///
/// Its errors are `palisade_core::BoxError`s: the inner service's errors as they were, or a
/// [`BreakerOpen`](crate::BreakerOpen) when the breaker refused the call.
///
/// - **Fail-fast mode** (the default): `poll_ready` is the inner service's readiness, and
///   `call` refuses at once with `BreakerOpen` while the breaker is open.
/// - **Gate mode** ([`CircuitBreakerLayer::gate`](crate::CircuitBreakerLayer::gate)):
///   `poll_ready` is `Pending` while the breaker is open and wakes the task when a probe is
///   due, so a balancer (tower's P2C, palisade's) routes around the endpoint instead of
///   sending it calls that would fail. It never returns `Err` for an open breaker: tower's
///   balancer drops an endpoint whose `poll_ready` fails, for good.
pub struct CircuitBreaker<S, C, P = BreakerHandle> {
    inner: S,
    breakers: P,
    classifier: C,
    gate: Option<Gate>,
}

/// Gate-mode state: the permit taken in `poll_ready` and the timer that ends the wait.
struct Gate {
    breaker: BreakerHandle,
    permit: Option<Permit>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<S, C, P> CircuitBreaker<S, C, P> {
    pub(crate) fn new(inner: S, breakers: P, classifier: C, gate: Option<BreakerHandle>) -> Self {
        Self {
            inner,
            breakers,
            classifier,
            gate: gate.map(|breaker| Gate {
                breaker,
                permit: None,
                sleep: None,
            }),
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

impl<S: Clone, C: Clone, P: Clone> Clone for CircuitBreaker<S, C, P> {
    fn clone(&self) -> Self {
        // A clone starts with no permit of its own: permits are not shared.
        let gate = self.gate.as_ref().map(|g| g.breaker.clone());
        Self::new(
            self.inner.clone(),
            self.breakers.clone(),
            self.classifier.clone(),
            gate,
        )
    }
}

impl<S: std::fmt::Debug, C, P> std::fmt::Debug for CircuitBreaker<S, C, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("gate", &self.gate.is_some())
            .finish()
    }
}

impl Gate {
    /// Ready once a permit is held; otherwise arranges to be woken when one may be had.
    fn poll_permit(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut registered = false;
        while self.permit.is_none() {
            match self.breaker.shared().try_acquire_gate() {
                Ok(permit) => self.permit = Some(permit),
                Err(Denial::Open { until }) => {
                    let deadline = self.breaker.shared().instant_at(until);
                    let sleep = self
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                    if sleep.deadline() != deadline {
                        sleep.as_mut().reset(deadline);
                    }
                    ready!(sleep.as_mut().poll(cx));
                }
                Err(Denial::ProbesBusy | Denial::ForcedOpen) => {
                    if registered {
                        return Poll::Pending;
                    }
                    // Register, then look once more, so a slot freed in between is not missed.
                    self.breaker.shared().add_waiter(cx.waker());
                    registered = true;
                }
            }
        }
        Poll::Ready(())
    }
}

impl<S, C, P, Req> Service<Req> for CircuitBreaker<S, C, P>
where
    S: Service<Req>,
    S::Error: Into<palisade_core::BoxError> + 'static,
    C: Classify<S::Response, S::Error> + Clone,
    P: PickBreaker<Req>,
{
    type Response = S::Response;
    type Error = palisade_core::BoxError;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if let Some(gate) = &mut self.gate {
            ready!(gate.poll_permit(cx));
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let permit = match self.gate.as_mut().and_then(|g| g.permit.take()) {
            Some(mut permit) => {
                permit.start();
                Ok(permit)
            }
            // Fail-fast mode, or a gate called without `poll_ready`: decide now.
            None => self.breakers.pick(&request).shared().acquire(),
        };
        match permit {
            Ok(permit) => {
                ResponseFuture::called(self.inner.call(request), permit, self.classifier.clone())
            }
            Err(open) => ResponseFuture::rejected(open),
        }
    }
}
