//! The refusal.

use std::fmt;
use std::time::Duration;

#[cfg(feature = "http")]
use palisade_core::{GrpcCode, Rejection};

use crate::priority::Priority;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The server was at its limit (for the request's priority) and the request could not
    /// wait: it is sheddable, or there is no queue.
    Limit,
    /// The queue was full.
    QueueFull,
    /// The request waited in the queue as long as it may.
    QueueTimeout,
}

impl Reason {
    pub(crate) const ALL: [Reason; 3] = [Reason::Limit, Reason::QueueFull, Reason::QueueTimeout];

    /// The name used in metrics: `limit`, `queue_full`, `queue_timeout`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Limit => "limit",
            Reason::QueueFull => "queue_full",
            Reason::QueueTimeout => "queue_timeout",
        }
    }
}

/// The server is overloaded: the request was refused without running.
///
/// In HTTP mode it is a `503 Service Unavailable` with `Retry-After` and a problem+json body,
/// or gRPC `RESOURCE_EXHAUSTED` with `grpc-retry-pushback-ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overloaded {
    pub(crate) reason: Reason,
    pub(crate) priority: Priority,
    pub(crate) limit: usize,
    pub(crate) retry_after: Duration,
}

impl Overloaded {
    /// Why.
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// The refused request's priority.
    pub fn priority(&self) -> Priority {
        self.priority
    }

    /// The concurrency limit when it was refused.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// When the client may try again.
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }
}

impl fmt::Display for Overloaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.reason {
            Reason::Limit => "the concurrency limit is reached",
            Reason::QueueFull => "the queue is full",
            Reason::QueueTimeout => "the request waited too long in the queue",
        };
        write!(
            f,
            "overloaded: {why} (limit {}, {} request)",
            self.limit,
            self.priority.as_str()
        )
    }
}

/// Its source marks it as a palisade refusal ([`palisade_core::refusal`]): the layers above
/// it neither count it as a failure of the service nor take its hint for a server's.
impl std::error::Error for Overloaded {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&palisade_core::refusal::LOCAL_REFUSAL)
    }
}

#[cfg(feature = "http")]
impl Rejection for Overloaded {
    fn grpc_code(&self) -> GrpcCode {
        GrpcCode::ResourceExhausted
    }

    fn retry_after(&self) -> Option<Duration> {
        Some(self.retry_after)
    }

    fn kind(&self) -> &'static str {
        "overloaded"
    }

    fn title(&self) -> &'static str {
        "Server overloaded"
    }
}
