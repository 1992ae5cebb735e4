//! The balancer: power of two choices over the ready endpoints, by failure-aware load.
//!
//! Endpoints come from a [`Discover`]. Each is either *ready* (its `poll_ready` said so) or
//! *pending* (driven to readiness in the background of `poll_ready`, and dropped if discovery
//! removes it meanwhile). `poll_ready` draws two ready endpoints at random and keeps the one
//! with the lower [`Load`]; the choice is remembered by key, so a discovery change between
//! `poll_ready` and `call` cannot send the request elsewhere (tower #856) — changes are only
//! applied in `poll_ready`.
//!
//! With no ready endpoint `poll_ready` waits up to `no_ready_timeout`, then lets the next
//! call fail at once with [`NoReadyEndpoints`] rather than leaving it pending forever.

use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use std::marker::PhantomData;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use palisade_breaker::{BreakerConfig, BreakerHandle, CircuitBreaker, CircuitBreakerLayer, State};
use palisade_core::{Classify, ErrorsAsFailures};
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};
use tower::discover::{Change, Discover};
use tower_layer::Layer;
use tower_service::Service;

use crate::config::BalanceConfig;
use crate::discover::Weighted;
use crate::endpoint::Endpoints;
use crate::error::NoReadyEndpoints;
use crate::future::ResponseFuture;
use crate::health::{HealthCheck, Probe, Prober};
use crate::load::Load;
use crate::metrics::BalanceMetrics;

use palisade_core::BoxError;

/// An endpoint's service, behind its ejection breaker in gate mode.
type Gated<S, C> = CircuitBreaker<S, C, BreakerHandle>;

/// The endpoints being readied.
type PendingSet<K, S, C, Req> = FuturesUnordered<Readying<K, Gated<S, C>, Req>>;

/// A service that spreads requests over discovered endpoints.
///
/// Endpoints come from a tower `Discover`. Each is either *ready* or *pending* (driven to
/// readiness in the background of `poll_ready`, and dropped if discovery removes it
/// meanwhile). `poll_ready` draws two ready endpoints at random and keeps the one with the
/// lower load — a peak-EWMA of its latency in which a failure counts as
/// `failure_penalty`, times its requests in flight. The choice is remembered by key, so a
/// discovery change between `poll_ready` and `call` cannot send the request elsewhere
/// (tower #856). With no ready endpoint, `poll_ready` waits up to `no_ready_timeout`, then
/// the next call fails at once with [`NoReadyEndpoints`].
///
/// Each endpoint sits behind a palisade circuit breaker in gate mode, its **ejection**:
/// failures in a row open it, which makes the endpoint's `poll_ready` `Pending` (never an
/// error, which would drop it for good) until a probe is due; a probe that succeeds
/// restores it. At most `max_ejected_share` of the endpoints are ejected at once: an
/// ejection beyond it is undone at once, and the balancer keeps using every endpoint
/// (panic mode).
pub struct Balance<D, Req, C = ErrorsAsFailures>
where
    D: Discover,
{
    discover: D,
    config: BalanceConfig,
    metrics: BalanceMetrics,
    classifier: C,
    /// Every endpoint, ready or being readied, with all the balancer keeps about it.
    endpoints: Endpoints<D::Key, Gated<D::Service, C>>,
    /// The services of the endpoints being readied, driven to readiness.
    pending: PendingSet<D::Key, D::Service, C, Req>,
    chosen: Option<Choice<D::Key>>,
    /// Probes each endpoint, when a probe was given.
    prober: Option<Prober<D::Key>>,
    no_ready_since: Option<Pin<Box<Sleep>>>,
    draws: u64,
    seed: u64,
}

impl<D: Discover, Req, C> std::fmt::Debug for Balance<D, Req, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Balance")
            .field("name", &self.config.name)
            .field("ready", &self.endpoints.ready_len())
            .field("pending", &self.pending.len())
            .field("ejected", &self.endpoints.ejected_len())
            .finish_non_exhaustive()
    }
}

enum Choice<K> {
    Endpoint(K),
    NoneReady(NoReadyEndpoints),
}

impl<D, Req> Balance<D, Req>
where
    D: Discover,
{
    /// A balancer over the endpoints `discover` yields, counting errors as failures.
    pub fn new(discover: D, name: impl Into<Arc<str>>) -> Self {
        Self::with_config(discover, BalanceConfig::from(name.into()))
    }

    /// A balancer over `discover` configured by `config`; errors are failures.
    pub fn with_config(discover: D, config: BalanceConfig) -> Self {
        Self::with_classifier(discover, config, ErrorsAsFailures)
    }
}

impl<D, Req, C> Balance<D, Req, C>
where
    D: Discover,
{
    /// A balancer that tells failures with `classifier` (`HttpClassifier` for HTTP: 5xx
    /// are failures), for its loads and its ejections.
    pub fn with_classifier(discover: D, config: BalanceConfig, classifier: C) -> Self {
        Self {
            metrics: BalanceMetrics::new(&config.name, config.endpoint_metrics),
            discover,
            config,
            classifier,
            endpoints: Endpoints::new(),
            pending: FuturesUnordered::new(),
            chosen: None,
            prober: None,
            no_ready_since: None,
            draws: 0,
            seed: 0x5eed,
        }
    }

    /// Seeds the random draws of the two choices, for simulations that must replay exactly.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Probes each endpoint with `probe` (an HTTP GET, `grpc.health.v1`, a check of your
    /// own), on the timer of the configuration's
    /// [`health_check`](crate::BalanceConfigBuilder::health_check) (every 5 s by default);
    /// an endpoint that fails its checks is ejected as one that fails its requests is. See
    /// [`health`](crate::health). Endpoints discovered before this call are not probed, so
    /// give the probe when making the balancer.
    pub fn probe(mut self, probe: impl Probe<D::Key> + 'static) -> Self {
        let check = self
            .config
            .health_check
            .unwrap_or_else(|| HealthCheck::new(std::time::Duration::from_secs(5)));
        self.prober = Some(Prober::new(
            self.config.name.clone(),
            check,
            Arc::new(probe),
        ));
        self
    }

    /// Endpoints ready now, and endpoints being readied (ejected ones among them).
    pub fn endpoints(&self) -> (usize, usize) {
        (self.endpoints.ready_len(), self.endpoints.readying_len())
    }

    /// Endpoints ejected now: out of the rotation until a probe restores them.
    pub fn ejected(&self) -> usize {
        self.endpoints.ejected_len()
    }
}

fn is_ejected(state: State) -> bool {
    matches!(state, State::Open | State::HalfOpen | State::ForcedOpen)
}

/// Drives an endpoint to readiness, unless it is removed first.
struct Readying<K, S, Req> {
    key: Option<K>,
    service: Option<S>,
    cancel: oneshot::Receiver<()>,
    _request: PhantomData<fn(Req)>,
}

impl<K, S, Req> Unpin for Readying<K, S, Req> {}

enum Readied<K, S> {
    Ready(K, S),
    Failed(K),
    Cancelled,
}

impl<K, S, Req> Future for Readying<K, S, Req>
where
    S: Service<Req>,
{
    type Output = Readied<K, S>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if Pin::new(&mut this.cancel).poll(cx).is_ready() {
            return Poll::Ready(Readied::Cancelled);
        }
        let Some(service) = this.service.as_mut() else {
            return Poll::Ready(Readied::Cancelled);
        };
        let readiness = service.poll_ready(cx);
        match (readiness, this.key.take(), this.service.take()) {
            (Poll::Pending, key, service) => {
                this.key = key;
                this.service = service;
                Poll::Pending
            }
            (Poll::Ready(Ok(())), Some(key), Some(service)) => {
                Poll::Ready(Readied::Ready(key, service))
            }
            (Poll::Ready(Err(_)), Some(key), _) => Poll::Ready(Readied::Failed(key)),
            _ => Poll::Ready(Readied::Cancelled),
        }
    }
}

impl<D, Req, C> Balance<D, Req, C>
where
    D: Discover + Unpin,
    D::Key: Hash + Clone + std::fmt::Debug + Weighted,
    D::Error: Into<BoxError>,
    D::Service: Service<Req>,
    <D::Service as Service<Req>>::Error: Into<BoxError> + 'static,
    C: Classify<<D::Service as Service<Req>>::Response, <D::Service as Service<Req>>::Error>
        + Clone,
{
    /// Applies what discovery says has changed.
    fn poll_discover(&mut self, cx: &mut Context<'_>) -> Result<(), BoxError> {
        while let Poll::Ready(change) = Pin::new(&mut self.discover).poll_discover(cx) {
            match change {
                None => return Ok(()),
                Some(Err(error)) => return Err(error.into()),
                Some(Ok(Change::Insert(key, service))) => {
                    tracing::info!(balancer = %self.config.name, endpoint = ?key, "endpoint added");
                    let (breaker, service) = self.gate(&key, service);
                    let ejects = self.config.ejection.is_some();
                    let health = (self.prober.as_ref())
                        .map(|prober| prober.watch(&key, breaker.clone(), ejects));
                    // In place of any endpoint under the same key, whose readying and
                    // probing stop.
                    let cancelled = self.endpoints.insert(key.clone(), breaker, health);
                    self.push_pending(key, service, cancelled);
                }
                Some(Ok(Change::Remove(key))) => {
                    tracing::info!(balancer = %self.config.name, endpoint = ?key, "endpoint removed");
                    self.endpoints.remove(&key);
                }
            }
        }
        Ok(())
    }

    /// Puts a new endpoint behind its ejection breaker; returns the breaker's handle too.
    fn gate(&self, key: &D::Key, service: D::Service) -> (BreakerHandle, Gated<D::Service, C>) {
        let name = format!("{}:{key:?}", self.config.name);
        // Silent: the balancer counts ejections itself, with no series per endpoint.
        let (breaker, ejects) = match &self.config.ejection {
            Some(config) => (config.renamed(name).silenced(), true),
            None => (
                BreakerConfig::builder(name)
                    .silent()
                    .build()
                    .expect("the default breaker is valid"),
                false,
            ),
        };
        let layer = CircuitBreakerLayer::with_config(breaker)
            .gate()
            .classifier(self.classifier.clone());
        let handle = layer.handle();
        if !ejects {
            // Counts, never ejects.
            handle.force_closed();
        }
        (handle, layer.layer(service))
    }

    /// Whether one more ejection keeps the ejected share within its cap.
    fn may_eject(&self) -> bool {
        let cap = (self.config.max_ejected_share * self.endpoints.len() as f64) as usize;
        self.endpoints.ejected_len() < cap
    }

    /// Drives an endpoint's service to readiness, until `cancel` says it was removed.
    fn push_pending(
        &mut self,
        key: D::Key,
        service: Gated<D::Service, C>,
        cancel: oneshot::Receiver<()>,
    ) {
        self.pending.push(Readying {
            key: Some(key),
            service: Some(service),
            cancel,
            _request: PhantomData,
        });
    }

    /// Moves endpoints that became ready to the ready set.
    fn poll_pending(&mut self, cx: &mut Context<'_>) {
        while let Poll::Ready(Some(readied)) = self.pending.poll_next_unpin(cx) {
            match readied {
                Readied::Ready(key, service) => {
                    let start_rtt = self.start_rtt();
                    let (config, metrics) = (&self.config, &self.metrics);
                    let new_load = || {
                        Arc::new(
                            Load::new(start_rtt, config.decay, config.failure_penalty)
                                .with(config.load, key.weight())
                                .slow_start(config.slow_start),
                        )
                    };
                    let requests = || metrics.requests(&key);
                    let readied = self.endpoints.readied(&key, service, new_load, requests);
                    if readied == Some(true) {
                        tracing::info!(balancer = %self.config.name, endpoint = ?key, "endpoint back in rotation for a probe");
                        // Back from ejection: it ramps up again, as a new one does.
                        if let Some(ready) = self.endpoints.get_ready_mut(&key) {
                            ready.load.rejoin();
                        }
                    }
                }
                Readied::Failed(key) => {
                    tracing::warn!(balancer = %self.config.name, endpoint = ?key, "endpoint failed and was dropped");
                    self.endpoints.remove(&key);
                }
                Readied::Cancelled => {}
            }
        }
    }

    /// Where a new endpoint's latency estimate starts: `default_rtt`, or with slow start
    /// the ready endpoints' mean — the ramp, not a cold estimate, sets its share.
    fn start_rtt(&self) -> std::time::Duration {
        let n = self.endpoints.ready_len();
        if self.config.slow_start.is_none() || n == 0 {
            return self.config.default_rtt;
        }
        let now = Instant::now();
        let mean = (0..n)
            .map(|i| self.endpoints.ready(i).load.estimate_nanos(now))
            .sum::<f64>()
            / n as f64;
        if mean.is_finite() && mean >= 1.0 {
            std::time::Duration::from_nanos(mean as u64)
        } else {
            self.config.default_rtt
        }
    }

    /// A uniform draw in `0..n`.
    fn draw(&mut self, n: usize) -> usize {
        self.draws += 1;
        let u = palisade_core::random::uniform(self.seed, self.draws);
        ((u * n as f64) as usize).min(n - 1)
    }

    /// Power of two choices: two distinct ready endpoints at random, the less loaded one.
    fn p2c(&mut self) -> usize {
        let n = self.endpoints.ready_len();
        if n == 1 {
            return 0;
        }
        let a = self.draw(n);
        let b = (a + 1 + self.draw(n - 1)) % n;
        let now = Instant::now();
        let cost = |i: usize| self.endpoints.ready(i).load.cost(now);
        if cost(b) < cost(a) { b } else { a }
    }
}

impl<D, Req, C> Service<Req> for Balance<D, Req, C>
where
    D: Discover + Unpin,
    D::Key: Hash + Clone + std::fmt::Debug + Weighted,
    D::Error: Into<BoxError>,
    D::Service: Service<Req>,
    <D::Service as Service<Req>>::Error: Into<BoxError> + 'static,
    C: Classify<<D::Service as Service<Req>>::Response, <D::Service as Service<Req>>::Error>
        + Classify<<D::Service as Service<Req>>::Response, BoxError>
        + Clone,
{
    type Response = <D::Service as Service<Req>>::Response;
    type Error = BoxError;
    type Future = ResponseFuture<
        palisade_breaker::ResponseFuture<<D::Service as Service<Req>>::Future, C>,
        C,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.poll_discover(cx)?;
        self.poll_pending(cx);
        let ejected = self.endpoints.ejected_len();
        self.metrics.set(
            self.endpoints.ready_len(),
            self.endpoints.readying_len() - ejected,
            ejected,
        );
        if let Some(Choice::Endpoint(key)) = &self.chosen {
            if self.endpoints.is_ready(key) {
                return Poll::Ready(Ok(()));
            }
            self.chosen = None;
        }
        loop {
            if self.endpoints.ready_len() == 0 {
                let timeout = self.config.no_ready_timeout;
                let timer = self
                    .no_ready_since
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.no_ready_since = None;
                self.metrics.no_endpoints();
                self.chosen = Some(Choice::NoneReady(NoReadyEndpoints {
                    endpoints: self.endpoints.readying_len(),
                    waited: timeout,
                }));
                return Poll::Ready(Ok(()));
            }
            self.no_ready_since = None;
            let index = self.p2c();
            let (key, endpoint) = self.endpoints.ready_mut(index);
            match endpoint.service.poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    self.chosen = Some(Choice::Endpoint(key.clone()));
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending => {
                    let ejected = is_ejected(self.endpoints.breaker(index).state());
                    if ejected && !self.may_eject() {
                        // Past the cap: undo the ejection and keep using it (panic mode).
                        let key = self.endpoints.key(index);
                        tracing::warn!(balancer = %self.config.name, endpoint = ?key, "ejection cap reached; endpoint kept");
                        self.metrics.panicked();
                        let breaker = self.endpoints.breaker(index);
                        breaker.reset();
                        if self.config.ejection.is_none() {
                            // Forced open by a failing health check: back to never tripping.
                            breaker.force_closed();
                        }
                        self.endpoints.move_to_back(index);
                        continue;
                    }
                    // Not ready (or ejected): back to readying, and choose again.
                    let (key, service, cancelled) = self.endpoints.unready(index, ejected);
                    if ejected {
                        tracing::warn!(balancer = %self.config.name, endpoint = ?key, "endpoint ejected");
                        self.metrics.ejected();
                    }
                    self.push_pending(key, service, cancelled);
                }
                Poll::Ready(Err(_)) => {
                    if let Some(key) = self.endpoints.remove_ready(index) {
                        tracing::warn!(balancer = %self.config.name, endpoint = ?key, "endpoint failed and was dropped");
                    }
                }
            }
        }
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let endpoint = match self.chosen.take() {
            Some(Choice::Endpoint(key)) => self.endpoints.get_ready_mut(&key),
            Some(Choice::NoneReady(refusal)) => return ResponseFuture::refused(refusal),
            None => None,
        };
        let Some(endpoint) = endpoint else {
            // `call` without a successful `poll_ready`: a caller's bug, answered, not a panic.
            return ResponseFuture::refused(NoReadyEndpoints {
                endpoints: self.endpoints.len(),
                waited: std::time::Duration::ZERO,
            });
        };
        endpoint.load.start();
        endpoint.requests.increment(1);
        let future = endpoint.service.call(request);
        ResponseFuture::called(
            future,
            endpoint.load.clone(),
            self.classifier.clone(),
            self.config.max_hint,
        )
    }
}
