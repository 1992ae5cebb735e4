//! Why a call's future was dropped before it finished.
//!
//! A layer below a timeout sees only that its future was dropped: the caller may have gone
//! away, or a timeout may have cut a call that took too long. The two mean different things
//! to the layers that judge a service by its calls. A caller that left says nothing about
//! the service; a timeout says the service was too slow, and a balancer that ignored it
//! would keep sending traffic to an endpoint that answers nothing in time (its latency
//! estimate never sees the slow calls, and decays towards "fast").
//!
//! The layer that cuts a call drops its future inside [`dropping`], with the reason; every
//! layer below reads it from [`current`] in its `Drop`. Dropping is synchronous, so the
//! reason reaches exactly the futures dropped in that scope, on that thread — through a
//! `tower::buffer::Buffer` too, whose response future owns the inner service's future.
//!
//! | layer below | dropped, `Cancellation::Dropped` | dropped, `Cancellation::TimedOut` |
//! |---|---|---|
//! | breaker | `cancelled`: neither success nor failure | a failure |
//! | balance | the time spent counts as a latency sample, at least | a failure: charged the failure penalty |
//!
//! palisade-retry's attempt timeout and deadline drop with `TimedOut`. A timeout of another
//! crate (tower's `Timeout`) drops without a reason, which reads as `Dropped`.
//!
//! ```
//! use palisade_core::cancel::{self, Cancellation};
//!
//! struct Watch;
//! impl Drop for Watch {
//!     fn drop(&mut self) {
//!         assert_eq!(cancel::current(), Cancellation::TimedOut);
//!     }
//! }
//!
//! assert_eq!(cancel::current(), Cancellation::Dropped);
//! cancel::dropping(Cancellation::TimedOut, || drop(Watch));
//! assert_eq!(cancel::current(), Cancellation::Dropped, "only inside the scope");
//! ```

use std::cell::Cell;

/// Why a future is being dropped unfinished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Cancellation {
    /// Its caller went away, for a reason of its own (the default).
    #[default]
    Dropped,
    /// A timeout or a deadline cut it: the service took too long.
    TimedOut,
}

thread_local! {
    static REASON: Cell<Cancellation> = const { Cell::new(Cancellation::Dropped) };
}

/// Why the future whose `Drop` is running is being dropped.
pub fn current() -> Cancellation {
    REASON.with(Cell::get)
}

/// Runs `drop` (which drops futures) with `reason` as the [`current`] cancellation; the
/// reason before it is restored afterwards, even if `drop` panics.
pub fn dropping<R>(reason: Cancellation, drop: impl FnOnce() -> R) -> R {
    struct Restore(Cancellation);
    impl Drop for Restore {
        fn drop(&mut self) {
            REASON.with(|r| r.set(self.0));
        }
    }
    let _restore = Restore(REASON.with(|r| r.replace(reason)));
    drop()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_is_restored_after_a_panic_and_nested_scopes() {
        let caught = std::panic::catch_unwind(|| {
            dropping(Cancellation::TimedOut, || panic!("in a drop"));
        });
        assert!(caught.is_err());
        assert_eq!(current(), Cancellation::Dropped);
        dropping(Cancellation::TimedOut, || {
            dropping(Cancellation::Dropped, || {
                assert_eq!(current(), Cancellation::Dropped)
            });
            assert_eq!(current(), Cancellation::TimedOut);
        });
    }
}
