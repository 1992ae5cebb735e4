//! A handle on a breaker: read its state and counts, force it, watch it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::phase::Override;
use crate::shared::Shared;
use crate::state::State;
use crate::window::WindowCounts;

/// A handle on one breaker, for operators and for code that reacts to it.
///
/// Cheap to clone; every clone controls the same breaker.
///
/// ```
/// use palisade_breaker::{BreakerConfig, CircuitBreakerLayer, State};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = CircuitBreakerLayer::new("payments");
/// let handle = layer.handle();
/// let mut changes = handle.subscribe();
///
/// handle.force_open(); // e.g. from an admin endpoint, during a maintenance window
/// assert_eq!(handle.state(), State::ForcedOpen);
/// assert_eq!(*changes.borrow_and_update(), State::ForcedOpen);
///
/// handle.reset();
/// assert_eq!(handle.state(), State::Closed);
/// # }
/// ```
#[derive(Clone)]
pub struct BreakerHandle {
    shared: Arc<Shared>,
}

/// What a breaker has counted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerCounts {
    /// The calls in the sliding window; always empty when no policy reads the window
    /// (neither a failure rate nor a slow-call rate is configured), as it is then not kept.
    pub window: WindowCounts,
    /// Failures since the last success.
    pub consecutive_failures: u32,
}

impl BreakerHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        self.shared.name()
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.shared.machine().state()
    }

    /// How long the breaker stays open, if it is open on its own accord.
    pub fn retry_after(&self) -> Option<Duration> {
        let until = self.shared.machine().open_until()?;
        Some(Duration::from_nanos(
            until.saturating_sub(self.shared.now()),
        ))
    }

    /// What the breaker has counted.
    pub fn counts(&self) -> BreakerCounts {
        let machine = self.shared.machine();
        BreakerCounts {
            window: machine.counts(self.shared.now()),
            consecutive_failures: machine.consecutive_failures(),
        }
    }

    /// Refuses every call until [`reset`](Self::reset) (resilience4j's `FORCED_OPEN`,
    /// Polly's `Isolate`).
    pub fn force_open(&self) {
        self.force(Override::ForcedOpen);
    }

    /// Lets every call through and never trips, still counting outcomes, until
    /// [`reset`](Self::reset) (resilience4j's `DISABLED`/`METRICS_ONLY`).
    pub fn force_closed(&self) {
        self.force(Override::Disabled);
    }

    /// Lifts any override and closes the breaker with empty counts (Polly's `Close`).
    pub fn reset(&self) {
        if let Some(t) = self.shared.machine().reset() {
            self.shared.on_transition(t);
        }
    }

    /// A receiver of the breaker's state, updated at every transition.
    pub fn subscribe(&self) -> watch::Receiver<State> {
        self.shared.subscribe()
    }

    fn force(&self, over: Override) {
        if let Some(t) = self.shared.machine().force(over) {
            self.shared.on_transition(t);
        }
    }
}

impl std::fmt::Debug for BreakerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerHandle")
            .field("name", &self.name())
            .field("state", &self.state())
            .finish()
    }
}
