//! [`HttpShedLayer`]: the layer that sheds load in front of an HTTP or gRPC server.

use std::sync::Arc;

use tower_layer::Layer;

use super::HttpShed;
use crate::config::ShedConfig;
use crate::handle::ShedHandle;
use crate::limiter::Limiter;
use crate::priority::HttpPriority;

/// Sheds load in front of an HTTP or gRPC server: refusals are `503` + `Retry-After` +
/// problem+json, or gRPC `RESOURCE_EXHAUSTED`, so it drops into axum with no
/// `HandleErrorLayer`. Priorities come from [`HttpPriority`] unless
/// [`priority`](Self::priority) says otherwise.
#[derive(Clone, Debug)]
pub struct HttpShedLayer<P = HttpPriority> {
    limiter: Arc<Limiter>,
    priority: P,
}

impl HttpShedLayer {
    /// A shedder called `name`, with the defaults.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self::with_config(ShedConfig::from(name.into()))
    }

    /// A layer that sheds as `config` says.
    pub fn with_config(config: ShedConfig) -> Self {
        Self {
            limiter: Limiter::new(config),
            priority: HttpPriority::default(),
        }
    }
}

impl<P> HttpShedLayer<P> {
    /// The same layer, telling priorities with `priority`.
    pub fn priority<P2>(self, priority: P2) -> HttpShedLayer<P2> {
        HttpShedLayer {
            limiter: self.limiter,
            priority,
        }
    }

    /// A handle to read the limit and the load.
    pub fn handle(&self) -> ShedHandle {
        ShedHandle::new(self.limiter.clone())
    }
}

impl<S, P: Clone> Layer<S> for HttpShedLayer<P> {
    type Service = HttpShed<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpShed::new(inner, self.limiter.clone(), self.priority.clone())
    }
}
