//! The client half: each outgoing call bounded by the deadline its request inherited, and
//! what is left of that deadline sent on.
//!
//! A handler running under [`EnforceDeadline`](crate::EnforceDeadline) has a deadline (its
//! caller's, capped). [`PropagateDeadlineLayer`] on the handler's clients makes every call
//! it makes keep it: for each call,
//!
//! - the deadline is the earliest of what remains of the inherited one less a
//!   [`margin`](PropagateConfigBuilder::margin) (5 ms), the call's own
//!   [`timeout`](PropagateConfigBuilder::timeout) if it has one, and a timeout the request
//!   already carries (tonic's `Request::set_timeout` writes one);
//! - what remains of it is written on the request — `grpc-timeout` for a gRPC call, the
//!   millisecond header otherwise — so that the callee, under its own `EnforceDeadline`,
//!   stops when the first caller gives up, and passes the same deadline further on;
//! - the call is cut when it passes: its future dropped (saying so, see
//!   [`palisade_core::cancel`]: a balancer below charges its endpoint a slow call), and the
//!   error is [`DeadlineExceeded`](crate::DeadlineExceeded); a call with no time left is
//!   not sent at all.
//!
//! A call with no deadline (outside any request, no timeout of its own) passes through
//! untouched.
//!
//! Put it below palisade's retry layer: the retry reads the same inherited deadline and
//! starts no attempt that cannot finish in it, and each attempt is then sent with what
//! remains at the moment it goes, not what remained when the first went.
//!
//! ```
//! use std::time::Duration;
//! use palisade_deadline::{PropagateConfig, PropagateDeadlineLayer};
//! use tower::ServiceBuilder;
//!
//! let config = PropagateConfig::builder("inventory")
//!     .timeout(Duration::from_secs(2)) // never longer, inherited deadline or not
//!     .build()
//!     .unwrap();
//! let client = ServiceBuilder::new()
//!     .layer(PropagateDeadlineLayer::with_config(config))
//!     .service_fn(|request: http::Request<String>| async move {
//!         // The callee reads the timeout it was sent.
//!         let sent = request.headers().get("x-request-timeout-ms").cloned();
//!         Ok::<_, std::convert::Infallible>(format!("{sent:?}"))
//!     });
//! # let _ = client;
//! ```

mod config;
mod future;
mod service;

use std::sync::Arc;

use tower_layer::Layer;

use crate::metrics::CallMetrics;

pub use self::config::{PropagateConfig, PropagateConfigBuilder};
pub use self::future::ResponseFuture;
pub use self::service::PropagateDeadline;

/// What every clone of a layer shares: its settings and its counters.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: PropagateConfig,
    pub(crate) metrics: CallMetrics,
}

/// Bounds each outgoing call by the deadline its request inherited and sends the rest of
/// it on: see [the module](self).
#[derive(Debug, Clone)]
pub struct PropagateDeadlineLayer {
    shared: Arc<Shared>,
}

impl PropagateDeadlineLayer {
    /// The layer with the defaults, for dependency `name`.
    pub fn new(name: &str) -> Self {
        Self::with_config(PropagateConfig::from(name))
    }

    /// The layer with `config`.
    pub fn with_config(config: PropagateConfig) -> Self {
        let metrics = CallMetrics::new(config.name());
        Self {
            shared: Arc::new(Shared { config, metrics }),
        }
    }
}

impl<S> Layer<S> for PropagateDeadlineLayer {
    type Service = PropagateDeadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PropagateDeadline::new(inner, self.shared.clone())
    }
}
