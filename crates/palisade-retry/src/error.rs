//! The errors the retry layer adds to its inner service's.

use std::fmt;
use std::time::Duration;

/// An attempt took longer than the per-attempt timeout. The default policies retry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptTimedOut {
    pub(crate) timeout: Duration,
}

impl AttemptTimedOut {
    /// The per-attempt timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl fmt::Display for AttemptTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "attempt timed out after {} ms", self.timeout.as_millis())
    }
}

impl std::error::Error for AttemptTimedOut {}

/// The request's deadline passed while an attempt was in flight or the service was not
/// ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadlineExceeded {
    pub(crate) deadline: Duration,
    pub(crate) attempts: u32,
}

impl DeadlineExceeded {
    /// The deadline.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// The attempts started before it passed.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

impl fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "deadline of {} ms exceeded after {} attempt(s)",
            self.deadline.as_millis(),
            self.attempts
        )
    }
}

impl std::error::Error for DeadlineExceeded {}
