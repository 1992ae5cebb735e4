use std::sync::Arc;

use http::{HeaderMap, Response, StatusCode};

use super::{Classification, Classify, GrpcClassifier, Outcome};
use crate::grpc::is_grpc;

/// The classifier for HTTP services.
///
/// By default `1xx`-`3xx` succeed, `4xx` are ignored (the client's fault says nothing about
/// the server), `5xx` and transport errors fail. Every status can be set on its own or by
/// range. gRPC responses (a `content-type` of `application/grpc...`) are handed to the inner
/// [`GrpcClassifier`], so one classifier serves a server that speaks both.
///
/// ```
/// use http::StatusCode;
/// use palisade_core::{HttpClassifier, Outcome};
///
/// // A rate limit from this upstream means it is overloaded: count it.
/// let classifier = HttpClassifier::default()
///     .status(StatusCode::TOO_MANY_REQUESTS, Outcome::Failure)
///     // and this one answers 501 for features it lacks, which is not an outage.
///     .status(StatusCode::NOT_IMPLEMENTED, Outcome::Ignored);
/// assert_eq!(classifier.outcome_of(StatusCode::TOO_MANY_REQUESTS), Outcome::Failure);
/// assert_eq!(classifier.outcome_of(StatusCode::NOT_IMPLEMENTED), Outcome::Ignored);
/// assert_eq!(classifier.outcome_of(StatusCode::BAD_GATEWAY), Outcome::Failure);
/// ```
#[derive(Debug, Clone)]
pub struct HttpClassifier {
    /// The outcome of each status from 100 to 999, indexed by `status - 100`, once one has
    /// been set; `None` while the defaults hold. A classifier is cloned into every call's
    /// future (and axum clones the whole stack per request), so the common one must be
    /// cheap to clone: the default has no table, a custom one shares its table.
    by_status: Option<Arc<[Outcome; 900]>>,
    errors: Outcome,
    grpc: GrpcClassifier,
}

impl Default for HttpClassifier {
    fn default() -> Self {
        Self {
            by_status: None,
            errors: Outcome::Failure,
            grpc: GrpcClassifier::default(),
        }
    }
}

/// The default outcome of a status: `5xx` (and above) fail, `4xx` are ignored, the rest
/// succeed.
fn default_outcome(code: u16) -> Outcome {
    match code {
        400..=499 => Outcome::Ignored,
        500.. => Outcome::Failure,
        _ => Outcome::Success,
    }
}

impl HttpClassifier {
    /// Sets the outcome of one status.
    pub fn status(self, status: StatusCode, outcome: Outcome) -> Self {
        self.statuses([status.as_u16()], outcome)
    }

    /// Sets the outcome of every status in `range` (for example `500..=599`); statuses
    /// outside 100..=999 are skipped.
    pub fn statuses(mut self, range: impl IntoIterator<Item = u16>, outcome: Outcome) -> Self {
        let table = self.by_status.get_or_insert_with(|| {
            Arc::new(std::array::from_fn(|i| default_outcome(i as u16 + 100)))
        });
        let table = Arc::make_mut(table);
        for code in range {
            if (100..1000).contains(&code) {
                table[usize::from(code) - 100] = outcome;
            }
        }
        self
    }

    /// Sets the outcome of an error returned instead of a response (default: failure).
    pub fn errors(mut self, outcome: Outcome) -> Self {
        self.errors = outcome;
        self
    }

    /// Sets the classifier for gRPC responses.
    pub fn grpc(mut self, grpc: GrpcClassifier) -> Self {
        self.grpc = grpc;
        self
    }

    /// The outcome of a plain-HTTP response with this status.
    pub fn outcome_of(&self, status: StatusCode) -> Outcome {
        let code = status.as_u16();
        match &self.by_status {
            Some(table) => table[usize::from(code) - 100],
            None => default_outcome(code),
        }
    }
}

impl<B, E> Classify<Response<B>, E> for HttpClassifier {
    fn classify_response(&self, response: &Response<B>) -> Classification {
        if is_grpc(response.headers()) {
            return <GrpcClassifier as Classify<Response<B>, E>>::classify_response(
                &self.grpc, response,
            );
        }
        Classification::Complete(self.outcome_of(response.status()))
    }

    fn is_refusal(&self, response: &Response<B>) -> bool {
        crate::refusal::of_response(response).is_some()
    }

    fn classify_error(&self, _: &E) -> Outcome {
        self.errors
    }

    fn classify_end_of_stream(&self, trailers: Option<&HeaderMap>) -> Outcome {
        // Only gRPC responses defer to the end of the stream.
        self.grpc.outcome_of_trailers(trailers)
    }

    fn retry_after(&self, response: &Response<B>) -> Option<std::time::Duration> {
        let headers = response.headers();
        if is_grpc(headers) {
            headers
                .get(crate::grpc::GRPC_RETRY_PUSHBACK_MS)
                .and_then(crate::hint::parse_grpc_pushback)
                .and_then(Result::ok)
        } else {
            crate::hint::response_hint(response.status(), headers, std::time::SystemTime::now())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::GRPC_STATUS;
    use http::header::CONTENT_TYPE;

    fn classify(c: &HttpClassifier, response: &Response<()>) -> Classification {
        <HttpClassifier as Classify<Response<()>, ()>>::classify_response(c, response)
    }

    fn status(code: u16) -> Response<()> {
        Response::builder().status(code).body(()).unwrap()
    }

    #[test]
    fn a_set_status_changes_that_status_only() {
        let custom = HttpClassifier::default()
            .status(StatusCode::TOO_MANY_REQUESTS, Outcome::Failure)
            .statuses(502..=503, Outcome::Ignored);
        let clone = custom.clone();
        for code in 100..1000 {
            let status = StatusCode::from_u16(code).unwrap();
            let expected = match code {
                429 => Outcome::Failure,
                502 | 503 => Outcome::Ignored,
                400..=499 => Outcome::Ignored,
                500.. => Outcome::Failure,
                _ => Outcome::Success,
            };
            assert_eq!(clone.outcome_of(status), expected, "{code}");
            assert_eq!(
                HttpClassifier::default().outcome_of(status),
                default_outcome(code),
                "{code}"
            );
        }
        // Setting a status on a clone leaves the original as it was.
        let changed = clone.status(StatusCode::OK, Outcome::Failure);
        assert_eq!(changed.outcome_of(StatusCode::OK), Outcome::Failure);
        assert_eq!(custom.outcome_of(StatusCode::OK), Outcome::Success);
    }

    #[test]
    fn reads_retry_after_and_grpc_pushback() {
        let c = HttpClassifier::default();
        let hint =
            |r: &Response<()>| <HttpClassifier as Classify<Response<()>, ()>>::retry_after(&c, r);
        let busy = Response::builder()
            .status(503)
            .header("retry-after", "7")
            .body(())
            .unwrap();
        assert_eq!(hint(&busy), Some(std::time::Duration::from_secs(7)));
        assert_eq!(hint(&status(503)), None);
        let pushback = |ms: &str| {
            Response::builder()
                .header(CONTENT_TYPE, "application/grpc")
                .header("grpc-retry-pushback-ms", ms)
                .body(())
                .unwrap()
        };
        assert_eq!(
            hint(&pushback("250")),
            Some(std::time::Duration::from_millis(250))
        );
        assert_eq!(hint(&pushback("-1")), None, "do not retry is not a wait");
    }

    #[test]
    fn defaults_fail_5xx_ignore_4xx_and_pass_the_rest() {
        let c = HttpClassifier::default();
        for (code, outcome) in [
            (200, Outcome::Success),
            (204, Outcome::Success),
            (304, Outcome::Success),
            (400, Outcome::Ignored),
            (404, Outcome::Ignored),
            (429, Outcome::Ignored),
            (500, Outcome::Failure),
            (503, Outcome::Failure),
            (599, Outcome::Failure),
        ] {
            assert_eq!(
                classify(&c, &status(code)),
                Classification::Complete(outcome),
                "{code}"
            );
        }
        assert_eq!(
            <HttpClassifier as Classify<Response<()>, ()>>::classify_error(&c, &()),
            Outcome::Failure
        );
    }

    #[test]
    fn statuses_and_errors_are_configurable() {
        let c = HttpClassifier::default()
            .statuses(400..=499, Outcome::Failure)
            .status(StatusCode::SERVICE_UNAVAILABLE, Outcome::Ignored)
            .errors(Outcome::Ignored);
        assert_eq!(c.outcome_of(StatusCode::NOT_FOUND), Outcome::Failure);
        assert_eq!(
            c.outcome_of(StatusCode::SERVICE_UNAVAILABLE),
            Outcome::Ignored
        );
        assert_eq!(
            <HttpClassifier as Classify<Response<()>, ()>>::classify_error(&c, &()),
            Outcome::Ignored
        );
    }

    #[test]
    fn grpc_responses_are_classified_by_their_status() {
        let c = HttpClassifier::default();
        let trailers_only = Response::builder()
            .header(CONTENT_TYPE, "application/grpc")
            .header(GRPC_STATUS, "14")
            .body(())
            .unwrap();
        assert_eq!(
            classify(&c, &trailers_only),
            Classification::Complete(Outcome::Failure)
        );
        let streaming = Response::builder()
            .header(CONTENT_TYPE, "application/grpc")
            .body(())
            .unwrap();
        assert_eq!(classify(&c, &streaming), Classification::AtEndOfStream);
    }
}
