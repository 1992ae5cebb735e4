//! Reading a gRPC service config's JSON, with the path of every value, so that a mistake is
//! a [`ConfigError`] naming where it is (`methodConfig[1].retryPolicy.maxAttempts`).
//!
//! The rules are gRFC A6's and the service config's (`grpc/doc/service_config.md`): fields
//! this layer does not use (`loadBalancingConfig`, `waitForReady`, …) are ignored, as gRPC
//! ignores what it does not know; a field it uses that is malformed is refused.

use std::time::Duration;

use palisade_core::ConfigError;
use palisade_core::grpc::GrpcCode;
use serde_json::{Map, Value};

/// A JSON value and where it is.
pub(super) struct At<'a> {
    pub(super) path: String,
    pub(super) value: &'a Value,
}

impl<'a> At<'a> {
    /// The document's root, `$`.
    pub(super) fn root(value: &'a Value) -> Self {
        Self {
            path: "$".to_owned(),
            value,
        }
    }

    /// Its field `name`, if present (a JSON `null` is absent).
    pub(super) fn field(&self, name: &str) -> Option<At<'a>> {
        let value = self.value.as_object()?.get(name)?;
        (!value.is_null()).then(|| At {
            path: format!("{}.{name}", self.path),
            value,
        })
    }

    /// Its field `name`, which must be there.
    pub(super) fn required(&self, name: &str) -> Result<At<'a>, ConfigError> {
        self.object()?;
        self.field(name)
            .ok_or_else(|| self.error(format!("needs `{name}`")))
    }

    /// Its elements, each with its path.
    pub(super) fn elements(&self) -> Result<impl Iterator<Item = At<'a>> + '_, ConfigError> {
        Ok(self.array()?.iter().enumerate().map(|(i, value)| At {
            path: format!("{}[{i}]", self.path),
            value,
        }))
    }

    pub(super) fn error(&self, reason: impl Into<String>) -> ConfigError {
        ConfigError::new(self.path.clone(), reason)
    }

    pub(super) fn object(&self) -> Result<&'a Map<String, Value>, ConfigError> {
        self.value
            .as_object()
            .ok_or_else(|| self.error("must be an object"))
    }

    pub(super) fn array(&self) -> Result<&'a [Value], ConfigError> {
        self.value
            .as_array()
            .map(Vec::as_slice)
            .ok_or_else(|| self.error("must be an array"))
    }

    pub(super) fn string(&self) -> Result<&'a str, ConfigError> {
        self.value
            .as_str()
            .ok_or_else(|| self.error("must be a string"))
    }

    pub(super) fn number(&self) -> Result<f64, ConfigError> {
        self.value
            .as_f64()
            .ok_or_else(|| self.error("must be a number"))
    }

    /// A whole number (JSON has one kind of number: `3.0` is 3, `3.5` is not).
    pub(super) fn integer(&self) -> Result<u64, ConfigError> {
        let n = self.number()?;
        if n.fract() != 0.0 || n < 0.0 || n > u32::MAX as f64 {
            return Err(self.error("must be a whole number"));
        }
        Ok(n as u64)
    }

    /// A protobuf `Duration` in JSON: decimal seconds and an `s` (`"0.1s"`, `"2s"`).
    pub(super) fn duration(&self) -> Result<Duration, ConfigError> {
        let text = self.string()?;
        parse_duration(text).ok_or_else(|| {
            self.error(format!(
                "{text:?} is not a duration: seconds with up to 9 decimals, then `s` (\"0.25s\")"
            ))
        })
    }

    /// A list of gRPC status codes, by name (`"UNAVAILABLE"`) or number (14).
    pub(super) fn codes(&self) -> Result<Vec<GrpcCode>, ConfigError> {
        let mut codes = Vec::new();
        for at in self.elements()? {
            let code = match at.value {
                Value::String(name) => code_named(name),
                Value::Number(_) => at
                    .integer()
                    .ok()
                    .filter(|&n| n <= 16)
                    .map(|n| GrpcCode::from_i32(n as i32)),
                _ => None,
            };
            let code = code.ok_or_else(|| {
                at.error("is not a gRPC status code (a name such as \"UNAVAILABLE\", or 0 to 16)")
            })?;
            if code == GrpcCode::Ok {
                return Err(at.error("OK is a success, not a status to retry"));
            }
            codes.push(code);
        }
        Ok(codes)
    }
}

/// `"1.5s"` as a duration; negative, over 9 decimals or without its `s`: none.
fn parse_duration(text: &str) -> Option<Duration> {
    let seconds = text.strip_suffix('s')?;
    let (whole, fraction) = match seconds.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (seconds, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 9 {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let nanos: u32 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}").parse().ok()?
    };
    Some(Duration::new(whole, nanos))
}

/// The code a status name (as `grpc/doc/statuscodes.md` spells it) stands for.
fn code_named(name: &str) -> Option<GrpcCode> {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    let number = NAMES.iter().position(|n| *n == name)?;
    Some(GrpcCode::from_i32(number as i32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_protobuf_writes_them() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("0.1s"), Some(ms(100)));
        assert_eq!(parse_duration("2s"), Some(ms(2000)));
        assert_eq!(parse_duration("1.000000001s"), Some(Duration::new(1, 1)));
        for bad in [
            "",
            "s",
            "1",
            "-1s",
            "1.s5",
            ".5s",
            "1.0000000001s",
            "1e3s",
            "+1s",
            "1 s",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn codes_read_by_name_or_number() {
        assert_eq!(code_named("UNAVAILABLE"), Some(GrpcCode::Unavailable));
        assert_eq!(
            code_named("unavailable"),
            None,
            "as the specification spells them"
        );
        let value = serde_json::json!(["RESOURCE_EXHAUSTED", 14]);
        let at = At {
            path: "codes".to_owned(),
            value: &value,
        };
        assert_eq!(
            at.codes().unwrap(),
            [GrpcCode::ResourceExhausted, GrpcCode::Unavailable]
        );
        let bad = serde_json::json!(["UNAVAILABLE", 17]);
        let at = At {
            path: "codes".to_owned(),
            value: &bad,
        };
        assert_eq!(at.codes().unwrap_err().field(), "codes[1]");
    }
}
