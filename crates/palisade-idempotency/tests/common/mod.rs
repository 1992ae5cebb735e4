//! What several test files share. Each test binary uses only some of it.

#[allow(dead_code)]
pub(crate) mod contract;
#[cfg(feature = "postgres")]
#[allow(dead_code)]
pub(crate) mod postgres;
