use std::borrow::Cow;
use std::fmt;

/// A configuration value that a builder refused.
///
/// Every palisade builder validates what it is given and returns this error, naming the
/// field, instead of panicking (tower's `TpsBudget::new` panics on a percentage out of range).
/// A configuration read from a file names the field by its path in the file
/// (`retry.budget.percent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: Cow<'static, str>,
    reason: String,
}

impl ConfigError {
    /// A refusal of `field` (the builder method's name) for `reason`.
    pub fn new(field: impl Into<Cow<'static, str>>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error, for a field inside `parent`: `budget.percent` within `retry` is
    /// `retry.budget.percent`. An empty parent changes nothing.
    pub fn within(self, parent: &str) -> Self {
        if parent.is_empty() {
            return self;
        }
        let field = if self.field.is_empty() {
            parent.to_owned()
        } else {
            format!("{parent}.{}", self.field)
        };
        Self {
            field: Cow::Owned(field),
            reason: self.reason,
        }
    }

    /// The name of the offending field, as the builder method that sets it is named, or its
    /// path in the file it was read from.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// Why the value was refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// How every message starts; [`crate::de`] reads a message back by it.
#[cfg_attr(not(feature = "serde"), allow(dead_code))]
pub(crate) const PREFIX: &str = "invalid configuration: `";

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}` {}", self.field, self.reason)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_field_in_its_message() {
        let err = ConfigError::new("failure_rate", "must be within 0.0..=1.0, got 1.5");
        assert_eq!(err.field(), "failure_rate");
        assert_eq!(
            err.to_string(),
            "invalid configuration: `failure_rate` must be within 0.0..=1.0, got 1.5"
        );
    }

    #[test]
    fn within_prefixes_the_path() {
        let err = ConfigError::new("budget.percent", "must be a ratio").within("retry");
        assert_eq!(err.field(), "retry.budget.percent");
        assert_eq!(err.clone().within("").field(), "retry.budget.percent");
        assert_eq!(ConfigError::new("", "bad").within("retry").field(), "retry");
    }
}
