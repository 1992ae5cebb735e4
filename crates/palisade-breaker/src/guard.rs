//! A breaker around code that is not a tower `Service`: a store client, a lock, a call made
//! from inside a handler — resilience4j's `acquirePermission` / `onSuccess` / `onError`.
//!
//! [`BreakerHandle::standalone`] makes a breaker of its own; [`BreakerHandle::try_acquire`]
//! asks for the right to make one call now, and the [`CallPermit`] it hands out reports how
//! the call ended. While the breaker is open the call is refused at once, with the
//! [`BreakerOpen`] that says when to try again.
//!
//! ```
//! use palisade_breaker::{BreakerConfig, BreakerHandle, State};
//!
//! let config = BreakerConfig::builder("inventory-db").consecutive_failures(2).build().unwrap();
//! let breaker = BreakerHandle::standalone(config);
//! for _ in 0..2 {
//!     let permit = breaker.try_acquire().expect("closed: the call may go");
//!     // ... the call, which fails:
//!     permit.failure();
//! }
//! assert_eq!(breaker.state(), State::Open);
//! let refused = breaker.try_acquire().unwrap_err();
//! assert!(refused.retry_after().is_some());
//! ```

use palisade_core::Outcome;

use crate::config::BreakerConfig;
use crate::error::BreakerOpen;
use crate::handle::BreakerHandle;
use crate::shared::{Permit, Shared};

impl BreakerHandle {
    /// A breaker of its own, configured by `config`, for code that is not a tower
    /// `Service`: see [the guard module](crate::guard). Its metrics carry `config`'s name.
    pub fn standalone(config: BreakerConfig) -> BreakerHandle {
        BreakerHandle::new(Shared::new(config))
    }

    /// The right to make one call now, or the refusal while the breaker is open (or its
    /// half-open probes are all taken). Report the call's end on the permit; dropping it
    /// unreported counts the call as cancelled (neither way).
    pub fn try_acquire(&self) -> Result<CallPermit, BreakerOpen> {
        self.shared().acquire().map(CallPermit)
    }
}

/// The right to make one call through a breaker, and the duty to say how it ended: see
/// [`BreakerHandle::try_acquire`].
#[must_use = "report how the call ended: success(), failure() or record(outcome)"]
pub struct CallPermit(Permit);

impl std::fmt::Debug for CallPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallPermit").finish_non_exhaustive()
    }
}

impl CallPermit {
    /// The call succeeded.
    pub fn success(self) {
        self.record(Outcome::Success);
    }

    /// The call failed: it counts against the dependency.
    pub fn failure(self) {
        self.record(Outcome::Failure);
    }

    /// The call ended with `outcome` (`Ignored`: it says nothing of the dependency).
    pub fn record(self, outcome: Outcome) {
        self.0.record(outcome);
    }
}
