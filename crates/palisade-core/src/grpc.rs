//! gRPC status codes and the headers that carry them.
//!
//! Just enough of gRPC's wire vocabulary to classify a response and to refuse a request,
//! without depending on tonic: palisade's layers work below tonic, on `http` types.

use http::{HeaderMap, HeaderValue, header::CONTENT_TYPE};

/// The `grpc-status` header or trailer.
pub const GRPC_STATUS: &str = "grpc-status";
/// The `grpc-message` header or trailer.
pub const GRPC_MESSAGE: &str = "grpc-message";
/// The `grpc-retry-pushback-ms` trailer: how long the client should wait before retrying.
pub const GRPC_RETRY_PUSHBACK_MS: &str = "grpc-retry-pushback-ms";

/// A gRPC status code, as defined by `grpc/doc/statuscodes.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)] // the names are the specification's
pub enum GrpcCode {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl GrpcCode {
    const ALL: [GrpcCode; 17] = [
        GrpcCode::Ok,
        GrpcCode::Cancelled,
        GrpcCode::Unknown,
        GrpcCode::InvalidArgument,
        GrpcCode::DeadlineExceeded,
        GrpcCode::NotFound,
        GrpcCode::AlreadyExists,
        GrpcCode::PermissionDenied,
        GrpcCode::ResourceExhausted,
        GrpcCode::FailedPrecondition,
        GrpcCode::Aborted,
        GrpcCode::OutOfRange,
        GrpcCode::Unimplemented,
        GrpcCode::Internal,
        GrpcCode::Unavailable,
        GrpcCode::DataLoss,
        GrpcCode::Unauthenticated,
    ];

    /// The code with this number; numbers outside the specification are `Unknown`, as gRPC
    /// clients treat them.
    pub fn from_i32(code: i32) -> Self {
        usize::try_from(code)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
            .unwrap_or(GrpcCode::Unknown)
    }

    /// The code's number.
    pub fn as_i32(self) -> i32 {
        self as i32
    }

    /// The code's number as a header value, without allocating.
    pub fn header_value(self) -> HeaderValue {
        const VALUES: [&str; 17] = [
            "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15",
            "16",
        ];
        HeaderValue::from_static(VALUES[self as usize])
    }

    /// The code read from a `grpc-status` entry of `headers` (response headers or trailers):
    /// `None` when there is none, `Unknown` when it is not a number.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let value = headers.get(GRPC_STATUS)?;
        let code = value
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .map_or(GrpcCode::Unknown, GrpcCode::from_i32);
        Some(code)
    }

    /// The gRPC code a client derives from a non-200 HTTP status when the server sent no
    /// `grpc-status` (grpc/doc/http-grpc-status-mapping.md).
    pub fn from_http_status(status: http::StatusCode) -> Self {
        match status.as_u16() {
            400 => GrpcCode::Internal,
            401 => GrpcCode::Unauthenticated,
            403 => GrpcCode::PermissionDenied,
            404 => GrpcCode::Unimplemented,
            429 | 502..=504 => GrpcCode::Unavailable,
            _ => GrpcCode::Unknown,
        }
    }
}

/// Whether `headers` (of a request or a response) announce gRPC: a `content-type` of
/// `application/grpc`, `application/grpc+proto`, `application/grpc-web`, ...
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(b"application/grpc"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        for code in GrpcCode::ALL {
            assert_eq!(GrpcCode::from_i32(code.as_i32()), code);
            assert_eq!(
                code.header_value().to_str().unwrap(),
                code.as_i32().to_string()
            );
        }
        assert_eq!(GrpcCode::from_i32(99), GrpcCode::Unknown);
        assert_eq!(GrpcCode::from_i32(-1), GrpcCode::Unknown);
    }

    #[test]
    fn reads_status_from_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(GrpcCode::from_headers(&headers), None);
        headers.insert(GRPC_STATUS, HeaderValue::from_static("14"));
        assert_eq!(
            GrpcCode::from_headers(&headers),
            Some(GrpcCode::Unavailable)
        );
        headers.insert(GRPC_STATUS, HeaderValue::from_static("garbage"));
        assert_eq!(GrpcCode::from_headers(&headers), Some(GrpcCode::Unknown));
    }

    #[test]
    fn detects_grpc_content_types() {
        let mut headers = HeaderMap::new();
        assert!(!is_grpc(&headers));
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/grpc+proto"),
        );
        assert!(is_grpc(&headers));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        assert!(!is_grpc(&headers));
    }
}
