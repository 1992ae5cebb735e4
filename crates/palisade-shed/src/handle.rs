//! A handle on a shedder, to read what it is doing.

use std::sync::Arc;

use crate::limiter::Limiter;

/// Reads a shedder's current limit and load; cheap to clone.
#[derive(Clone)]
pub struct ShedHandle {
    limiter: Arc<Limiter>,
}

impl ShedHandle {
    pub(crate) fn new(limiter: Arc<Limiter>) -> Self {
        Self { limiter }
    }

    /// The concurrency limit now.
    pub fn limit(&self) -> usize {
        self.limiter.limit()
    }

    /// Requests running now.
    pub fn inflight(&self) -> usize {
        self.limiter.inflight()
    }

    /// Requests waiting for a slot now.
    pub fn queued(&self) -> usize {
        self.limiter.queued()
    }
}

impl std::fmt::Debug for ShedHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShedHandle")
            .field("limit", &self.limit())
            .field("inflight", &self.inflight())
            .field("queued", &self.queued())
            .finish()
    }
}
