//! The drain: an instance's shutdown in the order that fails no request.
//!
//! Stopping a server at once fails every request in flight, and the requests that keep
//! arriving until the balancers in front notice; a server that merely stops accepting
//! connections still fails the requests sent on the keep-alive connections it holds. A
//! [`Drain`] runs the steps in the order Kubernetes and a service registry need:
//!
//! 1. **It starts** ([`Drain::start`], or the signal given to [`Drain::shutdown_after`]):
//!    readiness fails at once — the [`Readiness`] service answers `503`, and whatever
//!    awaits [`Drain::started`] (a registration marking itself draining, a gRPC health
//!    reporter turning `NOT_SERVING`) hears of it — but requests are still served, each
//!    answered with `Connection: close` so that HTTP/1 clients open their next connection
//!    elsewhere.
//! 2. **The grace period** ([`grace`](DrainConfigBuilder::grace)) gives the balancers,
//!    endpoint controllers and registries in front the time to take the instance out.
//! 3. **It refuses** ([`Drain::refusing`]): a request that still arrives is answered `503`
//!    with `Retry-After` and problem+json (gRPC: `UNAVAILABLE`) without running — nothing
//!    ran, so a client may send it elsewhere at once — and the server should stop accepting
//!    connections (the future of [`Drain::shutdown_after`] ends here, for axum's
//!    `with_graceful_shutdown`).
//! 4. **In-flight requests finish** ([`Drain::drained`]), bounded by the drain's
//!    [`timeout`](DrainConfigBuilder::timeout); then the process deregisters and exits.
//!
//! The in-flight count covers a request until its response's head; a server's own
//! graceful shutdown (hyper's, axum's) waits for the bodies it is still writing.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use http::{Request, Response, StatusCode};
//! use palisade_registry::drain::{Drain, DrainConfig, Phase};
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let drain = Drain::new(DrainConfig::builder("api").grace(Duration::from_secs(5)).build().unwrap());
//! let app = drain.layer().layer(service_fn(|_: Request<String>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(String::from("hello")))
//! }));
//! let get = || Request::get("/").body(String::new()).unwrap();
//!
//! assert_eq!(app.clone().oneshot(get()).await.unwrap().status(), StatusCode::OK);
//!
//! drain.start(); // on SIGTERM
//! assert_eq!(drain.phase(), Phase::Draining);
//! // Still served, on a connection the client will not use again.
//! let served = app.clone().oneshot(get()).await.unwrap();
//! assert_eq!(served.status(), StatusCode::OK);
//! assert_eq!(served.headers()["connection"], "close");
//!
//! tokio::time::sleep(Duration::from_secs(5)).await; // the grace period
//! let refused = app.clone().oneshot(get()).await.unwrap();
//! assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
//! assert_eq!(refused.headers()["retry-after"], "1");
//!
//! let drained = drain.drained().await;
//! assert_eq!(drained.abandoned(), 0, "nothing was in flight");
//! # }
//! ```
//!
//! With axum, the pieces go where the server is made — readiness on its own route, the
//! layer around everything, the drain's future as the graceful shutdown:
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use axum::{Router, routing::get};
//! use palisade_registry::drain::{Drain, DrainConfig};
//!
//! let drain = Drain::new(DrainConfig::builder("api").build().unwrap());
//! let app = Router::new()
//!     .route("/orders", get(|| async { "orders" }))
//!     .route_service("/healthz", drain.readiness())
//!     .layer(drain.layer());
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
//! let sigterm = async { tokio::signal::ctrl_c().await.ok(); };
//! axum::serve(listener, app)
//!     .with_graceful_shutdown(drain.clone().shutdown_after(sigterm))
//!     .await?;
//! let drained = drain.drained().await; // bounded by the drain's timeout
//! tracing::info!(abandoned = drained.abandoned(), "drained");
//! # Ok(()) }
//! ```

mod config;
mod layer;
mod readiness;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

pub use self::config::{DrainConfig, DrainConfigBuilder};
pub use self::layer::{DrainLayer, DrainService, ResponseFuture};
pub use self::readiness::Readiness;
pub use crate::error::Draining;
use crate::metrics::DrainMetrics;

/// Where a drain is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Not started: ready, serving.
    Serving,
    /// Started, within the grace period: unready, still serving.
    Draining,
    /// The grace period is over: new requests are refused.
    Refusing,
}

/// An instance's drain; cheap to clone, every clone the same drain. See the
/// [module docs](self).
#[derive(Clone, Debug)]
pub struct Drain {
    shared: Arc<Shared>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    config: DrainConfig,
    /// When the drain started, once it has.
    started: watch::Sender<Option<Instant>>,
    /// Whether it has: what each request reads, without the watch's lock.
    has_started: AtomicBool,
    in_flight: AtomicUsize,
    /// Told when the last request in flight leaves.
    idle: Notify,
    metrics: DrainMetrics,
}

/// How a drain ended: see [`Drain::drained`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    abandoned: usize,
}

impl Drained {
    /// Requests still in flight when the drain's timeout ended it (0: a clean drain).
    pub fn abandoned(&self) -> usize {
        self.abandoned
    }
}

impl Drain {
    /// A drain that has not started.
    pub fn new(config: DrainConfig) -> Self {
        let metrics = DrainMetrics::new(&config.name);
        Self {
            shared: Arc::new(Shared {
                config,
                started: watch::Sender::new(None),
                has_started: AtomicBool::new(false),
                in_flight: AtomicUsize::new(0),
                idle: Notify::new(),
                metrics,
            }),
        }
    }

    /// The layer that serves, marks and refuses requests as the drain's phase says.
    pub fn layer(&self) -> DrainLayer {
        DrainLayer::new(self.shared.clone())
    }

    /// A readiness endpoint: `200 ok` until the drain starts, `503 draining` from then on.
    pub fn readiness(&self) -> Readiness {
        Readiness::new(self.shared.clone())
    }

    /// Starts the drain, if it has not started: readiness fails now, refusals begin after
    /// the grace period.
    pub fn start(&self) {
        let started = self.shared.started.send_if_modified(|started| {
            if started.is_some() {
                return false;
            }
            *started = Some(Instant::now());
            true
        });
        if started {
            self.shared.has_started.store(true, Ordering::Release);
            tracing::info!(drain = %self.shared.config.name, grace = ?self.shared.config.grace, "drain started");
            self.shared.metrics.draining.set(1.0);
        }
    }

    /// Where the drain is now.
    pub fn phase(&self) -> Phase {
        self.shared.phase()
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Acquire)
    }

    /// Resolves when the drain starts (at once if it has): where a registration marks
    /// itself draining, or a gRPC health reporter turns `NOT_SERVING`.
    pub async fn started(&self) {
        self.start_instant().await;
    }

    /// Resolves when the grace period is over and refusals begin.
    pub async fn refusing(&self) {
        let started = self.start_instant().await;
        tokio::time::sleep_until(started + self.shared.config.grace).await;
    }

    /// Resolves when the drain is over: refusals have begun and no request is in flight,
    /// or the drain's timeout has passed since it started (with what it abandoned).
    pub async fn drained(&self) -> Drained {
        let started = self.start_instant().await;
        self.refusing().await;
        let deadline = started + self.shared.config.timeout;
        loop {
            let idle = self.shared.idle.notified();
            tokio::pin!(idle);
            // Listening before looking, so that the last request leaving in between is heard.
            idle.as_mut().enable();
            if self.in_flight() == 0 {
                tracing::info!(drain = %self.shared.config.name, "drained");
                return Drained { abandoned: 0 };
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                let abandoned = self.in_flight();
                tracing::warn!(drain = %self.shared.config.name, abandoned, "drain timed out");
                return Drained { abandoned };
            }
        }
    }

    /// Waits for `signal` (SIGTERM, Ctrl-C, an admin call), starts the drain, and resolves
    /// when refusals begin: the future to give a server's graceful shutdown (axum's
    /// `with_graceful_shutdown`, hyper-util's `GracefulShutdown`), which stops accepting
    /// connections then and lets the open ones finish.
    pub async fn shutdown_after<F: Future>(self, signal: F) {
        signal.await;
        self.start();
        self.refusing().await;
    }

    /// The instant the drain started, once it has.
    async fn start_instant(&self) -> Instant {
        let mut started = self.shared.started.subscribe();
        // The sender lives in `self`: the channel cannot close while this waits.
        match started.wait_for(Option::is_some).await {
            Ok(started) => started.unwrap_or_else(Instant::now),
            Err(_) => Instant::now(),
        }
    }
}

impl Shared {
    pub(crate) fn phase(&self) -> Phase {
        if !self.has_started.load(Ordering::Acquire) {
            return Phase::Serving;
        }
        match *self.started.borrow() {
            None => Phase::Serving,
            Some(started) if started.elapsed() < self.config.grace => Phase::Draining,
            Some(_) => Phase::Refusing,
        }
    }
}

/// A request in flight, counted until dropped.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Shared>);

impl InFlight {
    pub(crate) fn new(shared: &Arc<Shared>) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        shared.metrics.in_flight.set(now as f64);
        Self(shared.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let left = self.0.in_flight.fetch_sub(1, Ordering::AcqRel) - 1;
        self.0.metrics.in_flight.set(left as f64);
        if left == 0 {
            self.0.idle.notify_waiters();
        }
    }
}
