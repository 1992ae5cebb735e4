//! What several test files share.

#[cfg(feature = "postgres")]
pub(crate) mod postgres;
