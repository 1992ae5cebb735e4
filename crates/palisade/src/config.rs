//! Configuration read from files: an operator tunes a stack without a rebuild.
//!
//! With the `serde` feature every layer's configuration implements `Deserialize` — the
//! builder's settings by the builder's names, durations as `"250ms"` or `"1m 30s"`, unknown
//! fields refused, the builder's validation — so a stack's configuration is a struct of
//! them in the application's own configuration. [`deserialize`] reads it from any serde
//! format (figment, config-rs, JSON, YAML) and, when something is wrong, names the field by
//! its path; [`from_toml`] (feature `toml`) reads a TOML file.
//!
//! ```
//! # #[cfg(all(feature = "toml", feature = "breaker", feature = "retry"))] {
//! use palisade::breaker::BreakerConfig;
//! use palisade::retry::RetryConfig;
//!
//! #[derive(Debug, serde::Deserialize)]
//! struct Stack {
//!     breaker: BreakerConfig,
//!     retry: RetryConfig,
//! }
//!
//! let stack: Stack = palisade::config::from_toml(r#"
//!     [breaker]
//!     name = "orders"
//!     open_duration = "30s"
//!
//!     [retry]
//!     name = "orders"
//!     budget = { percent = 0.1 }
//! "#).unwrap();
//! assert_eq!(stack.breaker.name(), "orders");
//!
//! let error = palisade::config::from_toml::<Stack>(r#"
//!     [breaker]
//!     name = "orders"
//!
//!     [retry]
//!     name = "orders"
//!     budget = { percent = 20 }
//! "#).unwrap_err();
//! assert_eq!(error.field(), "retry.budget.percent");
//! assert!(error.reason().contains("line 5"), "the [retry] table: {error}");
//! # }
//! ```

use palisade_core::ConfigError;
use serde::{Deserialize, Deserializer};

/// Reads a `T` from `deserializer`; an error names the field by its path in the input
/// (`retry.budget.percent`, `shed.queue.max_len`), whether the format refused it (a type, a
/// duration, an unknown field) or a layer's validation did.
pub fn deserialize<'de, D, T>(deserializer: D) -> Result<T, ConfigError>
where
    D: Deserializer<'de>,
    D::Error: std::fmt::Display,
    T: Deserialize<'de>,
{
    serde_path_to_error::deserialize(deserializer)
        .map_err(|error| config_error(&error.path().to_string(), &error.inner().to_string()))
}

/// Reads a `T` from the TOML document `text`; an error names the field by its path and says
/// on which line it is (for a layer's refusal of a setting, the line of the layer's table).
#[cfg(feature = "toml")]
#[cfg_attr(docsrs, doc(cfg(feature = "toml")))]
pub fn from_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    let deserializer = toml::Deserializer::parse(text)
        .map_err(|error| config_error("", &toml_message(text, &error)))?;
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        config_error(
            &error.path().to_string(),
            &toml_message(text, error.inner()),
        )
    })
}

/// The error for `message` at `path`: a layer's refusal keeps its own field, inside `path`.
fn config_error(path: &str, message: &str) -> ConfigError {
    // serde_path_to_error writes `.` for the root.
    let path = if path == "." { "" } else { path };
    match palisade_core::de::parse_refusal(message) {
        Some(refusal) => refusal.within(path),
        None => ConfigError::new(path.to_owned(), message.to_owned()),
    }
}

/// toml's message, with the line it points at instead of its multi-line rendering.
#[cfg(feature = "toml")]
fn toml_message(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end();
    match error.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            // A layer's refusal stays parseable: the line goes after its reason.
            format!("{message} (line {line})")
        }
        None => message.to_owned(),
    }
}

#[cfg(all(test, feature = "toml"))]
mod tests {
    use super::*;

    #[cfg(all(feature = "breaker", feature = "shed", feature = "balance"))]
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Stack {
        breaker: palisade_breaker::BreakerConfig,
        shed: palisade_shed::ShedConfig,
        balance: palisade_balance::BalanceConfig,
    }

    #[cfg(all(feature = "breaker", feature = "shed", feature = "balance"))]
    fn field(toml: &str) -> (String, String) {
        let error = from_toml::<Stack>(toml).unwrap_err();
        (error.field().to_owned(), error.reason().to_owned())
    }

    #[cfg(all(feature = "breaker", feature = "shed", feature = "balance"))]
    #[test]
    fn every_kind_of_error_names_its_path() {
        let base = "[breaker]\nname = \"b\"\n[shed]\nname = \"s\"\n[balance]\nname = \"l\"\n";
        from_toml::<Stack>(base).unwrap();
        let with = |extra: &str| field(&base.replace("[balance]", &format!("{extra}\n[balance]")));
        // The shed's own validation, on a field inside a table: the line is the table's.
        let (path, reason) = with("queue = { max_len = 0 }");
        assert_eq!(path, "shed.queue.max_len");
        assert!(reason.contains("line 3"), "{reason}");
        // A type the format refused.
        assert_eq!(with("retry_after = 3").0, "shed.retry_after");
        // A duration that does not parse.
        assert_eq!(with("retry_after = \"soon\"").0, "shed.retry_after");
        // An unknown field.
        let (path, reason) = with("limits = 3");
        assert!(path.starts_with("shed"), "{path}");
        assert!(reason.contains("unknown field `limits`"), "{reason}");
        // A breaker inside the balancer.
        let (path, _) = field(&format!("{base}ejection = {{ half_open_probes = 0 }}"));
        assert_eq!(path, "balance.ejection.half_open_probes");
        // A missing section.
        let (path, reason) = field("[breaker]\nname = \"b\"\n");
        assert_eq!(path, "");
        assert!(reason.contains("missing field `shed`"), "{reason}");
        // Not TOML at all.
        assert!(field("[breaker\n").1.contains("line 1"));
    }
}
