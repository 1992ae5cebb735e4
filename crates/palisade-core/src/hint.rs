//! Servers' hints of when to come back: `Retry-After` and `grpc-retry-pushback-ms`.
//!
//! A hint is advice from the network: one that cannot be parsed is ignored (the layer
//! carries on as it would have), never an error, and every layer caps the hints it follows.
//! The retry layer waits them out before a retry; the balancer keeps traffic off the
//! endpoint that sent one for as long as it asked.

use std::time::{Duration, SystemTime};

use http::HeaderValue;

/// Parses `Retry-After`: delta-seconds (`120`) or an HTTP-date
/// (`Wed, 21 Oct 2026 07:28:00 GMT`, a wait until then from `now`; zero if it has passed).
/// `None` when it is neither.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use http::HeaderValue;
/// use palisade_core::hint::parse_retry_after;
///
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
/// assert_eq!(parse_retry_after(&HeaderValue::from_static("3"), now), Some(Duration::from_secs(3)));
/// let date = HeaderValue::from_static("Sun, 09 Sep 2001 01:47:00 GMT");
/// assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(20)));
/// assert_eq!(parse_retry_after(&HeaderValue::from_static("soon"), now), None);
/// ```
pub fn parse_retry_after(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // Longer than u64 seconds is "a very long time": saturate rather than ignore.
        return Some(Duration::from_secs(text.parse().unwrap_or(u64::MAX)));
    }
    let date = httpdate::parse_http_date(text).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses `grpc-retry-pushback-ms`: `Some(Ok(wait))`, or `Some(Err(()))` for a negative value,
/// which means "do not retry"; `None` when it is not an integer.
///
/// ```
/// use std::time::Duration;
/// use http::HeaderValue;
/// use palisade_core::hint::parse_grpc_pushback;
///
/// assert_eq!(parse_grpc_pushback(&HeaderValue::from_static("250")), Some(Ok(Duration::from_millis(250))));
/// assert_eq!(parse_grpc_pushback(&HeaderValue::from_static("-1")), Some(Err(())));
/// assert_eq!(parse_grpc_pushback(&HeaderValue::from_static("1.5")), None);
/// ```
#[allow(clippy::result_unit_err)]
pub fn parse_grpc_pushback(value: &HeaderValue) -> Option<Result<Duration, ()>> {
    let ms: i64 = value.to_str().ok()?.trim().parse().ok()?;
    Some(u64::try_from(ms).map(Duration::from_millis).map_err(drop))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_hints_are_ignored() {
        let now = SystemTime::now();
        for bad in [
            "",
            " ",
            "-5",
            "1.5",
            "tomorrow",
            "Wed, 99 Foo 2026 07:28:00 GMT",
        ] {
            assert_eq!(
                parse_retry_after(&HeaderValue::from_str(bad).unwrap(), now),
                None,
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_retry_after(&HeaderValue::from_bytes(b"\xff").unwrap(), now),
            None
        );
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("99999999999999999999999"), now),
            Some(Duration::from_secs(u64::MAX))
        );
        for bad in ["", "abc", "1e3", "99999999999999999999999"] {
            assert_eq!(
                parse_grpc_pushback(&HeaderValue::from_str(bad).unwrap()),
                None,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_date_in_the_past_means_now() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let past = HeaderValue::from_static("Sun, 09 Sep 2001 01:46:40 GMT");
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
    }
}
