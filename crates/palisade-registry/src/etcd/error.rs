//! What went wrong talking to etcd.

use std::fmt;

/// An etcd operation of the registry failed: what it was doing, on which key, and etcd's
/// error as the [`source`](std::error::Error::source).
#[derive(Debug)]
pub struct RegistryError {
    doing: &'static str,
    key: String,
    source: etcd_client::Error,
}

impl RegistryError {
    pub(crate) fn new(doing: &'static str, key: &str, source: etcd_client::Error) -> Self {
        Self {
            doing,
            key: key.to_owned(),
            source,
        }
    }

    /// The key it was about.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "etcd registry: could not {} {}", self.doing, self.key)
    }
}

impl std::error::Error for RegistryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}
