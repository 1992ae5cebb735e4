//! A [`DrainConfig`] read from a file (feature `serde`): the builder's settings under the
//! builder's names, every one but `name` optional, durations in a human form, unknown fields
//! refused, and the builder's validation.
//!
//! ```toml
//! name = "orders"
//! grace = "5s"
//! timeout = "30s"
//! retry_after = "1s"
//! ```

use std::time::Duration;

use palisade_core::de::{option_duration, refused};
use serde::{Deserialize, Deserializer};

use crate::drain::DrainConfig;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    #[serde(default, deserialize_with = "option_duration")]
    grace: Option<Duration>,
    #[serde(default, deserialize_with = "option_duration")]
    timeout: Option<Duration>,
    #[serde(default, deserialize_with = "option_duration")]
    retry_after: Option<Duration>,
}

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de> Deserialize<'de> for DrainConfig {
    /// The settings of [`DrainConfigBuilder`](crate::DrainConfigBuilder), by its methods'
    /// names; `name` is required. See [the module](crate::de) for the form.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let file = File::deserialize(deserializer)?;
        let mut b = DrainConfig::builder(file.name);
        if let Some(grace) = file.grace {
            b = b.grace(grace);
        }
        if let Some(timeout) = file.timeout {
            b = b.timeout(timeout);
        }
        if let Some(after) = file.retry_after {
            b = b.retry_after(after);
        }
        b.build().map_err(refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<DrainConfig, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn every_setting_reads_as_the_builder_sets_it() {
        let config =
            read(r#"{"name": "orders", "grace": "2s", "timeout": "20s", "retry_after": "3s"}"#)
                .unwrap();
        let built = DrainConfig::builder("orders")
            .grace(Duration::from_secs(2))
            .timeout(Duration::from_secs(20))
            .retry_after(Duration::from_secs(3))
            .build()
            .unwrap();
        assert_eq!(format!("{config:?}"), format!("{built:?}"));
    }

    #[test]
    fn bad_settings_name_their_field() {
        let err = read(r#"{"name": "a", "grace": "30s", "timeout": "10s"}"#).unwrap_err();
        assert!(err.contains("`timeout`"), "{err}");
        let err = read(r#"{"name": "a", "grace": "soon"}"#).unwrap_err();
        assert!(err.contains("grace") || err.contains("soon"), "{err}");
    }
}
