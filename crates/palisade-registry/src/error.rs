//! The refusal of a draining instance.

use std::fmt;
use std::time::Duration;

use palisade_core::Rejection;

/// The instance is shutting down: the request was refused without running, so that the
/// caller sends it to another instance.
///
/// An HTTP `503 Service Unavailable` with `Retry-After` and a problem+json body, or gRPC
/// `UNAVAILABLE` with `grpc-retry-pushback-ms` — both of which a retrying client (palisade's
/// among them) may send again elsewhere, since nothing ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draining {
    pub(crate) name: std::sync::Arc<str>,
    pub(crate) retry_after: Duration,
}

impl Draining {
    /// The name of the drain that refused.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for Draining {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: the instance is shutting down; send the request to another",
            self.name
        )
    }
}

impl std::error::Error for Draining {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&palisade_core::refusal::LOCAL_REFUSAL)
    }
}

impl Rejection for Draining {
    fn retry_after(&self) -> Option<Duration> {
        Some(self.retry_after)
    }

    fn kind(&self) -> &'static str {
        "draining"
    }

    fn title(&self) -> &'static str {
        "The instance is shutting down"
    }
}
