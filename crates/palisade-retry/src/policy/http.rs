//! The HTTP and gRPC policy.

use std::time::SystemTime;

use http::{Method, Request, Response, StatusCode};
use palisade_core::GrpcCode;
use palisade_core::grpc::{GRPC_RETRY_PUSHBACK_MS, GRPC_STATUS, is_grpc};
use palisade_core::refusal;

use super::{BoxError, Decision, Policy};
use palisade_core::hint::{parse_grpc_pushback, response_hint};

use palisade_core::IDEMPOTENCY_KEY;

/// Retries what is safe to retry over HTTP and gRPC.
///
/// - **Which requests**: idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE, TRACE), and
///   any request carrying an `Idempotency-Key` (the server makes a retried POST run once).
/// - **Which results**: transport errors (including this layer's attempt timeouts, and
///   refusals by a breaker or shedder below, which a balancer may route elsewhere); HTTP
///   502, 503, 504 and 429; for gRPC, the codes in a set (`UNAVAILABLE` by default), read
///   from the response head — a status in the trailers comes after the response has been
///   handed to the caller, when retrying is no longer possible (gRPC's own rule).
///   A request that carries an `Idempotency-Key` is also retried on `409 Conflict`: that is
///   how an idempotency server (palisade's among them) says "an attempt with this key is
///   still running" — typically the attempt this layer's timeout just gave up on — and the
///   retry gets its stored response once it finishes.
/// - **Hints**: `Retry-After` on an HTTP response, `grpc-retry-pushback-ms` on a gRPC one,
///   replace the backoff; a negative pushback means do not retry. The hint of a refusal made
///   by a palisade layer in this process (a breaker or shedder below,
///   [`palisade_core::refusal`]) is not a server's and is ignored: an open breaker's
///   "come back in 5 s" is about that breaker, while the balancer below may have a healthy
///   endpoint for the retry now.
#[derive(Debug, Clone)]
pub struct HttpPolicy {
    statuses: StatusSet,
    grpc_codes: u32,
    all_methods: bool,
    /// Whether the request being decided carries an `Idempotency-Key` (the layer clones the
    /// policy for each request; `may_retry` sets it).
    keyed: bool,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        Self {
            statuses: [
                StatusCode::BAD_GATEWAY,
                StatusCode::SERVICE_UNAVAILABLE,
                StatusCode::GATEWAY_TIMEOUT,
                StatusCode::TOO_MANY_REQUESTS,
            ]
            .into_iter()
            .collect(),
            grpc_codes: 1 << GrpcCode::Unavailable as u32,
            all_methods: false,
            keyed: false,
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

/// A set of HTTP statuses, one bit each: the policy is cloned per request, so no heap.
#[derive(Clone, Copy, PartialEq, Eq)]
struct StatusSet([u64; 16]);

impl StatusSet {
    fn contains(&self, status: StatusCode) -> bool {
        let code = usize::from(status.as_u16());
        self.0[code / 64] & (1 << (code % 64)) != 0
    }
}

impl FromIterator<StatusCode> for StatusSet {
    fn from_iter<I: IntoIterator<Item = StatusCode>>(statuses: I) -> Self {
        let mut set = [0u64; 16];
        for status in statuses {
            // A `StatusCode` is 100..=999, always inside the 1024 bits.
            let code = usize::from(status.as_u16());
            set[code / 64] |= 1 << (code % 64);
        }
        Self(set)
    }
}

impl std::fmt::Debug for StatusSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries(
                (100..1000u16).filter(|&c| StatusCode::from_u16(c).is_ok_and(|s| self.contains(s))),
            )
            .finish()
    }
}

impl<B, RB> Policy<Request<B>, Response<RB>> for HttpPolicy {
    fn may_retry(&mut self, request: &Request<B>) -> bool {
        self.keyed = request.headers().contains_key(IDEMPOTENCY_KEY);
        self.all_methods || self.keyed || is_idempotent(request.method())
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
            if refusal::of_response(response).is_some() {
                // Its pushback is the refusing layer's, not the server's (see above).
                return Decision::Retry {
                    reason: grpc_reason(code),
                    after: None,
                };
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
        let in_flight = self.keyed && status == StatusCode::CONFLICT;
        if !in_flight && !self.statuses.contains(status) {
            return Decision::Done;
        }
        // A refusal made in this process carries the hint of the layer that refused, which is
        // not the service's: retry after the backoff.
        let after = if refusal::of_response(response).is_some() {
            None
        } else {
            response_hint(status, headers, SystemTime::now())
        };
        Decision::Retry {
            reason: if in_flight {
                "in flight (409 for an idempotency key)"
            } else {
                status.canonical_reason().unwrap_or("retryable status")
            },
            after,
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
        Policy::<Request<()>, Response<()>>::may_retry(&mut policy.clone(), r)
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
        assert_eq!(
            decide(
                &policy,
                &response(429, &[("ratelimit", "\"per-client\";r=0;t=7")])
            ),
            Decision::Retry {
                reason: "Too Many Requests",
                after: Some(std::time::Duration::from_secs(7))
            },
            "a 429's RateLimit field says when the quota is back"
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

    #[test]
    fn a_keyed_request_is_retried_on_409_in_flight() {
        let mut keyed = HttpPolicy::default();
        let mut post = request(Method::POST);
        post.headers_mut()
            .insert(IDEMPOTENCY_KEY, "\"k\"".parse().unwrap());
        assert!(Policy::<Request<()>, Response<()>>::may_retry(
            &mut keyed, &post
        ));
        assert_eq!(
            decide(&keyed, &response(409, &[("retry-after", "1")])),
            Decision::Retry {
                reason: "in flight (409 for an idempotency key)",
                after: Some(std::time::Duration::from_secs(1))
            }
        );
        assert_eq!(decide(&keyed, &response(422, &[])), Decision::Done);
        let mut plain = HttpPolicy::default();
        assert!(Policy::<Request<()>, Response<()>>::may_retry(
            &mut plain,
            &request(Method::PUT)
        ));
        assert_eq!(
            decide(&plain, &response(409, &[])),
            Decision::Done,
            "a 409 without a key is the server's answer"
        );
    }

    #[test]
    fn the_hint_of_a_refusal_made_in_this_process_is_ignored() {
        let policy = HttpPolicy::default();
        let mut refused = response(503, &[("retry-after", "5")]);
        refused
            .extensions_mut()
            .insert(refusal::Refused::new("breaker-open"));
        assert_eq!(
            decide(&policy, &refused),
            Decision::Retry {
                reason: "Service Unavailable",
                after: None
            }
        );
        let mut grpc = response(
            200,
            &[
                ("content-type", "application/grpc"),
                ("grpc-status", "14"),
                ("grpc-retry-pushback-ms", "5000"),
            ],
        );
        grpc.extensions_mut()
            .insert(refusal::Refused::new("breaker-open"));
        assert_eq!(
            decide(&policy, &grpc),
            Decision::Retry {
                reason: "UNAVAILABLE",
                after: None
            }
        );
    }

    #[test]
    fn status_sets_hold_every_code() {
        let set: StatusSet = [StatusCode::CONTINUE, StatusCode::from_u16(999).unwrap()]
            .into_iter()
            .collect();
        assert!(set.contains(StatusCode::CONTINUE));
        assert!(set.contains(StatusCode::from_u16(999).unwrap()));
        assert!(!set.contains(StatusCode::OK));
        assert_eq!(format!("{set:?}"), "{100, 999}");
    }
}
