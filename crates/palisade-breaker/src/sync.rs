//! The atomics the state machine is built from: std's, or loom's when the crate is built
//! with `--cfg palisade_loom` to model-check it.

#[cfg(palisade_loom)]
pub(crate) use loom::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

#[cfg(not(palisade_loom))]
pub(crate) use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
