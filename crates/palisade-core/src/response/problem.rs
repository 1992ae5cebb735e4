use serde::Serialize;

use super::Rejection;

/// An RFC 9457 problem details object, as palisade writes it for a refusal.
///
/// `type` is a URN naming the kind of refusal (`urn:palisade:problem:breaker-open`), stable
/// across versions so clients can match on it; `retry_after_ms` is an extension member that
/// repeats `Retry-After` with millisecond precision.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    type_uri: String,
    title: &'static str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_ms: Option<u64>,
}

impl Problem {
    /// The media type of a problem details body.
    pub const CONTENT_TYPE: &'static str = "application/problem+json";

    /// The problem that describes `rejection`.
    pub fn from_rejection(rejection: &dyn Rejection) -> Self {
        Self {
            type_uri: format!("urn:palisade:problem:{}", rejection.kind()),
            title: rejection.title(),
            status: rejection.http_status().as_u16(),
            detail: rejection.to_string(),
            retry_after_ms: rejection
                .retry_after()
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }

    /// The problem as a JSON document.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing a struct of strings and integers to a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}
