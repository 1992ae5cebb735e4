//! The refusal.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "http")]
use http::StatusCode;
#[cfg(feature = "http")]
use palisade_core::{GrpcCode, Rejection};

use crate::quota::Quota;

/// The request was over a policy's quota, and was refused without running.
///
/// In HTTP mode it is a `429 Too Many Requests` with `Retry-After`, the IETF `RateLimit`
/// and `RateLimit-Policy` fields and a problem+json body, or gRPC `RESOURCE_EXHAUSTED` with
/// `grpc-retry-pushback-ms`. Its [`source`](std::error::Error::source) marks it as a
/// palisade refusal, so that a breaker above does not count it as a failure.
#[derive(Debug, Clone)]
pub struct RateLimited {
    policy: Arc<str>,
    quota: Quota,
    retry_after: Option<Duration>,
}

impl RateLimited {
    pub(crate) fn new(policy: Arc<str>, quota: Quota, retry_after: Duration) -> Self {
        Self {
            policy,
            quota,
            retry_after: (retry_after != Duration::MAX).then_some(retry_after),
        }
    }

    /// The policy that refused.
    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// That policy's quota.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// When the same request would be admitted, if nothing else takes the quota first.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rate limited by policy `{}` ({} requests every {:?})",
            self.policy,
            self.quota.count(),
            self.quota.period()
        )?;
        if let Some(after) = self.retry_after {
            write!(f, "; retry after {after:?}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RateLimited {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&palisade_core::refusal::LOCAL_REFUSAL)
    }
}

#[cfg(feature = "http")]
impl Rejection for RateLimited {
    fn http_status(&self) -> StatusCode {
        StatusCode::TOO_MANY_REQUESTS
    }

    fn grpc_code(&self) -> GrpcCode {
        GrpcCode::ResourceExhausted
    }

    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    fn kind(&self) -> &'static str {
        "rate-limited"
    }

    fn title(&self) -> &'static str {
        "Too many requests"
    }
}
