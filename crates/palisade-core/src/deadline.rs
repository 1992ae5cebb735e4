//! The deadline a request carries from edge to leaf, and where code running for it finds it.
//!
//! Shared by the layers that set it (palisade-deadline's server layer) and those that obey
//! it (its client layer, retries and hedges), so that none of them depends on another.

use std::future::Future;
use std::time::Duration;

use tokio::task::futures::TaskLocalFuture;
use tokio::time::Instant;

tokio::task_local! {
    /// The deadline of the request whose handler this task is running.
    static CURRENT: Deadline;
}

/// The moment by which a request must be answered: after it, its caller has given up, and
/// any work still done for it is wasted.
///
/// A point on tokio's clock, so that paused-time tests move it as they move every timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline {
    at: Instant,
}

impl Deadline {
    /// The deadline at `at`.
    pub fn at(at: Instant) -> Self {
        Self { at }
    }

    /// The deadline `timeout` from now.
    pub fn after(timeout: Duration) -> Self {
        Self::at(Instant::now() + timeout)
    }

    /// When it is.
    pub fn instant(&self) -> Instant {
        self.at
    }

    /// What is left of it: zero once it has passed.
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Whether it has passed.
    pub fn is_expired(&self) -> bool {
        Instant::now() >= self.at
    }

    /// The earlier of the two.
    pub fn min(self, other: Deadline) -> Deadline {
        Ord::min(self, other)
    }

    /// Runs `future` with this deadline as its [`current`] one — what the server layer does
    /// around a handler, and what a task spawned for the request can do to inherit it.
    pub fn scope<F: Future>(self, future: F) -> TaskLocalFuture<Deadline, F> {
        CURRENT.scope(self, future)
    }

    /// The deadline of the request this task is working for: see [`current`].
    pub fn current() -> Option<Deadline> {
        current()
    }
}

/// The deadline of the request being handled, when the handler runs under palisade-deadline's
/// `EnforceDeadline` (or inside [`Deadline::scope`]): readable
/// anywhere in the handler's task without passing it down. `None` elsewhere — in a task the
/// handler spawned, for one: hand it the deadline (it is `Copy`) if its work is the
/// request's.
pub fn current() -> Option<Deadline> {
    CURRENT.try_with(|deadline| *deadline).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_deadline_counts_down_on_tokio_s_clock() {
        let deadline = Deadline::after(Duration::from_millis(100));
        assert_eq!(deadline.remaining(), Duration::from_millis(100));
        tokio::time::advance(Duration::from_millis(60)).await;
        assert_eq!(deadline.remaining(), Duration::from_millis(40));
        assert!(!deadline.is_expired());
        tokio::time::advance(Duration::from_millis(60)).await;
        assert_eq!(deadline.remaining(), Duration::ZERO);
        assert!(deadline.is_expired());
    }

    #[tokio::test(start_paused = true)]
    async fn the_current_deadline_is_the_scope_s() {
        assert_eq!(current(), None);
        let deadline = Deadline::after(Duration::from_secs(1));
        let seen = deadline.scope(async { current() }).await;
        assert_eq!(seen, Some(deadline));
        assert_eq!(current(), None, "only inside the scope");
    }
}
