//! The breaker's refusal.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "http")]
use palisade_core::Rejection;

use crate::state::State;

/// A call refused by an open circuit breaker.
///
/// In generic mode the service returns it as its error (inside a `tower::BoxError`: use
/// `err.downcast_ref::<BreakerOpen>()`); in HTTP mode it becomes a `503` with `Retry-After`
/// and a problem+json body, or a gRPC `UNAVAILABLE` with `grpc-retry-pushback-ms`.
#[derive(Debug, Clone)]
pub struct BreakerOpen {
    name: Arc<str>,
    state: State,
    retry_after: Option<Duration>,
}

impl BreakerOpen {
    pub(crate) fn new(name: Arc<str>, state: State, retry_after: Option<Duration>) -> Self {
        Self {
            name,
            state,
            retry_after,
        }
    }

    /// The name of the breaker that refused the call.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The breaker's state when it refused: open, half-open (every probe slot taken) or
    /// forced open.
    pub fn state(&self) -> State {
        self.state
    }

    /// How long until the breaker lets a probe through: the rest of the open duration, a
    /// second while the probes are in flight, and nothing when it is forced open (only an
    /// operator knows).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for BreakerOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "circuit breaker `{}` ", self.name)?;
        match self.state {
            State::HalfOpen => f.write_str("is half-open and every probe slot is taken"),
            State::ForcedOpen => f.write_str("is forced open"),
            _ => match self.retry_after {
                Some(after) => write!(f, "is open for another {} ms", after.as_millis()),
                None => f.write_str("is open"),
            },
        }
    }
}

/// Its source marks it as a palisade refusal ([`palisade_core::refusal`]): the layers above
/// it neither count it as a failure of the service nor take its hint for a server's.
impl std::error::Error for BreakerOpen {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&palisade_core::refusal::LOCAL_REFUSAL)
    }
}

#[cfg(feature = "http")]
impl Rejection for BreakerOpen {
    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    fn kind(&self) -> &'static str {
        "breaker-open"
    }

    fn title(&self) -> &'static str {
        "Circuit breaker open"
    }
}
