//! What reached a backend.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters of what reached a backend; shared by its clones.
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) calls: AtomicU64,
    pub(crate) successes: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) in_flight: AtomicU64,
    pub(crate) ready_errors: AtomicU64,
}

impl Stats {
    /// Calls that reached the backend.
    pub fn calls(&self) -> u64 {
        self.calls.load(Relaxed)
    }

    /// Calls that succeeded.
    pub fn successes(&self) -> u64 {
        self.successes.load(Relaxed)
    }

    /// Calls that failed.
    pub fn failures(&self) -> u64 {
        self.failures.load(Relaxed)
    }

    /// Calls started and not finished (hanging, or dropped by the caller before the end).
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Relaxed)
    }

    /// Times `poll_ready` returned an error.
    pub fn ready_errors(&self) -> u64 {
        self.ready_errors.load(Relaxed)
    }
}
