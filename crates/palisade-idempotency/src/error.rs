//! The refusals: why a keyed request is not run, and the response that tells its client
//! (problem+json, or a gRPC status).

use std::fmt;
use std::time::Duration;

use http::{HeaderValue, Response, StatusCode, header};
use palisade_core::{GrpcCode, Rejection, rejection_response};

use crate::body::ResponseBody;
use crate::key::KeyError;
use crate::metrics::{IdempotencyMetrics, Outcome};

/// Why a keyed request was refused. In HTTP it is answered with the status below and a
/// problem+json body; in gRPC with the code below.
#[derive(Debug)]
#[non_exhaustive]
pub(crate) enum Refusal {
    /// The key header is malformed: 400, `INVALID_ARGUMENT`.
    MalformedKey(KeyError),
    /// The key is required and missing: 400, `INVALID_ARGUMENT`.
    MissingKey,
    /// The scope function found no identity to scope the key to: 400, `INVALID_ARGUMENT`.
    Unscoped,
    /// The body is larger than the layer buffers: 413, `RESOURCE_EXHAUSTED`.
    BodyTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body could not be read: 400, `INVALID_ARGUMENT`.
    BodyUnreadable,
    /// The first request with this key is still running: 409 with `Retry-After`,
    /// `UNAVAILABLE` with `grpc-retry-pushback-ms` (so gRPC clients retry it).
    InFlight {
        /// When to try again.
        retry_after: Duration,
    },
    /// The key was used for a different request (method, path, query or body): 422,
    /// `FAILED_PRECONDITION`.
    Mismatch,
    /// The store could not be reached, and the layer fails closed: 503 with `Retry-After`,
    /// `UNAVAILABLE`.
    StoreUnavailable {
        /// When to try again.
        retry_after: Duration,
    },
    /// The handler ran in the store's transaction, but the transaction could not be
    /// committed with the record of its response (the database failed, the claim was lost,
    /// or the response cannot be stored): nothing it did is kept, so a retry runs it again.
    /// 503 with `Retry-After`, `UNAVAILABLE`.
    Uncommitted {
        /// When to try again.
        retry_after: Duration,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::MalformedKey(error) => write!(f, "{error}"),
            Refusal::MissingKey => f.write_str("this request needs an Idempotency-Key header"),
            Refusal::Unscoped => f.write_str(
                "the request carries no identity to scope its Idempotency-Key to",
            ),
            Refusal::BodyTooLarge { limit } => write!(
                f,
                "a request with an Idempotency-Key may have a body of at most {limit} bytes"
            ),
            Refusal::BodyUnreadable => f.write_str("the request body could not be read"),
            Refusal::InFlight { .. } => f.write_str(
                "a request with this Idempotency-Key is still being processed; retry later",
            ),
            Refusal::Mismatch => f.write_str(
                "this Idempotency-Key was used for a different request (method, path, query or body)",
            ),
            Refusal::StoreUnavailable { .. } => f.write_str(
                "idempotency records are unavailable, so the request was not run; retry later",
            ),
            Refusal::Uncommitted { .. } => f.write_str(
                "the request's work could not be committed with its idempotency record; retry with the same key",
            ),
        }
    }
}

/// Its source marks it as a palisade refusal ([`palisade_core::refusal`]): the layers above
/// it neither count it as a failure of the service nor take its hint for a server's.
impl std::error::Error for Refusal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&palisade_core::refusal::LOCAL_REFUSAL)
    }
}

impl Refusal {
    /// The name used in metrics' `result` label.
    pub(crate) fn result(&self) -> Outcome {
        match self {
            Refusal::InFlight { .. } => Outcome::Conflict,
            Refusal::Mismatch => Outcome::Mismatch,
            _ => Outcome::Rejected,
        }
    }

    /// The answer to the refused request, in its protocol (problem+json, or a gRPC status
    /// if `grpc`), logged and counted in `metrics`.
    pub(crate) fn response<B>(
        &self,
        metrics: &IdempotencyMetrics,
        grpc: bool,
    ) -> Response<ResponseBody<B>> {
        tracing::debug!(refusal = %self, "keyed request refused");
        metrics.request(self.result());
        let (mut head, body) = rejection_response::<B>(self, grpc).into_parts();
        let body = body.into_rejection().unwrap_or_default();
        if !grpc {
            head.headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        Response::from_parts(head, ResponseBody::whole(body, None))
    }
}

impl Rejection for Refusal {
    fn http_status(&self) -> StatusCode {
        match self {
            Refusal::MalformedKey(_)
            | Refusal::MissingKey
            | Refusal::Unscoped
            | Refusal::BodyUnreadable => StatusCode::BAD_REQUEST,
            Refusal::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::InFlight { .. } => StatusCode::CONFLICT,
            Refusal::Mismatch => StatusCode::UNPROCESSABLE_ENTITY,
            Refusal::StoreUnavailable { .. } | Refusal::Uncommitted { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    fn grpc_code(&self) -> GrpcCode {
        match self {
            Refusal::MalformedKey(_)
            | Refusal::MissingKey
            | Refusal::Unscoped
            | Refusal::BodyUnreadable => GrpcCode::InvalidArgument,
            Refusal::BodyTooLarge { .. } => GrpcCode::ResourceExhausted,
            Refusal::InFlight { .. }
            | Refusal::StoreUnavailable { .. }
            | Refusal::Uncommitted { .. } => GrpcCode::Unavailable,
            Refusal::Mismatch => GrpcCode::FailedPrecondition,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Refusal::InFlight { retry_after }
            | Refusal::StoreUnavailable { retry_after }
            | Refusal::Uncommitted { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Refusal::MalformedKey(_) => "idempotency-key-malformed",
            Refusal::MissingKey => "idempotency-key-missing",
            Refusal::Unscoped => "idempotency-key-unscoped",
            Refusal::BodyTooLarge { .. } => "idempotency-body-too-large",
            Refusal::BodyUnreadable => "idempotency-body-unreadable",
            Refusal::InFlight { .. } => "idempotency-key-in-flight",
            Refusal::Mismatch => "idempotency-key-mismatch",
            Refusal::StoreUnavailable { .. } => "idempotency-store-unavailable",
            Refusal::Uncommitted { .. } => "idempotency-uncommitted",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Refusal::MalformedKey(_) => "Malformed Idempotency-Key",
            Refusal::MissingKey => "Idempotency-Key required",
            Refusal::Unscoped => "Idempotency-Key without a caller",
            Refusal::BodyTooLarge { .. } => "Request body too large for an idempotent request",
            Refusal::BodyUnreadable => "Request body unreadable",
            Refusal::InFlight { .. } => "Request with this Idempotency-Key in progress",
            Refusal::Mismatch => "Idempotency-Key reused for a different request",
            Refusal::StoreUnavailable { .. } => "Idempotency store unavailable",
            Refusal::Uncommitted { .. } => "Request not committed",
        }
    }
}
