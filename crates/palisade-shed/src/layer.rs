//! [`ShedLayer`]: the layer that sheds load in front of any service.

use std::sync::Arc;

use tower_layer::Layer;

use crate::config::ShedConfig;
use crate::handle::ShedHandle;
use crate::limiter::Limiter;
use crate::priority::AllDefault;
use crate::service::Shed;

/// Sheds load in front of any service: refusals are [`Overloaded`](crate::Overloaded)
/// errors. Every request is of default priority unless [`priority`](Self::priority) says
/// otherwise.
///
/// Every service the layer makes shares one limit: apply it once, around the whole server.
#[derive(Clone, Debug)]
pub struct ShedLayer<P = AllDefault> {
    limiter: Arc<Limiter>,
    priority: P,
}

impl ShedLayer {
    /// A shedder called `name`, with the defaults.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self::with_config(ShedConfig::from(name.into()))
    }

    /// A layer that sheds as `config` says.
    pub fn with_config(config: ShedConfig) -> Self {
        Self {
            limiter: Limiter::new(config),
            priority: AllDefault,
        }
    }
}

impl<P> ShedLayer<P> {
    /// The same layer, telling priorities with `priority` (a
    /// [`priority_fn`](crate::priority::priority_fn), for instance).
    pub fn priority<P2>(self, priority: P2) -> ShedLayer<P2> {
        ShedLayer {
            limiter: self.limiter,
            priority,
        }
    }

    /// A handle to read the limit and the load.
    pub fn handle(&self) -> ShedHandle {
        ShedHandle::new(self.limiter.clone())
    }
}

impl<S, P: Clone> Layer<S> for ShedLayer<P> {
    type Service = Shed<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Shed::new(inner, self.limiter.clone(), self.priority.clone())
    }
}
