//! Rejections as responses: how a layer says "no" in the caller's protocol.
//!
//! A layer that refuses a request returns a typed error in generic mode (so a caller can
//! `downcast_ref` it from a `tower::BoxError`). In HTTP mode it answers instead, and
//! [`rejection_response`] builds that answer from the same error:
//!
//! - plain HTTP: the rejection's status (`503` by default) with `Retry-After` (whole seconds,
//!   rounded up, so a client never comes back early) and an RFC 9457
//!   `application/problem+json` body;
//! - gRPC (the request's `content-type` is `application/grpc...`): a "trailers-only"
//!   response — HTTP `200` with `grpc-status`, `grpc-message` and, when the rejection knows
//!   when to come back, `grpc-retry-pushback-ms` — which every gRPC client understands.
//!
//! Either carries a [`Refused`](crate::refusal::Refused) in its extensions, so that the
//! palisade layers it passes on its way out know it for a refusal, not a service's answer.

mod body;
mod problem;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

pub use self::body::ResponseBody;
pub use self::problem::Problem;
use crate::grpc::{GRPC_MESSAGE, GRPC_RETRY_PUSHBACK_MS, GRPC_STATUS, GrpcCode};

/// A layer's refusal of a request, with what a response needs to describe it.
///
/// A refusal's [`source`](std::error::Error::source) is
/// [`LOCAL_REFUSAL`](crate::refusal::LOCAL_REFUSAL), so that the layers above know it, as an
/// error, for a refusal rather than a failure of the service; as a response it is marked by
/// [`rejection_response`].
pub trait Rejection: std::error::Error {
    /// The HTTP status of the refusal (`503 Service Unavailable` unless the layer says
    /// otherwise).
    fn http_status(&self) -> StatusCode {
        StatusCode::SERVICE_UNAVAILABLE
    }

    /// The gRPC code of the refusal (`UNAVAILABLE` unless the layer says otherwise).
    fn grpc_code(&self) -> GrpcCode {
        GrpcCode::Unavailable
    }

    /// When the caller may try again, if the layer knows.
    fn retry_after(&self) -> Option<Duration>;

    /// A short name of the kind of refusal (`"breaker-open"`), which makes the problem's
    /// `type` URI.
    fn kind(&self) -> &'static str;

    /// A short, human-readable summary of the kind of refusal (the problem's `title`).
    fn title(&self) -> &'static str;
}

/// The answer to a refused request: a gRPC status when `grpc` is true (the request was gRPC,
/// see [`crate::grpc::is_grpc`]), an HTTP problem otherwise.
pub fn rejection_response<B>(rejection: &dyn Rejection, grpc: bool) -> Response<ResponseBody<B>> {
    if grpc {
        grpc_response(rejection)
    } else {
        http_response(rejection)
    }
}

/// The HTTP answer to a refused request: status, `Retry-After`, problem+json body.
fn http_response<B>(rejection: &dyn Rejection) -> Response<ResponseBody<B>> {
    let problem = Problem::from_rejection(rejection);
    let body = Bytes::from(problem.to_json());
    let mut response = Response::new(ResponseBody::rejection(body));
    *response.status_mut() = rejection.http_status();
    mark(&mut response, rejection);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(Problem::CONTENT_TYPE),
    );
    if let Some(after) = rejection.retry_after() {
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from(retry_after_secs(after)),
        );
    }
    response
}

/// The gRPC answer to a refused request: a trailers-only response.
fn grpc_response<B>(rejection: &dyn Rejection) -> Response<ResponseBody<B>> {
    let mut response = Response::new(ResponseBody::rejection(Bytes::new()));
    mark(&mut response, rejection);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(GRPC_STATUS, rejection.grpc_code().header_value());
    if let Ok(message) = HeaderValue::try_from(percent_encode_grpc_message(&rejection.to_string()))
    {
        headers.insert(GRPC_MESSAGE, message);
    }
    if let Some(after) = rejection.retry_after() {
        let millis = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
        headers.insert(GRPC_RETRY_PUSHBACK_MS, HeaderValue::from(millis));
    }
    response
}

/// Marks a response as a palisade refusal, for the layers it passes on its way out.
fn mark<B>(response: &mut Response<B>, rejection: &dyn Rejection) {
    response
        .extensions_mut()
        .insert(crate::refusal::Refused::new(rejection.kind()));
}

/// `Retry-After` in whole seconds, rounded up: a client told "0" would come straight back.
fn retry_after_secs(after: Duration) -> u64 {
    let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    secs.max(1)
}

/// `grpc-message` is percent-encoded (gRPC's HTTP/2 protocol spec): everything outside
/// printable ASCII, and `%` itself.
fn percent_encode_grpc_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::fmt;

    #[derive(Debug)]
    struct Closed(Option<Duration>);

    impl fmt::Display for Closed {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("the shop is closed; 100% sure")
        }
    }
    impl std::error::Error for Closed {}
    impl Rejection for Closed {
        fn retry_after(&self) -> Option<Duration> {
            self.0
        }
        fn kind(&self) -> &'static str {
            "closed"
        }
        fn title(&self) -> &'static str {
            "Closed"
        }
    }

    #[tokio::test]
    async fn http_rejection_is_a_problem_with_retry_after() {
        let response: Response<ResponseBody<http_body_util::Empty<Bytes>>> =
            rejection_response(&Closed(Some(Duration::from_millis(1500))), false);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert_eq!(
            crate::refusal::of_response(&response).map(|r| r.kind()),
            Some("closed"),
            "marked as a palisade refusal"
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["status"], 503);
        assert_eq!(json["title"], "Closed");
        assert_eq!(json["type"], "urn:palisade:problem:closed");
        assert_eq!(json["detail"], "the shop is closed; 100% sure");
        assert_eq!(json["retry_after_ms"], 1500);
    }

    #[test]
    fn http_rejection_without_a_hint_has_no_retry_after() {
        let response: Response<ResponseBody<http_body_util::Empty<Bytes>>> =
            http_response(&Closed(None));
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn grpc_rejection_is_trailers_only_with_pushback() {
        let response: Response<ResponseBody<http_body_util::Empty<Bytes>>> =
            rejection_response(&Closed(Some(Duration::from_millis(250))), true);
        assert_eq!(response.status(), StatusCode::OK);
        assert!(crate::refusal::of_response(&response).is_some());
        assert_eq!(response.headers()[GRPC_STATUS], "14");
        assert_eq!(response.headers()[GRPC_RETRY_PUSHBACK_MS], "250");
        assert_eq!(
            response.headers()[GRPC_MESSAGE],
            "the shop is closed; 100%25 sure"
        );
    }

    #[test]
    fn retry_after_rounds_up_and_never_says_zero() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }
}
