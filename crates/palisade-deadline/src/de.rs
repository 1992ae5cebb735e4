//! [`DeadlineConfig`] and [`PropagateConfig`] read from a file (feature `serde`): the
//! builders' settings under the builders' names, every one but `name` optional, durations in
//! a human form, unknown fields refused, and the builders' validation.
//!
//! ```toml
//! [server.deadline]          # EnforceDeadlineLayer
//! name = "gateway"
//! max = "2s"
//! header = "x-request-timeout-ms"
//!
//! [client.deadline]          # PropagateDeadlineLayer
//! name = "inventory"
//! timeout = "500ms"
//! margin = "5ms"
//! header = "x-request-timeout-ms"
//! ```

use std::time::Duration;

use http::HeaderName;
use palisade_core::ConfigError;
use palisade_core::de::{option_duration, refused};
use serde::{Deserialize, Deserializer};

use crate::config::DeadlineConfig;
use crate::propagate::PropagateConfig;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    name: String,
    #[serde(default, deserialize_with = "option_duration")]
    max: Option<Duration>,
    header: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFile {
    name: String,
    #[serde(default, deserialize_with = "option_duration")]
    timeout: Option<Duration>,
    #[serde(default, deserialize_with = "option_duration")]
    margin: Option<Duration>,
    header: Option<String>,
}

/// A header name as a file spells it.
fn header(name: &str) -> Result<HeaderName, ConfigError> {
    HeaderName::try_from(name)
        .map_err(|_| ConfigError::new("header", format!("{name:?} is not a header name")))
}

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de> Deserialize<'de> for DeadlineConfig {
    /// The settings of [`DeadlineConfigBuilder`](crate::DeadlineConfigBuilder), by its
    /// methods' names; `name` is required. See [the module](crate::de) for the form.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let file = ServerFile::deserialize(deserializer)?;
        let read = || {
            let mut b = DeadlineConfig::builder(file.name);
            if let Some(max) = file.max {
                b = b.max(max);
            }
            if let Some(name) = &file.header {
                b = b.header(header(name)?);
            }
            b.build()
        };
        read().map_err(refused)
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de> Deserialize<'de> for PropagateConfig {
    /// The settings of [`PropagateConfigBuilder`](crate::propagate::PropagateConfigBuilder),
    /// by its methods' names; `name` is required. See [the module](crate::de) for the form.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let file = ClientFile::deserialize(deserializer)?;
        let read = || {
            let mut b = PropagateConfig::builder(file.name);
            if let Some(timeout) = file.timeout {
                b = b.timeout(timeout);
            }
            if let Some(margin) = file.margin {
                b = b.margin(margin);
            }
            if let Some(name) = &file.header {
                b = b.header(header(name)?);
            }
            b.build()
        };
        read().map_err(refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_reads_as_the_builder_sets_it() {
        let server: DeadlineConfig =
            serde_json::from_str(r#"{"name": "gateway", "max": "2s", "header": "x-timeout-ms"}"#)
                .unwrap();
        let built = DeadlineConfig::builder("gateway")
            .max(Duration::from_secs(2))
            .header(HeaderName::from_static("x-timeout-ms"))
            .build()
            .unwrap();
        assert_eq!(server, built);
        let client: PropagateConfig =
            serde_json::from_str(r#"{"name": "inventory", "timeout": "500ms", "margin": "2ms"}"#)
                .unwrap();
        let built = PropagateConfig::builder("inventory")
            .timeout(Duration::from_millis(500))
            .margin(Duration::from_millis(2))
            .build()
            .unwrap();
        assert_eq!(client, built);
    }

    #[test]
    fn a_bad_setting_names_its_field() {
        let error = |json: &str| serde_json::from_str::<PropagateConfig>(json).unwrap_err();
        assert!(
            error(r#"{"name": "a", "margin": "2s"}"#)
                .to_string()
                .contains("margin")
        );
        assert!(
            error(r#"{"name": "a", "header": "bad header"}"#)
                .to_string()
                .contains("header")
        );
        assert!(
            error(r#"{"name": "a", "retries": 3}"#)
                .to_string()
                .contains("unknown field")
        );
        let server = serde_json::from_str::<DeadlineConfig>(r#"{"name": "a", "max": "0s"}"#);
        assert!(server.unwrap_err().to_string().contains("max"));
    }
}
