//! The HTTP and gRPC policy.

use std::time::SystemTime;

use http::{HeaderName, Method, Request, Response, StatusCode};
use palisade_core::GrpcCode;
use palisade_core::grpc::{GRPC_RETRY_PUSHBACK_MS, GRPC_STATUS, is_grpc};

use super::{BoxError, Decision, Policy};
use palisade_core::hint::{parse_grpc_pushback, parse_retry_after};

/// The `Idempotency-Key` header (draft-ietf-httpapi-idempotency-key-header).
pub(crate) const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// Retries what is safe to retry over HTTP and gRPC.
///
/// - **Which requests**: idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE, TRACE), and
///   any request carrying an `Idempotency-Key` (the server makes a retried POST run once).
/// - **Which results**: transport errors (including this layer's attempt timeouts, and
///   refusals by a breaker or shedder below, which a balancer may route elsewhere); HTTP
///   502, 503, 504 and 429; for gRPC, the codes in a set (`UNAVAILABLE` by default), read
///   from the response head — a status in the trailers comes after the response has been
///   handed to the caller, when retrying is no longer possible (gRPC's own rule).
/// - **Hints**: `Retry-After` on an HTTP response, `grpc-retry-pushback-ms` on a gRPC one,
///   replace the backoff; a negative pushback means do not retry.
#[derive(Debug, Clone)]
pub struct HttpPolicy {
    statuses: Vec<StatusCode>,
    grpc_codes: u32,
    all_methods: bool,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        Self {
            statuses: vec![
                StatusCode::BAD_GATEWAY,
                StatusCode::SERVICE_UNAVAILABLE,
                StatusCode::GATEWAY_TIMEOUT,
                StatusCode::TOO_MANY_REQUESTS,
            ],
            grpc_codes: 1 << GrpcCode::Unavailable as u32,
            all_methods: false,
        }
    }
}

impl HttpPolicy {
    /// Retries responses with these statuses (replacing 502, 503, 504 and 429).
    pub fn statuses(mut self, statuses: impl IntoIterator<Item = StatusCode>) -> Self {
        self.statuses = statuses.into_iter().collect();
        self
    }

    /// Retries gRPC responses with these codes (replacing `UNAVAILABLE`).
    pub fn grpc_codes(mut self, codes: impl IntoIterator<Item = GrpcCode>) -> Self {
        self.grpc_codes = codes.into_iter().fold(0, |set, c| set | 1 << c as u32);
        self
    }

    /// Retries every method, not only idempotent ones: for servers where every operation is
    /// known to be safe to repeat.
    pub fn any_method(mut self) -> Self {
        self.all_methods = true;
        self
    }
}

/// Whether repeating a request with `method` has the effect of sending it once (RFC 9110
/// §9.2.2).
pub(crate) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

impl<B, RB> Policy<Request<B>, Response<RB>> for HttpPolicy {
    fn may_retry(&self, request: &Request<B>) -> bool {
        self.all_methods
            || is_idempotent(request.method())
            || request.headers().contains_key(IDEMPOTENCY_KEY)
    }

    fn decide(&self, result: Result<&Response<RB>, &BoxError>) -> Decision {
        let response = match result {
            Ok(response) => response,
            Err(_) => {
                return Decision::Retry {
                    reason: "transport error",
                    after: None,
                };
            }
        };
        let headers = response.headers();
        if is_grpc(headers) {
            let Some(code) = headers
                .get(GRPC_STATUS)
                .and_then(|v| v.to_str().ok()?.parse::<u32>().ok())
            else {
                return Decision::Done;
            };
            if code >= 32 || self.grpc_codes & (1 << code) == 0 {
                return Decision::Done;
            }
            return match headers
                .get(GRPC_RETRY_PUSHBACK_MS)
                .and_then(parse_grpc_pushback)
            {
                Some(Err(())) => Decision::Refused,
                pushback => Decision::Retry {
                    reason: grpc_reason(code),
                    after: pushback.and_then(Result::ok),
                },
            };
        }
        let status = response.status();
        if !self.statuses.contains(&status) {
            return Decision::Done;
        }
        Decision::Retry {
            reason: status.canonical_reason().unwrap_or("retryable status"),
            after: headers
                .get(http::header::RETRY_AFTER)
                .and_then(|v| parse_retry_after(v, SystemTime::now())),
        }
    }
}

fn grpc_reason(code: u32) -> &'static str {
    match code {
        2 => "UNKNOWN",
        4 => "DEADLINE_EXCEEDED",
        8 => "RESOURCE_EXHAUSTED",
        10 => "ABORTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        _ => "retryable gRPC status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method) -> Request<()> {
        Request::builder().method(method).body(()).unwrap()
    }

    fn response(status: u16, headers: &[(&str, &str)]) -> Response<()> {
        let mut builder = Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    fn may_retry(policy: &HttpPolicy, r: &Request<()>) -> bool {
        Policy::<Request<()>, Response<()>>::may_retry(policy, r)
    }

    fn decide(policy: &HttpPolicy, r: &Response<()>) -> Decision {
        Policy::<Request<()>, Response<()>>::decide(policy, Ok(r))
    }

    #[test]
    fn only_idempotent_or_keyed_requests_may_be_retried() {
        let policy = HttpPolicy::default();
        for method in [Method::GET, Method::HEAD, Method::PUT, Method::DELETE] {
            assert!(may_retry(&policy, &request(method)));
        }
        assert!(!may_retry(&policy, &request(Method::POST)));
        assert!(!may_retry(&policy, &request(Method::PATCH)));
        let mut keyed = request(Method::POST);
        keyed
            .headers_mut()
            .insert(IDEMPOTENCY_KEY, "\"k\"".parse().unwrap());
        assert!(may_retry(&policy, &keyed));
        assert!(may_retry(
            &policy.clone().any_method(),
            &request(Method::POST)
        ));
    }

    #[test]
    fn retryable_statuses_with_their_hints() {
        let policy = HttpPolicy::default();
        assert_eq!(decide(&policy, &response(200, &[])), Decision::Done);
        assert_eq!(decide(&policy, &response(500, &[])), Decision::Done);
        assert_eq!(decide(&policy, &response(404, &[])), Decision::Done);
        assert_eq!(
            decide(&policy, &response(503, &[("retry-after", "2")])),
            Decision::Retry {
                reason: "Service Unavailable",
                after: Some(std::time::Duration::from_secs(2))
            }
        );
        assert_eq!(
            decide(&policy, &response(429, &[("retry-after", "later")])),
            Decision::Retry {
                reason: "Too Many Requests",
                after: None
            },
            "an unparseable hint is ignored"
        );
        let only_500 = policy.statuses([StatusCode::INTERNAL_SERVER_ERROR]);
        assert!(matches!(
            decide(&only_500, &response(500, &[])),
            Decision::Retry { .. }
        ));
    }

    #[test]
    fn grpc_codes_and_pushback() {
        let grpc = |status: &str, pushback: Option<&str>| {
            let mut headers = vec![
                ("content-type", "application/grpc"),
                ("grpc-status", status),
            ];
            if let Some(p) = pushback {
                headers.push(("grpc-retry-pushback-ms", p));
            }
            response(200, &headers)
        };
        let policy = HttpPolicy::default();
        assert_eq!(decide(&policy, &grpc("0", None)), Decision::Done);
        assert_eq!(decide(&policy, &grpc("13", None)), Decision::Done);
        assert_eq!(
            decide(&policy, &grpc("14", Some("150"))),
            Decision::Retry {
                reason: "UNAVAILABLE",
                after: Some(std::time::Duration::from_millis(150))
            }
        );
        assert_eq!(decide(&policy, &grpc("14", Some("-1"))), Decision::Refused);
        assert_eq!(decide(&policy, &grpc("99", None)), Decision::Done);
        assert_eq!(decide(&policy, &grpc("garbage", None)), Decision::Done);
        let internal = policy.grpc_codes([GrpcCode::Internal]);
        assert!(matches!(
            decide(&internal, &grpc("13", None)),
            Decision::Retry { .. }
        ));
        // A gRPC response without grpc-status in its head has its status in the trailers.
        assert_eq!(
            decide(
                &HttpPolicy::default(),
                &response(200, &[("content-type", "application/grpc")])
            ),
            Decision::Done
        );
    }
}
