//! The balancer's refusal.

use std::fmt;
use std::time::Duration;

// The HTTP and gRPC answers to a refusal live behind palisade-core's `http` feature, which
// this crate's `http` and `grpc` features turn on.
#[cfg(any(feature = "http", feature = "grpc"))]
use palisade_core::Rejection;

/// No endpoint was ready within the balancer's `no_ready_timeout`: none discovered yet, or
/// every one unready (all ejected, all at their limit).
///
/// tower's balancer stays `Pending` forever in this case; a caller would rather know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoReadyEndpoints {
    pub(crate) endpoints: usize,
    pub(crate) waited: Duration,
}

impl NoReadyEndpoints {
    /// The endpoints the balancer knew, none of them ready.
    pub fn endpoints(&self) -> usize {
        self.endpoints
    }
}

impl fmt::Display for NoReadyEndpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no ready endpoint among {} after waiting {} ms",
            self.endpoints,
            self.waited.as_millis()
        )
    }
}

impl std::error::Error for NoReadyEndpoints {}

/// Answered as `503 Service Unavailable` with `Retry-After: 1`, or gRPC `UNAVAILABLE`.
#[cfg(any(feature = "http", feature = "grpc"))]
impl Rejection for NoReadyEndpoints {
    fn retry_after(&self) -> Option<Duration> {
        Some(Duration::from_secs(1))
    }

    fn kind(&self) -> &'static str {
        "no-ready-endpoints"
    }

    fn title(&self) -> &'static str {
        "No ready endpoint"
    }
}
