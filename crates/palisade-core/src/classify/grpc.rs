use http::{HeaderMap, Response, StatusCode};

use super::{Classification, Classify, Outcome};
use crate::grpc::GrpcCode;

/// The classifier for gRPC services.
///
/// `OK` succeeds; the codes that say the server is in trouble fail — by default
/// `UNAVAILABLE`, `DEADLINE_EXCEEDED`, `INTERNAL`, `UNKNOWN` and `RESOURCE_EXHAUSTED`; every
/// other code (`INVALID_ARGUMENT`, `NOT_FOUND`, ...) is the caller's business and is ignored.
/// The status is read from the response headers when the server answered "trailers-only"
/// (how a unary call that fails before its first message ends), otherwise from the trailers
/// at the end of the body.
///
/// ```
/// use palisade_core::{GrpcClassifier, GrpcCode, Outcome};
///
/// let classifier = GrpcClassifier::default().failure(GrpcCode::Aborted, true);
/// assert_eq!(classifier.outcome_of(GrpcCode::Aborted), Outcome::Failure);
/// assert_eq!(classifier.outcome_of(GrpcCode::NotFound), Outcome::Ignored);
/// assert_eq!(classifier.outcome_of(GrpcCode::Ok), Outcome::Success);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct GrpcClassifier {
    /// Bit `n` set: code `n` is a failure.
    failures: u32,
    errors: Outcome,
}

impl Default for GrpcClassifier {
    fn default() -> Self {
        let defaults = [
            GrpcCode::Unavailable,
            GrpcCode::DeadlineExceeded,
            GrpcCode::Internal,
            GrpcCode::Unknown,
            GrpcCode::ResourceExhausted,
        ];
        Self {
            failures: defaults.iter().fold(0, |bits, code| bits | bit(*code)),
            errors: Outcome::Failure,
        }
    }
}

fn bit(code: GrpcCode) -> u32 {
    1 << code.as_i32()
}

impl GrpcClassifier {
    /// Counts `code` as a failure (`true`) or ignores it (`false`). `OK` is always a success.
    pub fn failure(mut self, code: GrpcCode, is_failure: bool) -> Self {
        if is_failure {
            self.failures |= bit(code);
        } else {
            self.failures &= !bit(code);
        }
        self
    }

    /// Sets the outcome of a transport error (default: failure).
    pub fn errors(mut self, outcome: Outcome) -> Self {
        self.errors = outcome;
        self
    }

    /// The outcome of a call that ended with `code`.
    pub fn outcome_of(&self, code: GrpcCode) -> Outcome {
        if code == GrpcCode::Ok {
            Outcome::Success
        } else if self.failures & bit(code) != 0 {
            Outcome::Failure
        } else {
            Outcome::Ignored
        }
    }

    /// The outcome of a body that ended with these trailers; a stream that ended with no
    /// `grpc-status` is `UNKNOWN`, as a gRPC client would see it.
    pub(crate) fn outcome_of_trailers(&self, trailers: Option<&HeaderMap>) -> Outcome {
        let code = trailers
            .and_then(GrpcCode::from_headers)
            .unwrap_or(GrpcCode::Unknown);
        self.outcome_of(code)
    }
}

impl<B, E> Classify<Response<B>, E> for GrpcClassifier {
    fn classify_response(&self, response: &Response<B>) -> Classification {
        if let Some(code) = GrpcCode::from_headers(response.headers()) {
            return Classification::Complete(self.outcome_of(code));
        }
        if response.status() != StatusCode::OK {
            let code = GrpcCode::from_http_status(response.status());
            return Classification::Complete(self.outcome_of(code));
        }
        Classification::AtEndOfStream
    }

    fn is_refusal(&self, response: &Response<B>) -> bool {
        crate::refusal::of_response(response).is_some()
    }

    fn classify_error(&self, _: &E) -> Outcome {
        self.errors
    }

    fn classify_end_of_stream(&self, trailers: Option<&HeaderMap>) -> Outcome {
        self.outcome_of_trailers(trailers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::GRPC_STATUS;
    use http::HeaderValue;

    fn classify(response: &Response<()>) -> Classification {
        <GrpcClassifier as Classify<Response<()>, ()>>::classify_response(
            &GrpcClassifier::default(),
            response,
        )
    }

    #[test]
    fn default_failure_codes() {
        let c = GrpcClassifier::default();
        for code in [
            GrpcCode::Unavailable,
            GrpcCode::DeadlineExceeded,
            GrpcCode::Internal,
            GrpcCode::Unknown,
            GrpcCode::ResourceExhausted,
        ] {
            assert_eq!(c.outcome_of(code), Outcome::Failure, "{code:?}");
        }
        for code in [
            GrpcCode::InvalidArgument,
            GrpcCode::NotFound,
            GrpcCode::Cancelled,
        ] {
            assert_eq!(c.outcome_of(code), Outcome::Ignored, "{code:?}");
        }
        assert_eq!(c.outcome_of(GrpcCode::Ok), Outcome::Success);
        let c = c
            .failure(GrpcCode::Ok, true)
            .failure(GrpcCode::Internal, false);
        assert_eq!(c.outcome_of(GrpcCode::Ok), Outcome::Success);
        assert_eq!(c.outcome_of(GrpcCode::Internal), Outcome::Ignored);
    }

    #[test]
    fn reads_headers_then_http_status_then_defers() {
        let trailers_only = Response::builder()
            .header(GRPC_STATUS, "4")
            .body(())
            .unwrap();
        assert_eq!(
            classify(&trailers_only),
            Classification::Complete(Outcome::Failure)
        );
        let bad_gateway = Response::builder().status(502).body(()).unwrap();
        assert_eq!(
            classify(&bad_gateway),
            Classification::Complete(Outcome::Failure)
        );
        let streaming = Response::builder().body(()).unwrap();
        assert_eq!(classify(&streaming), Classification::AtEndOfStream);
    }

    #[test]
    fn trailers_decide_at_end_of_stream() {
        let c = GrpcClassifier::default();
        let mut trailers = HeaderMap::new();
        trailers.insert(GRPC_STATUS, HeaderValue::from_static("0"));
        fn eos(c: &GrpcClassifier, t: Option<&HeaderMap>) -> Outcome {
            <GrpcClassifier as Classify<Response<()>, ()>>::classify_end_of_stream(c, t)
        }
        assert_eq!(eos(&c, Some(&trailers)), Outcome::Success);
        trailers.insert(GRPC_STATUS, HeaderValue::from_static("14"));
        assert_eq!(eos(&c, Some(&trailers)), Outcome::Failure);
        assert_eq!(
            eos(&c, None),
            Outcome::Failure,
            "no status at all is UNKNOWN"
        );
    }
}
