//! An algorithm as settings: what a [`ShedConfig`](crate::ShedConfig) holds, and each
//! shedder turns into a limit of its own when it is made.

use std::fmt;
use std::sync::Arc;

use super::{Aimd, Fixed, Gradient, Limit};

type MakeLimit = dyn Fn() -> Box<dyn Limit + Sync> + Send + Sync;

/// Which algorithm sets a shedder's limit, with its settings.
///
/// A value like the rest of the configuration: every shedder made from it starts the
/// algorithm afresh, so two layers made from one configuration learn separately. An
/// algorithm of your own is given as a function that makes one ([`LimitConfig::custom`]).
///
/// ```
/// use palisade_shed::limit::{Fixed, Gradient, LimitConfig};
///
/// let fixed: LimitConfig = Fixed(64).into();
/// let adaptive: LimitConfig = Gradient::new(8, 50, 800).unwrap().into();
/// # let _ = (fixed, adaptive);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum LimitConfig {
    /// A limit someone chose.
    Fixed(Fixed),
    /// Additive increase, multiplicative decrease.
    Aimd(Aimd),
    /// Latency against the unloaded latency: the default.
    Gradient(Gradient),
    /// An algorithm of your own, made afresh for each shedder.
    Custom(Arc<MakeLimit>),
}

impl LimitConfig {
    /// An algorithm of your own: `make` is called once for each shedder made (and once by
    /// [`ShedConfigBuilder::build`](crate::ShedConfigBuilder::build), to check its bounds).
    pub fn custom<L, F>(make: F) -> Self
    where
        L: Limit + Sync + 'static,
        F: Fn() -> L + Send + Sync + 'static,
    {
        Self::Custom(Arc::new(move || Box::new(make())))
    }

    /// A fresh algorithm, in its initial state.
    pub(crate) fn make(&self) -> Box<dyn Limit + Sync> {
        match self {
            Self::Fixed(fixed) => Box::new(*fixed),
            Self::Aimd(aimd) => Box::new(*aimd),
            Self::Gradient(gradient) => Box::new(gradient.fresh()),
            Self::Custom(make) => make(),
        }
    }
}

impl Default for LimitConfig {
    fn default() -> Self {
        Self::Gradient(Gradient::default())
    }
}

impl fmt::Debug for LimitConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(fixed) => fixed.fmt(f),
            Self::Aimd(aimd) => aimd.fmt(f),
            Self::Gradient(gradient) => gradient.fmt(f),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl From<Fixed> for LimitConfig {
    fn from(fixed: Fixed) -> Self {
        Self::Fixed(fixed)
    }
}

impl From<Aimd> for LimitConfig {
    fn from(aimd: Aimd) -> Self {
        Self::Aimd(aimd)
    }
}

impl From<Gradient> for LimitConfig {
    fn from(gradient: Gradient) -> Self {
        Self::Gradient(gradient)
    }
}
