use std::fmt;

/// A configuration value that a builder refused.
///
/// Every palisade builder validates what it is given and returns this error, naming the
/// field, instead of panicking (tower's `TpsBudget::new` panics on a percentage out of range).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    reason: String,
}

impl ConfigError {
    /// A refusal of `field` (the builder method's name) for `reason`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }

    /// The name of the offending field, as the builder method that sets it is named.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// Why the value was refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: `{}` {}", self.field, self.reason)
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
}
