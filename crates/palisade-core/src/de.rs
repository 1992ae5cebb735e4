//! What the layers' `serde` features share, to read their configurations from files.
//!
//! Public for palisade's own crates, not part of the API: a configuration's serde form is
//! documented on the configuration.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserialize, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use crate::ConfigError;

/// A duration in a human form: `"250ms"`, `"10s"`, `"1m 30s"`.
pub fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    humantime_serde::deserialize(deserializer)
}

/// An optional duration in a human form, for a field with `#[serde(default)]`.
pub fn option_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    humantime_serde::deserialize(deserializer).map(Some)
}

/// A setting that `false` turns off: `consecutive_failures = false`, `queue = false`. Any
/// other value is the setting's own, with its own errors (`true` says what is expected).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OrOff<T> {
    /// `false`.
    Off,
    /// A value.
    On(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OrOff<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(OrOffVisitor(PhantomData))
    }
}

struct OrOffVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> OrOffVisitor<T> {
    fn on<E: de::Error>(value: impl IntoDeserializer<'de, E>) -> Result<OrOff<T>, E> {
        T::deserialize(value.into_deserializer()).map(OrOff::On)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for OrOffVisitor<T> {
    type Value = OrOff<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value, or false to turn the setting off")
    }

    fn visit_bool<E: de::Error>(self, on: bool) -> Result<Self::Value, E> {
        if on {
            Err(E::invalid_value(de::Unexpected::Bool(true), &self))
        } else {
            Ok(OrOff::Off)
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Self::on(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Self::on(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Self::on(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Self::on(v)
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Self::on(v)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(OrOff::On)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        T::deserialize(SeqAccessDeserializer::new(seq)).map(OrOff::On)
    }
}

/// A setting that is either a duration (`"30s"`) or a table of its own: a breaker's
/// `open_duration = "30s"` or `open_duration = { initial = "5s", max = "60s" }`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DurationOr<T> {
    /// A duration.
    Duration(Duration),
    /// A table.
    Table(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for DurationOr<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DurationOrVisitor(PhantomData))
    }
}

struct DurationOrVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for DurationOrVisitor<T> {
    type Value = DurationOr<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"30s\", or a table")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        humantime_serde::re::humantime::parse_duration(v)
            .map(DurationOr::Duration)
            .map_err(|e| E::invalid_value(de::Unexpected::Str(v), &e.to_string().as_str()))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(DurationOr::Table)
    }
}

/// A builder's refusal as a deserializer's error. Its message is the [`ConfigError`]'s,
/// which names the field within the configuration; `palisade::config` reads it back and
/// puts the configuration's own path in front (`retry` + `budget.percent`).
pub fn refused<E: de::Error>(error: ConfigError) -> E {
    E::custom(error)
}

/// The field and reason of a message made by [`refused`], if it is one.
pub fn parse_refusal(message: &str) -> Option<ConfigError> {
    let rest = message.strip_prefix(crate::config_error::PREFIX)?;
    let (field, reason) = rest.split_once("` ")?;
    Some(ConfigError::new(field.to_owned(), reason.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Queue {
        max_len: usize,
    }

    #[derive(Debug, Deserialize)]
    struct Settings {
        count: OrOff<u32>,
        rate: OrOff<f64>,
        queue: OrOff<Queue>,
        #[serde(deserialize_with = "duration")]
        wait: Duration,
    }

    fn read(json: &str) -> Result<Settings, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn false_is_off_and_anything_else_is_the_setting() {
        let on = read(r#"{"count": 5, "rate": 0.5, "queue": {"max_len": 8}, "wait": "1m 30s"}"#)
            .unwrap();
        assert_eq!(on.count, OrOff::On(5));
        assert_eq!(on.rate, OrOff::On(0.5));
        assert_eq!(on.queue, OrOff::On(Queue { max_len: 8 }));
        assert_eq!(on.wait, Duration::from_secs(90));
        let off =
            read(r#"{"count": false, "rate": false, "queue": false, "wait": "250ms"}"#).unwrap();
        assert_eq!(
            (off.count, off.rate, off.queue),
            (OrOff::Off, OrOff::Off, OrOff::Off)
        );
        assert_eq!(off.wait, Duration::from_millis(250));
    }

    #[test]
    fn bad_values_keep_their_own_errors() {
        let err = |json: &str| read(json).unwrap_err().to_string();
        assert!(
            err(r#"{"count": true, "rate": 1, "queue": false, "wait": "1s"}"#)
                .contains("false to turn the setting off")
        );
        assert!(
            err(r#"{"count": -1, "rate": 1, "queue": false, "wait": "1s"}"#)
                .contains("invalid value")
        );
        assert!(
            err(r#"{"count": 1, "rate": 1, "queue": {"max": 1}, "wait": "1s"}"#)
                .contains("unknown field `max`")
        );
        assert!(err(r#"{"count": 1, "rate": 1, "queue": false, "wait": "soon"}"#).contains("soon"));
    }

    #[test]
    fn a_duration_or_a_table() {
        let read = |json: &str| serde_json::from_str::<DurationOr<Queue>>(json);
        assert_eq!(
            read(r#""30s""#).unwrap(),
            DurationOr::Duration(Duration::from_secs(30))
        );
        assert_eq!(
            read(r#"{"max_len": 2}"#).unwrap(),
            DurationOr::Table(Queue { max_len: 2 })
        );
        assert!(read(r#""soon""#).unwrap_err().to_string().contains("soon"));
        assert!(read("3").unwrap_err().to_string().contains("a duration"));
    }

    #[test]
    fn a_refusal_reads_back_as_the_same_error() {
        let error = ConfigError::new("budget.percent", "must be a ratio from 0.0 to 10.0");
        let message = refused::<serde_json::Error>(error.clone()).to_string();
        assert_eq!(parse_refusal(&message), Some(error));
        assert_eq!(parse_refusal("missing field `name`"), None);
    }
}
