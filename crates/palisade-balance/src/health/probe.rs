//! What a probe is: [`Probe`] makes each endpoint's [`Check`]; [`probe_fn`] makes a probe
//! of a function.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use palisade_core::BoxError;

/// One probe of one endpoint, as a boxed future: probes are rare beside requests, and a
/// box keeps the balancer's type free of the probe's.
pub type CheckFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

/// The health check of one endpoint: each call is one probe, `Ok` when it passed. Made once
/// when the endpoint joins, so that what the probes share — a connection, a gRPC channel —
/// is kept between them.
pub struct Check(Box<dyn FnMut() -> CheckFuture + Send>);

impl Check {
    /// A check that runs `probe` at each interval.
    pub fn new<F, Fut, E>(mut probe: F) -> Self
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        Self(Box::new(move || {
            let probe = probe();
            Box::pin(async move { probe.await.map_err(Into::into) })
        }))
    }

    /// Runs one probe.
    pub(crate) fn run(&mut self) -> CheckFuture {
        (self.0)()
    }
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check").finish_non_exhaustive()
    }
}

/// How to probe the endpoints a balancer discovers, keyed by `K`: given to
/// [`Balance::probe`](crate::Balance::probe), asked for each endpoint's [`Check`] when it
/// joins.
pub trait Probe<K>: Send + Sync {
    /// The check of the endpoint under `endpoint`.
    fn check(&self, endpoint: &K) -> Check;
}

/// A probe that calls a function with the endpoint's key at each interval; made by
/// [`probe_fn`].
#[derive(Clone)]
pub struct ProbeFn<F>(F);

impl<F> fmt::Debug for ProbeFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbeFn").finish_non_exhaustive()
    }
}

/// A probe that calls `probe(&key)` at each interval; its future's `Ok` is a pass.
pub fn probe_fn<K, F, Fut, E>(probe: F) -> ProbeFn<F>
where
    F: Fn(&K) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError>,
{
    ProbeFn(probe)
}

impl<K, F, Fut, E> Probe<K> for ProbeFn<F>
where
    K: Clone + Send + 'static,
    F: Fn(&K) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError>,
{
    fn check(&self, endpoint: &K) -> Check {
        let (probe, key) = (self.0.clone(), endpoint.clone());
        Check::new(move || probe(&key))
    }
}
