//! What the store sends as arguments and how it reads Redis's replies: owner tokens,
//! durations in milliseconds, flags and records. A reply it cannot make sense of is an
//! error, never a panic.

use std::time::Duration;

use bytes::Bytes;
use redis::Value;

use crate::record::{Fingerprint, Owner, StoredResponse};
use crate::store::{Record, StoreError};

/// The owner token as the scripts compare it: fixed-width lowercase hex.
pub(super) fn owner_arg(owner: Owner) -> String {
    format!("{:032x}", owner.0)
}

/// A duration as Redis's milliseconds: rounded up, at least 1 (`PEXPIRE` with 0 deletes the
/// key), at most a bound Redis accepts (it refuses expiries that overflow its clock).
pub(super) fn millis(duration: Duration) -> u64 {
    const MAX: u64 = 1 << 52; // ~142 000 years
    let nanos = duration.as_nanos();
    let ms = nanos.div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(MAX).clamp(1, MAX)
}

/// A reply the store cannot make sense of.
pub(super) fn bad_reply(what: &str, key: &str) -> StoreError {
    StoreError::new(format!("unexpected Redis reply for {key}: {what}"))
}

/// A script's `0`/`1` answer.
pub(super) fn flag(value: Value, key: &str) -> Result<bool, StoreError> {
    match value {
        Value::Int(1) => Ok(true),
        Value::Int(0) => Ok(false),
        other => Err(bad_reply(&format!("expected 0 or 1, got {other:?}"), key)),
    }
}

/// A field's bytes, `None` if the field is missing.
fn field(value: Value, name: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
    match value {
        Value::Nil => Ok(None),
        Value::BulkString(bytes) => Ok(Some(bytes)),
        Value::SimpleString(s) => Ok(Some(s.into_bytes())),
        other => Err(bad_reply(&format!("field {name} is {other:?}"), key)),
    }
}

/// The record in `{state, fp, resp}`, `None` if all three are missing (no record).
pub(super) fn decode_record(value: Value, key: &str) -> Result<Option<Record>, StoreError> {
    let Value::Array(fields) = value else {
        return Err(bad_reply(&format!("expected a record, got {value:?}"), key));
    };
    let Ok([state, fp, resp]) = <[Value; 3]>::try_from(fields) else {
        return Err(bad_reply("expected three fields", key));
    };
    let state = field(state, "state", key)?;
    let fp = field(fp, "fp", key)?;
    let resp = field(resp, "resp", key)?;
    let Some(state) = state else {
        return if fp.is_none() && resp.is_none() {
            Ok(None)
        } else {
            Err(bad_reply("record without a state", key))
        };
    };
    let fingerprint = fp
        .and_then(|fp| <[u8; 32]>::try_from(fp).ok())
        .map(Fingerprint)
        .ok_or_else(|| bad_reply("missing or malformed fingerprint", key))?;
    match &state[..] {
        b"inflight" => Ok(Some(Record::InFlight { fingerprint })),
        b"done" => {
            let response = resp
                .and_then(|resp| StoredResponse::decode(Bytes::from(resp)))
                .ok_or_else(|| bad_reply("missing or malformed response", key))?;
            Ok(Some(Record::Completed {
                fingerprint,
                response,
            }))
        }
        _ => Err(bad_reply(
            &format!("unknown state {:?}", String::from_utf8_lossy(&state)),
            key,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_become_whole_milliseconds_rounded_up() {
        assert_eq!(millis(Duration::ZERO), 1);
        assert_eq!(millis(Duration::from_micros(1)), 1);
        assert_eq!(millis(Duration::from_millis(250)), 250);
        assert_eq!(millis(Duration::from_micros(250_001)), 251);
        assert_eq!(millis(Duration::MAX), 1 << 52);
    }

    #[test]
    fn owner_tokens_are_fixed_width() {
        assert_eq!(owner_arg(Owner(1)), format!("{}1", "0".repeat(31)));
        assert_eq!(owner_arg(Owner(u128::MAX)), "f".repeat(32));
    }

    fn bulk(bytes: &[u8]) -> Value {
        Value::BulkString(bytes.to_vec())
    }

    #[test]
    fn records_decode() {
        let fp = [7u8; 32];
        assert_eq!(
            decode_record(Value::Array(vec![Value::Nil, Value::Nil, Value::Nil]), "k").unwrap(),
            None
        );
        assert_eq!(
            decode_record(
                Value::Array(vec![bulk(b"inflight"), bulk(&fp), Value::Nil]),
                "k"
            )
            .unwrap(),
            Some(Record::InFlight {
                fingerprint: Fingerprint(fp)
            })
        );
        let response = StoredResponse {
            status: http::StatusCode::ACCEPTED,
            headers: http::HeaderMap::new(),
            body: Bytes::from_static(b"ok"),
            trailers: None,
        };
        assert_eq!(
            decode_record(
                Value::Array(vec![bulk(b"done"), bulk(&fp), bulk(&response.encode())]),
                "k"
            )
            .unwrap(),
            Some(Record::Completed {
                fingerprint: Fingerprint(fp),
                response
            })
        );
    }

    #[test]
    fn malformed_records_are_errors_not_panics() {
        let fp = [7u8; 32];
        let cases = [
            Value::Int(3),
            Value::Array(vec![bulk(b"inflight"), bulk(&fp)]),
            Value::Array(vec![bulk(b"paused"), bulk(&fp), Value::Nil]),
            Value::Array(vec![bulk(b"inflight"), bulk(&fp[..31]), Value::Nil]),
            Value::Array(vec![bulk(b"inflight"), Value::Nil, Value::Nil]),
            Value::Array(vec![bulk(b"done"), bulk(&fp), Value::Nil]),
            Value::Array(vec![bulk(b"done"), bulk(&fp), bulk(b"\x02garbage")]),
            Value::Array(vec![Value::Nil, bulk(&fp), Value::Nil]),
            Value::Array(vec![Value::Int(1), bulk(&fp), Value::Nil]),
        ];
        for case in cases {
            assert!(decode_record(case.clone(), "k").is_err(), "{case:?}");
        }
        assert!(flag(Value::Int(2), "k").is_err());
        assert!(flag(Value::Nil, "k").is_err());
    }
}
