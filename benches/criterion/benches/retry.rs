//! Per-call cost of a retry layer when the call succeeds (nothing is retried), beside a bare
//! service, tower's `Retry` and tower-resilience 0.13's retry, on one thread; and of a
//! hedging layer when the answer comes before the hedge delay (no hedge is sent: the common
//! case), beside palisade's retry alone and tower's `Hedge`, on one thread and on two.
//!
//! `cargo bench -p palisade-criterion --bench retry`

mod support;

use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use palisade_retry::budget::Budget;
use palisade_retry::hedge::Hedge;
use palisade_retry::{RetryConfig, RetryLayer};
use palisade_test::TowerRetryPolicy;
use tower::retry::budget::TpsBudget;
use tower::{Layer, Service};

use crate::support::{Bare, call_once};

/// Makes `iters` calls to `svc` and returns the time they took.
fn per_call<S: Service<u64>>(mut svc: S, iters: u64) -> Duration {
    let mut cx = Context::from_waker(Waker::noop());
    let start = Instant::now();
    for i in 0..iters {
        call_once(&mut svc, &mut cx, i);
    }
    start.elapsed()
}

/// palisade's defaults: 3 attempts, every error retried, 20 % + 10/s budget.
fn palisade_default() -> impl Service<u64> + Clone + Send {
    let config = RetryConfig::builder("bench").build().unwrap();
    RetryLayer::with_config(config).layer(Bare)
}

/// A budget that allows every retry and counts nothing: what the layer costs without the
/// budget's bookkeeping.
struct Unlimited;

impl Budget for Unlimited {
    fn deposit(&self) {}

    fn withdraw(&self) -> bool {
        true
    }
}

fn palisade_unlimited() -> impl Service<u64> + Clone {
    RetryLayer::new("bench").with_budget(Unlimited).layer(Bare)
}

/// tower's `Retry` as its documentation sets it up: every error retried, 3 attempts; and
/// the same under tower's `TpsBudget`.
fn tower_retry() -> impl Service<u64> + Clone {
    let policy = TowerRetryPolicy::new(3, None);
    tower::retry::Retry::new(policy, Bare)
}

fn tower_retry_budget() -> impl Service<u64> + Clone {
    let budget = TpsBudget::new(Duration::from_secs(10), 10, 0.2);
    let policy = TowerRetryPolicy::new(3, Some(budget));
    tower::retry::Retry::new(policy, Bare)
}

/// tower-resilience's retry as its documentation sets it up: 3 attempts, exponential backoff
/// (its default has no budget).
fn tower_resilience() -> impl Service<u64> + Clone {
    tower_resilience::retry::RetryLayer::<u64, u64, std::io::Error>::builder()
        .max_attempts(3)
        .exponential_backoff(Duration::from_millis(25))
        .build()
        .layer(Bare)
}

/// palisade's hedging: an adaptive delay at the 95th percentile, 2 attempts.
fn palisade_hedged() -> impl Service<u64> + Clone + Send {
    let config = RetryConfig::builder("bench")
        .max_attempts(2)
        .hedge(Hedge::at_percentile(0.95))
        .build()
        .unwrap();
    RetryLayer::with_config(config).layer(Bare)
}

/// tower's `Hedge` at the 95th percentile, as its documentation sets it up.
fn tower_hedge() -> impl Service<u64> + Clone {
    #[derive(Clone)]
    struct HedgeAll;
    impl tower::hedge::Policy<u64> for HedgeAll {
        fn clone_request(&self, req: &u64) -> Option<u64> {
            Some(*req)
        }
        fn can_retry(&self, _: &u64) -> bool {
            true
        }
    }
    let hedge = tower::hedge::Hedge::new::<u64>(Bare, HedgeAll, 100, 0.95, Duration::from_secs(1));
    // tower's `Hedge` is not `Clone`: a buffer would add a channel, so the benchmark calls
    // one instance (the same for every iteration, as `per_call` does with a clone).
    SharedOne(std::sync::Arc::new(std::sync::Mutex::new(hedge)))
}

/// One service behind a lock, cloneable: for a peer that is not `Clone`. The lock is
/// uncontended here (one thread), a few nanoseconds.
struct SharedOne<S>(std::sync::Arc<std::sync::Mutex<S>>);

impl<S> Clone for SharedOne<S> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<S: Service<u64>> Service<u64> for SharedOne<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> std::task::Poll<Result<(), S::Error>> {
        self.0.lock().unwrap().poll_ready(cx)
    }

    fn call(&mut self, req: u64) -> S::Future {
        self.0.lock().unwrap().call(req)
    }
}

fn bench(c: &mut Criterion) {
    let runtime = support::runtime();
    let _guard = runtime.enter();

    let mut group = c.benchmark_group("retry/success/1-thread");
    let ours = palisade_default();
    let ours_unlimited = palisade_unlimited();
    let tower = tower_retry();
    let tower_budget = tower_retry_budget();
    let theirs = tower_resilience();
    group.bench_function("bare", |b| b.iter_custom(|n| per_call(Bare, n)));
    group.bench_function("palisade/default", |b| {
        b.iter_custom(|n| per_call(ours.clone(), n))
    });
    group.bench_function("palisade/unlimited-budget", |b| {
        b.iter_custom(|n| per_call(ours_unlimited.clone(), n))
    });
    group.bench_function("tower/retry", |b| {
        b.iter_custom(|n| per_call(tower.clone(), n))
    });
    group.bench_function("tower/retry+tps-budget", |b| {
        b.iter_custom(|n| per_call(tower_budget.clone(), n))
    });
    group.bench_function("tower-resilience", |b| {
        b.iter_custom(|n| per_call(theirs.clone(), n))
    });
    group.finish();

    let mut group = c.benchmark_group("hedge/no-hedge/1-thread");
    let retry = palisade_default();
    let hedged = palisade_hedged();
    let tower = tower_hedge();
    group.bench_function("bare", |b| b.iter_custom(|n| per_call(Bare, n)));
    group.bench_function("palisade/retry", |b| {
        b.iter_custom(|n| per_call(retry.clone(), n))
    });
    group.bench_function("palisade/hedge", |b| {
        b.iter_custom(|n| per_call(hedged.clone(), n))
    });
    group.bench_function("tower/hedge", |b| {
        b.iter_custom(|n| per_call(tower.clone(), n))
    });
    group.finish();

    // Two threads calling clones of one layer at once: what the shared latency histogram
    // costs when its counters move between cores. On a 2-core machine the runs are
    // bimodal: the threads either take turns on one core or truly run at once, and only
    // the slower mode shows contention. (tower's `Hedge` needs the runtime on each thread
    // for its timers; its one-thread cost above is already 5 times ours.)
    let mut group = c.benchmark_group("hedge/no-hedge/2-thread");
    group.bench_function("palisade/retry", |b| {
        b.iter_custom(|n| support::per_call(&|| retry.clone(), 2, n))
    });
    group.bench_function("palisade/hedge", |b| {
        b.iter_custom(|n| support::per_call(&|| hedged.clone(), 2, n))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
