//! Per-call cost of a circuit breaker in the closed state, beside a bare service,
//! tower-resilience 0.13's circuit breaker and failsafe 1.3, on one and two threads; and of
//! keyed breakers (one a key, 16 keys), which neither peer has.
//!
//! `cargo bench -p palisade-criterion --bench breaker`

mod support;

use std::task::{Context, Poll};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use palisade_breaker::{BreakerConfig, CircuitBreakerLayer, KeyedBreakers, Window};
use tower::{Layer, Service};

use crate::support::{Bare, per_call};

/// palisade's breaker with `config`'s policy.
fn palisade(config: palisade_breaker::BreakerConfigBuilder) -> impl Service<u64> + Clone + Send {
    CircuitBreakerLayer::with_config(config.build().unwrap()).layer(Bare)
}

/// The defaults: five failures in a row, or half the calls of the last 10 s.
fn palisade_default() -> impl Service<u64> + Clone + Send {
    palisade(BreakerConfig::builder("bench"))
}

/// A breaker a key with the defaults, keyed by the request modulo 16: the lookup of a
/// client that keeps a breaker per upstream host.
fn palisade_keyed() -> impl Service<u64> + Clone + Send {
    let config = BreakerConfig::builder("bench").build().unwrap();
    let breakers = KeyedBreakers::new(config, |request: &u64| request % 16);
    CircuitBreakerLayer::keyed(breakers).layer(Bare)
}

/// tower-resilience's policy below: a failure rate over the last 100 calls.
fn palisade_count_window() -> impl Service<u64> + Clone + Send {
    palisade(
        BreakerConfig::builder("bench")
            .no_consecutive_failures()
            .failure_rate(0.5)
            .window(Window::count(100)),
    )
}

/// failsafe's policy below: five failures in a row.
fn palisade_consecutive() -> impl Service<u64> + Clone + Send {
    palisade(
        BreakerConfig::builder("bench")
            .consecutive_failures(5)
            .no_failure_rate(),
    )
}

fn tower_resilience() -> impl Service<u64> + Clone + Send + 'static {
    let layer = tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.5)
        .sliding_window_size(100)
        .build()
        .unwrap();
    layer.layer(Bare)
}

/// failsafe has no tower layer; this is the one its futures integration makes natural: the
/// call is wrapped in failsafe's own `ResponseFuture`, which holds a clone of the state
/// machine, asks it for permission, and records the outcome when the call completes.
#[derive(Clone)]
struct Failsafe<S> {
    breaker: failsafe::StateMachine<
        failsafe::failure_policy::ConsecutiveFailures<failsafe::backoff::Constant>,
        (),
    >,
    inner: S,
}

fn failsafe() -> Failsafe<Bare> {
    let policy = failsafe::failure_policy::consecutive_failures(
        5,
        failsafe::backoff::constant(Duration::from_secs(5)),
    );
    Failsafe {
        breaker: failsafe::Config::new().failure_policy(policy).build(),
        inner: Bare,
    }
}

impl<S: Service<u64>> Service<u64> for Failsafe<S> {
    type Response = S::Response;
    type Error = failsafe::Error<S::Error>;
    type Future = failsafe::futures::ResponseFuture<
        S::Future,
        failsafe::failure_policy::ConsecutiveFailures<failsafe::backoff::Constant>,
        (),
        failsafe::Any,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(failsafe::Error::Inner)
    }

    fn call(&mut self, req: u64) -> Self::Future {
        failsafe::futures::CircuitBreaker::call(&self.breaker, self.inner.call(req))
    }
}

fn bench(c: &mut Criterion) {
    let runtime = support::runtime();
    let _guard = runtime.enter();

    for threads in [1u64, 2] {
        let mut group = c.benchmark_group(format!("breaker/closed/{threads}-thread"));
        // Each service is made once and cloned per thread, so every thread shares one
        // breaker, as every request of a server does.
        let bare = Bare;
        let ours = palisade_default();
        let ours_count = palisade_count_window();
        let ours_consecutive = palisade_consecutive();
        let ours_keyed = palisade_keyed();
        let theirs = tower_resilience();
        let fs = failsafe();
        group.bench_function("bare", |b| {
            b.iter_custom(|n| per_call(&|| bare, threads, n))
        });
        group.bench_function("palisade/default", |b| {
            b.iter_custom(|n| per_call(&|| ours.clone(), threads, n))
        });
        group.bench_function("palisade/count-window", |b| {
            b.iter_custom(|n| per_call(&|| ours_count.clone(), threads, n))
        });
        group.bench_function("palisade/consecutive", |b| {
            b.iter_custom(|n| per_call(&|| ours_consecutive.clone(), threads, n))
        });
        group.bench_function("palisade/keyed-16", |b| {
            b.iter_custom(|n| per_call(&|| ours_keyed.clone(), threads, n))
        });
        group.bench_function("tower-resilience", |b| {
            b.iter_custom(|n| {
                let _guard = runtime.enter();
                per_call(&|| theirs.clone(), threads, n)
            })
        });
        group.bench_function("failsafe", |b| {
            b.iter_custom(|n| per_call(&|| fs.clone(), threads, n))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
