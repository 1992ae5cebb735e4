//! Servers' hints of when to come back: `Retry-After`, `grpc-retry-pushback-ms`, and a
//! `429`'s IETF `RateLimit` field.
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

/// Parses the IETF `RateLimit` field (draft-ietf-httpapi-ratelimit-headers):
/// `"policy";r=0;t=30, "other";r=5;t=10`. The wait it implies is the longest `t` (seconds)
/// among the policies with nothing left (`r=0`); `None` when every policy has some left, or
/// when the field does not read (a malformed item makes the whole field unread: a hint is
/// followed only when it is clear).
///
/// ```
/// use std::time::Duration;
/// use http::HeaderValue;
/// use palisade_core::hint::parse_ratelimit;
///
/// let field = HeaderValue::from_static("\"per-client\";r=0;t=30, \"server\";r=7;t=2");
/// assert_eq!(parse_ratelimit(&field), Some(Duration::from_secs(30)));
/// assert_eq!(parse_ratelimit(&HeaderValue::from_static("\"a\";r=3;t=30")), None);
/// assert_eq!(parse_ratelimit(&HeaderValue::from_static("r=0;t=soon")), None);
/// ```
pub fn parse_ratelimit(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?;
    let mut wait: Option<u64> = None;
    for item in text.split(',') {
        let mut params = item.trim().split(';');
        // The item's name: a quoted string or a token; not read, only checked to be there.
        if params.next().is_none_or(|name| name.trim().is_empty()) {
            return None;
        }
        let (mut remaining, mut reset) = (None, None);
        for param in params {
            let (key, value) = param.trim().split_once('=')?;
            let number = || value.trim().parse::<u64>().ok();
            match key.trim() {
                "r" => remaining = Some(number()?),
                "t" => reset = Some(number()?),
                _ => {}
            }
        }
        if remaining == Some(0) {
            let reset = reset?;
            wait = Some(wait.map_or(reset, |w| w.max(reset)));
        }
    }
    wait.map(Duration::from_secs)
}

/// When a response asks to be retried, if it says: `Retry-After`, or for a `429` without it,
/// the `RateLimit` field (see [`parse_ratelimit`]).
pub fn response_hint(
    status: http::StatusCode,
    headers: &http::HeaderMap,
    now: SystemTime,
) -> Option<Duration> {
    if let Some(after) = headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| parse_retry_after(v, now))
    {
        return Some(after);
    }
    if status != http::StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    headers
        .get_all(RATELIMIT)
        .iter()
        .filter_map(parse_ratelimit)
        .max()
}

/// The IETF `RateLimit` field's name.
const RATELIMIT: http::HeaderName = http::HeaderName::from_static("ratelimit");

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
    fn a_429_without_retry_after_is_read_from_its_ratelimit_field() {
        let now = SystemTime::now();
        let mut headers = http::HeaderMap::new();
        headers.insert("ratelimit", HeaderValue::from_static("\"p\";r=0;t=12"));
        let too_many = http::StatusCode::TOO_MANY_REQUESTS;
        assert_eq!(
            response_hint(too_many, &headers, now),
            Some(Duration::from_secs(12))
        );
        assert_eq!(
            response_hint(http::StatusCode::OK, &headers, now),
            None,
            "only a refusal waits"
        );
        headers.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(
            response_hint(too_many, &headers, now),
            Some(Duration::from_secs(3)),
            "Retry-After first"
        );
        for bad in [
            "",
            "r=0;t=5",
            "\"p\";r=0",
            "\"p\";r=x;t=5",
            "\"p\";r=0;t=-1",
            "\"p\";r=0;t",
        ] {
            assert_eq!(
                parse_ratelimit(&HeaderValue::from_str(bad).unwrap()),
                None,
                "{bad:?}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_ratelimit_field_reads_or_is_ignored(text in "[ -~]{0,120}") {
            if let Ok(value) = HeaderValue::from_str(&text) {
                let _ = parse_ratelimit(&value);
            }
        }
    }

    #[test]
    fn a_date_in_the_past_means_now() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let past = HeaderValue::from_static("Sun, 09 Sep 2001 01:46:40 GMT");
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
    }
}
