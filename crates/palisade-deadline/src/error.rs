//! How a request is refused: its deadline passed, or it sent one that does not read.

use std::fmt;
use std::time::Duration;

use http::StatusCode;
use palisade_core::Rejection;
use palisade_core::grpc::GrpcCode;
use palisade_core::refusal::LOCAL_REFUSAL;

use crate::timeout::InvalidTimeout;

/// The request's deadline passed before its handler answered; the handler was cancelled.
/// `504 Gateway Timeout` with a problem+json body, or gRPC `DEADLINE_EXCEEDED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlineExceeded {
    /// How long the request was given.
    pub timeout: Duration,
}

impl fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the request's deadline ({:?}) passed before it was answered",
            self.timeout
        )
    }
}

impl std::error::Error for DeadlineExceeded {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&LOCAL_REFUSAL)
    }
}

impl Rejection for DeadlineExceeded {
    fn http_status(&self) -> StatusCode {
        StatusCode::GATEWAY_TIMEOUT
    }

    fn grpc_code(&self) -> GrpcCode {
        GrpcCode::DeadlineExceeded
    }

    fn retry_after(&self) -> Option<Duration> {
        None
    }

    fn kind(&self) -> &'static str {
        "deadline-exceeded"
    }

    fn title(&self) -> &'static str {
        "Deadline exceeded"
    }
}

/// The request's timeout header did not read: `400 Bad Request` with a problem+json body,
/// or gRPC `INVALID_ARGUMENT` — the caller's mistake, said at once rather than guessed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedTimeout(pub InvalidTimeout);

impl fmt::Display for MalformedTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the request's timeout does not read: {}", self.0)
    }
}

impl std::error::Error for MalformedTimeout {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&LOCAL_REFUSAL)
    }
}

impl Rejection for MalformedTimeout {
    fn http_status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }

    fn grpc_code(&self) -> GrpcCode {
        GrpcCode::InvalidArgument
    }

    fn retry_after(&self) -> Option<Duration> {
        None
    }

    fn kind(&self) -> &'static str {
        "malformed-timeout"
    }

    fn title(&self) -> &'static str {
        "Malformed timeout"
    }
}
