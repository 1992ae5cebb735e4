//! Outcome classification: was a call a success, a failure, or neither?

#[cfg(feature = "http")]
mod grpc;
#[cfg(feature = "http")]
mod http;
mod plain;

use std::time::Duration;

#[cfg(feature = "http")]
pub use self::grpc::GrpcClassifier;
#[cfg(feature = "http")]
pub use self::http::HttpClassifier;
pub use self::plain::{ClassifyFn, ErrorsAsFailures, classify_fn};

/// What a call says about the health of the service that answered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The service did its job.
    Success,
    /// The service failed: this call counts against it.
    Failure,
    /// The call says nothing about the service's health (a `404`, an invalid argument, a
    /// cancelled call): it counts neither way.
    Ignored,
}

/// The classification of a response, which may have to wait for the end of its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classification {
    /// The response head was enough to decide.
    Complete(Outcome),
    /// The outcome is in the trailers (a gRPC response that streams messages before its
    /// `grpc-status`): ask [`Classify::classify_end_of_stream`] when the body ends.
    AtEndOfStream,
}

/// Maps the result of a call to an [`Outcome`].
///
/// Implementations are shared by reference by every call through a layer, so they hold
/// configuration, never per-call state.
pub trait Classify<Res, E> {
    /// Classifies a response. Return [`Classification::AtEndOfStream`] only when the
    /// response is an HTTP response whose trailers will decide; a layer that cannot see the
    /// body (a layer over a non-HTTP service) counts such a call as [`Outcome::Ignored`].
    fn classify_response(&self, response: &Res) -> Classification;

    /// Classifies an error returned by the service instead of a response.
    fn classify_error(&self, error: &E) -> Outcome;

    /// Classifies the end of a body whose response was [`Classification::AtEndOfStream`]:
    /// `trailers` is `None` when the body ended without any.
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    fn classify_end_of_stream(&self, trailers: Option<&::http::HeaderMap>) -> Outcome {
        let _ = trailers;
        Outcome::Success
    }

    /// How long the server asked its clients to stay away, if `response` says so: a balancer
    /// keeps traffic off the endpoint that long. `None` unless the classifier reads hints
    /// (`HttpClassifier` reads `Retry-After` and `grpc-retry-pushback-ms`).
    fn retry_after(&self, response: &Res) -> Option<Duration> {
        let _ = response;
        None
    }

    /// Whether `response` is a palisade layer's refusal rather than the service's answer
    /// ([`refusal`](crate::refusal)): a breaker counts it neither way. `false` unless the
    /// classifier knows where the mark is (the HTTP and gRPC classifiers read it from the
    /// response's extensions).
    fn is_refusal(&self, response: &Res) -> bool {
        let _ = response;
        false
    }

    /// The outcome of a call whose body is out of reach (a layer over a plain service): an
    /// outcome that waits on the trailers proves nothing either way, and is `Ignored`.
    fn classify_result(&self, result: &Result<Res, E>) -> Outcome {
        match result {
            Ok(response) => match self.classify_response(response) {
                Classification::Complete(outcome) => outcome,
                Classification::AtEndOfStream => Outcome::Ignored,
            },
            Err(error) => self.classify_error(error),
        }
    }
}
