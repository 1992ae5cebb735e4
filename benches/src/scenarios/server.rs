//! A simulated server with a fixed number of workers, for the shedding scenarios.
//!
//! A request takes a free worker, or waits for one in the server's own FIFO queue (tokio's
//! semaphore is fair). Its service time is drawn from a seeded lognormal distribution in
//! the order requests start, so a run replays exactly. A request whose caller goes away
//! while it waits for a worker leaves the queue (its future is dropped); one that has
//! started runs to the end on its worker, as CPU work does: the worker is busy for the
//! whole service time either way.
//!
//! tokio's timer counts whole milliseconds, and a sleep ends on the next millisecond tick:
//! service times are rounded to the nearest millisecond here (at least 1 ms), so that the
//! timer does not silently lengthen them; [`ServiceTime::mean`] is the mean of the rounded
//! distribution, from which capacities are computed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll};
use std::time::Duration;

use palisade_core::random::uniform;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tower::{BoxError, Service};

/// Service times: lognormal around a mean, rounded to whole milliseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServiceTime {
    mean: Duration,
    sigma: f64,
    seed: u64,
    /// A share of calls slowed by a factor: (share, factor).
    tail: Option<(f64, f64)>,
}

/// Mixed into the seed for the draws that pick the tail's calls.
const TAIL_SALT: u64 = 0x7a11_7a11;

impl ServiceTime {
    /// Lognormal with this mean (before rounding) and shape `sigma` (the standard deviation
    /// of the log), drawn from `seed`'s sequence.
    pub(crate) fn lognormal(mean: Duration, sigma: f64, seed: u64) -> Self {
        Self {
            mean,
            sigma,
            seed,
            tail: None,
        }
    }

    /// The same, with `share` of the calls, at random, `factor` times slower: a garbage
    /// collection, a cold cache, a noisy neighbour.
    pub(crate) fn with_tail(self, share: f64, factor: f64) -> Self {
        Self {
            tail: Some((share, factor)),
            ..self
        }
    }

    /// The `n`-th service time.
    pub(crate) fn sample(&self, n: u64) -> Duration {
        // Box–Muller from two draws of the sequence.
        let (u1, u2) = (uniform(self.seed, 2 * n), uniform(self.seed, 2 * n + 1));
        let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let mu = self.mean.as_secs_f64().ln() - self.sigma * self.sigma / 2.0;
        let slowdown = match self.tail {
            Some((share, factor)) if uniform(self.seed ^ TAIL_SALT, n) < share => factor,
            _ => 1.0,
        };
        let ms = ((mu + self.sigma * z).exp() * 1000.0 * slowdown)
            .round()
            .max(1.0);
        Duration::from_millis(ms as u64)
    }

    /// The first `n` service times.
    pub(crate) fn samples(&self, n: u64) -> impl Iterator<Item = Duration> + '_ {
        (0..n).map(|i| self.sample(i))
    }

    /// The mean of the rounded distribution, from a million draws.
    pub(crate) fn mean(&self) -> Duration {
        const DRAWS: u32 = 1_000_000;
        self.samples(u64::from(DRAWS)).sum::<Duration>() / DRAWS
    }
}

/// The server: cheap to clone, every clone the same server.
#[derive(Clone)]
pub(crate) struct Server {
    inner: Arc<Inner>,
}

struct Inner {
    workers: Arc<Semaphore>,
    /// Workers still to take away: each is forgotten when it next finishes a request.
    retiring: AtomicUsize,
    started: AtomicU64,
    busy: AtomicUsize,
    waiting: AtomicUsize,
    service: ServiceTime,
    /// Requests in the server at which service times double ([`Server::contended`]).
    contention: Option<usize>,
    /// How slow the server is at first, and the requests it serves to warm up
    /// ([`Server::cold`]).
    cold: Option<(f64, u64)>,
    /// Workers it grows to, one at a time over its first requests, and how many requests
    /// that takes ([`Server::growing`]); the workers it has now.
    growth: Option<(usize, u64)>,
    grown: AtomicUsize,
}

impl Server {
    pub(crate) fn new(workers: usize, service: ServiceTime) -> Self {
        Self {
            inner: Arc::new(Inner {
                workers: Arc::new(Semaphore::new(workers)),
                retiring: AtomicUsize::new(0),
                started: AtomicU64::new(0),
                busy: AtomicUsize::new(0),
                waiting: AtomicUsize::new(0),
                service,
                contention: None,
                cold: None,
                growth: None,
                grown: AtomicUsize::new(workers),
            }),
        }
    }

    /// A server whose requests slow each other down, as on a host whose cores they share:
    /// a request's service time is multiplied by `1 + n / contention`, `n` the requests in
    /// the server when it starts (itself excluded). Throughput still grows with
    /// concurrency (to `contention` ÷ the mean service time), so its latency rises long
    /// before it is out of capacity.
    pub(crate) fn contended(workers: usize, service: ServiceTime, contention: usize) -> Self {
        let server = Self::new(workers, service);
        let mut inner = Arc::into_inner(server.inner).expect("just made");
        inner.contention = Some(contention);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// A server that starts cold — caches empty, connections unpooled — and warms with the
    /// requests it serves: its `n`-th request is slower by a factor that falls linearly
    /// from `factor` to 1 over its first `warmup` requests.
    pub(crate) fn cold(workers: usize, service: ServiceTime, factor: f64, warmup: u64) -> Self {
        let server = Self::new(workers, service);
        let mut inner = Arc::into_inner(server.inner).expect("just made");
        inner.cold = Some((factor, warmup));
        Self {
            inner: Arc::new(inner),
        }
    }

    /// A server that starts with one worker and grows to `workers` over its first `warmup`
    /// requests — thread and connection pools filling as traffic comes — so that a load it
    /// serves at full size swamps it at first, though each request is as fast.
    pub(crate) fn growing(workers: usize, service: ServiceTime, warmup: u64) -> Self {
        let server = Self::new(1, service);
        let mut inner = Arc::into_inner(server.inner).expect("just made");
        inner.growth = Some((workers, warmup));
        inner.grown = AtomicUsize::new(1);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Takes `n` workers away: idle ones at once, busy ones when they finish.
    pub(crate) fn retire(&self, n: usize) {
        let now = self.inner.workers.forget_permits(n);
        self.inner.retiring.fetch_add(n - now, SeqCst);
    }

    /// Requests being served or waiting for a worker.
    pub(crate) fn in_server(&self) -> usize {
        self.inner.in_server()
    }
}

impl Inner {
    fn in_server(&self) -> usize {
        self.busy.load(SeqCst) + self.waiting.load(SeqCst)
    }

    fn release(&self, permit: OwnedSemaphorePermit) {
        self.busy.fetch_sub(1, SeqCst);
        let retired = self
            .retiring
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if retired {
            permit.forget();
        }
    }
}

/// Counts a request waiting for a worker until it gets one or goes away.
struct Waiting(Arc<Inner>);

impl Waiting {
    fn new(inner: &Arc<Inner>) -> Self {
        inner.waiting.fetch_add(1, SeqCst);
        Self(Arc::clone(inner))
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, SeqCst);
    }
}

impl<R> Service<R> for Server {
    type Response = ();
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: R) -> Self::Future {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let waiting = Waiting::new(&inner);
            let permit = Arc::clone(&inner.workers).acquire_owned().await?;
            drop(waiting);
            inner.busy.fetch_add(1, SeqCst);
            let n = inner.started.fetch_add(1, SeqCst);
            if let Some((workers, warmup)) = inner.growth {
                let due =
                    1 + ((workers - 1) as u64 * (n + 1) / warmup).min(workers as u64 - 1) as usize;
                let before = inner.grown.fetch_max(due, SeqCst);
                if due > before {
                    inner.workers.add_permits(due - before);
                }
            }
            let mut service = inner.service.sample(n);
            let mut slowdown = 1.0;
            if let Some(contention) = inner.contention {
                let others = inner.in_server() - 1;
                slowdown *= 1.0 + others as f64 / contention as f64;
            }
            if let Some((factor, warmup)) = inner.cold {
                let cold = 1.0 - (n as f64 / warmup as f64).min(1.0);
                slowdown *= 1.0 + (factor - 1.0) * cold;
            }
            // Whole milliseconds, as the service times (the module documentation).
            let ms = (service.as_secs_f64() * 1000.0 * slowdown).round();
            service = Duration::from_millis(ms as u64);
            let (done, finished) = oneshot::channel();
            // The work runs on its own: a caller that leaves does not free the worker.
            tokio::spawn(async move {
                tokio::time::sleep(service).await;
                inner.release(permit);
                let _ = done.send(());
            });
            finished.await.map_err(BoxError::from)
        })
    }
}
