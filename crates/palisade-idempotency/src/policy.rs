//! Which responses are stored, and which release the key so that a retry runs.
//!
//! A stored response is final: every retry with the key gets it back. That is right for a
//! success, and for a client error the same request would meet again (400, 404, 409, 422).
//! It is wrong for an answer that says "not now" or "not you": a 5xx, `401`, `403`, `408`
//! (timeout), `425` (too early) and `429` (rate limited) release the key instead, as Stripe
//! does, so that the retry runs. For gRPC the `grpc-status` decides the same way: `OK` and
//! the client-error codes are stored, the rest released.

use http::{HeaderMap, StatusCode};
use palisade_core::GrpcCode;

/// Decides whether a finished response is stored (and replayed to every retry with its key)
/// or its key released.
pub trait StorePolicy: Send + Sync + 'static {
    /// Whether to store a response with this status, headers and trailers.
    fn should_store(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        trailers: Option<&HeaderMap>,
    ) -> bool;
}

/// The default [`StorePolicy`]: see the [module documentation](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultStorePolicy;

impl StorePolicy for DefaultStorePolicy {
    fn should_store(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        trailers: Option<&HeaderMap>,
    ) -> bool {
        let grpc_status = trailers
            .and_then(GrpcCode::from_headers)
            .or_else(|| GrpcCode::from_headers(headers));
        if let Some(code) = grpc_status {
            return grpc_code_is_final(code);
        }
        http_status_is_final(status)
    }
}

/// Whether an HTTP status is a final answer worth replaying.
pub fn http_status_is_final(status: StatusCode) -> bool {
    let not_now_or_not_you = [
        StatusCode::UNAUTHORIZED,
        StatusCode::FORBIDDEN,
        StatusCode::REQUEST_TIMEOUT,
        StatusCode::TOO_EARLY,
        StatusCode::TOO_MANY_REQUESTS,
    ];
    (200..500).contains(&status.as_u16()) && !not_now_or_not_you.contains(&status)
}

/// Whether a gRPC status is a final answer worth replaying.
pub fn grpc_code_is_final(code: GrpcCode) -> bool {
    matches!(
        code,
        GrpcCode::Ok
            | GrpcCode::InvalidArgument
            | GrpcCode::NotFound
            | GrpcCode::AlreadyExists
            | GrpcCode::FailedPrecondition
            | GrpcCode::OutOfRange
    )
}

/// A policy from a closure.
pub fn store_policy_fn<F>(f: F) -> StorePolicyFn<F>
where
    F: Fn(StatusCode, &HeaderMap, Option<&HeaderMap>) -> bool + Send + Sync + 'static,
{
    StorePolicyFn(f)
}

/// See [`store_policy_fn`].
#[derive(Clone, Copy)]
pub struct StorePolicyFn<F>(F);

impl<F> std::fmt::Debug for StorePolicyFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StorePolicyFn")
    }
}

impl<F> StorePolicy for StorePolicyFn<F>
where
    F: Fn(StatusCode, &HeaderMap, Option<&HeaderMap>) -> bool + Send + Sync + 'static,
{
    fn should_store(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        trailers: Option<&HeaderMap>,
    ) -> bool {
        (self.0)(status, headers, trailers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn successes_and_client_errors_are_stored_the_rest_released() {
        let policy = DefaultStorePolicy;
        let none = HeaderMap::new();
        for stored in [200, 201, 204, 301, 400, 404, 409, 422] {
            assert!(
                policy.should_store(StatusCode::from_u16(stored).unwrap(), &none, None),
                "{stored}"
            );
        }
        for released in [401, 403, 408, 425, 429, 500, 502, 503, 504] {
            assert!(
                !policy.should_store(StatusCode::from_u16(released).unwrap(), &none, None),
                "{released}"
            );
        }
    }

    #[test]
    fn grpc_status_decides_for_grpc() {
        let policy = DefaultStorePolicy;
        let status = |code: &'static str| {
            let mut map = HeaderMap::new();
            map.insert("grpc-status", HeaderValue::from_static(code));
            map
        };
        assert!(policy.should_store(StatusCode::OK, &HeaderMap::new(), Some(&status("0"))));
        assert!(policy.should_store(StatusCode::OK, &HeaderMap::new(), Some(&status("6"))));
        assert!(!policy.should_store(StatusCode::OK, &HeaderMap::new(), Some(&status("14"))));
        // Trailers-only: the status is in the headers.
        assert!(!policy.should_store(StatusCode::OK, &status("13"), None));
    }
}
