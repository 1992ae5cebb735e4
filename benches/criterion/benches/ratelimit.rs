//! The rate limiter's admit path (no request refused: the common case), beside governor
//! used directly, tower_governor's layer and tower's `RateLimit`.
//!
//! - `generic`: `u64` requests through `RateLimitLayer` over the cheapest service, one key
//!   (global, or one keyed key) and 10 000 keys, beside governor's `check` / `check_key`
//!   wrapped as the same service, and tower's `RateLimit` (global only).
//! - `http`: `http::Request`s keyed by the peer address (axum's `ConnectInfo`) through
//!   `HttpRateLimitLayer` (with and without the `RateLimit` fields on admitted responses)
//!   and tower_governor's `GovernorLayer` with its `PeerIpKeyExtractor`; `bare` makes the
//!   same requests and responses with no layer.
//!
//! Each on 1 and 2 threads (2 threads: the time per call of each).
//!
//! `cargo bench -p palisade-criterion --bench ratelimit`

mod support;

use std::future::{Ready, ready};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use criterion::{Criterion, criterion_group, criterion_main};
use governor::{Quota as GovernorQuota, RateLimiter};
use http::{Request, Response};
use palisade_ratelimit::http::KeySource;
use palisade_ratelimit::{HttpRateLimitLayer, Policy, Quota, RateLimitConfig, RateLimitLayer};
use tower::{Layer, Service};

use crate::support::{Bare, call_once};

const KEYS: u64 = 10_000;

/// A quota no benchmark reaches: a request a nanosecond, bursts of four billion.
fn quota() -> Quota {
    Quota::new(1_000_000_000, Duration::from_secs(1)).burst(u32::MAX)
}

fn governor_quota() -> GovernorQuota {
    GovernorQuota::with_period(Duration::from_nanos(1))
        .unwrap()
        .allow_burst(NonZeroU32::MAX)
}

fn config(key: Option<KeySource>, headers: bool) -> RateLimitConfig {
    let policy = Policy::new("bench", quota()).max_keys(2 * KEYS as usize);
    let policy = match key {
        Some(key) => policy.key(key),
        None => policy,
    };
    RateLimitConfig::builder("bench")
        .policy(policy)
        .headers_on_success(headers)
        .build()
        .unwrap()
}

/// A limiter checked before the same cheapest service: what a limit costs used directly.
struct Checked<F> {
    admit: Arc<F>,
}

impl<F> Clone for Checked<F> {
    fn clone(&self) -> Self {
        Self {
            admit: self.admit.clone(),
        }
    }
}

impl<F: Fn(u64) -> bool> Service<u64> for Checked<F> {
    type Response = u64;
    type Error = std::io::Error;
    type Future = Ready<Result<u64, std::io::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u64) -> Self::Future {
        ready(if (self.admit)(req) {
            Ok(req)
        } else {
            Err(std::io::Error::other("limited"))
        })
    }
}

/// governor's direct limiter, checked before the cheapest service.
fn governor_direct() -> Checked<impl Fn(u64) -> bool + Send + Sync> {
    let limiter = RateLimiter::direct(governor_quota());
    Checked {
        admit: Arc::new(move |_| limiter.check().is_ok()),
    }
}

/// governor's keyed limiter over `keys` keys, checked before the cheapest service.
fn governor_keyed(keys: u64) -> Checked<impl Fn(u64) -> bool + Send + Sync> {
    let limiter = RateLimiter::keyed(governor_quota());
    Checked {
        admit: Arc::new(move |req| limiter.check_key(&(req % keys)).is_ok()),
    }
}

/// The cheapest HTTP service: an empty response.
#[derive(Clone, Copy)]
struct BareHttp;

impl<B> Service<Request<B>> for BareHttp {
    type Response = Response<axum::body::Body>;
    type Error = std::convert::Infallible;
    type Future = Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<B>) -> Self::Future {
        ready(Ok(Response::new(axum::body::Body::empty())))
    }
}

/// A request from peer `i % keys`, as axum hands it over.
fn request(i: u64, keys: u64) -> Request<()> {
    let n = (i % keys) as u32;
    let mut request = Request::new(());
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | n)), 40_000);
    request.extensions_mut().insert(ConnectInfo(addr));
    request
}

/// `iters` calls of `make_request(i)` on `threads` threads, each with its own clone of the
/// service: the wall time of the slowest thread.
fn run<S, Req>(
    svc: &S,
    make_request: impl Fn(u64) -> Req + Sync,
    threads: u64,
    iters: u64,
) -> Duration
where
    S: Service<Req> + Clone + Send + Sync,
{
    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let mut svc = svc.clone();
            let make_request = &make_request;
            scope.spawn(move || {
                let mut cx = Context::from_waker(Waker::noop());
                // Each thread its own keys: threads meet on the limiter, not on one key.
                let offset = t * 7919;
                for i in 0..iters {
                    let request = make_request(i + offset);
                    assert!(svc.poll_ready(&mut cx).is_ready());
                    let fut = svc.call(request);
                    let mut fut = std::pin::pin!(fut);
                    match fut.as_mut().poll(&mut cx) {
                        Poll::Ready(r) => {
                            std::hint::black_box(r.is_ok());
                        }
                        Poll::Pending => unreachable!("every service here answers at once"),
                    }
                }
            });
        }
    });
    start.elapsed()
}

fn generic(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    for threads in [1, 2] {
        let mut group = c.benchmark_group(format!("ratelimit/generic/{threads}-thread"));
        let _guard = runtime.enter();
        let ours_global = RateLimitLayer::with_config(config(None, false)).layer(Bare);
        let governor_direct = governor_direct();
        group.bench_function("bare", |b| b.iter_custom(|n| run(&Bare, |i| i, threads, n)));
        group.bench_function("palisade/global", |b| {
            b.iter_custom(|n| run(&ours_global, |i| i, threads, n))
        });
        group.bench_function("governor/direct", |b| {
            b.iter_custom(|n| run(&governor_direct, |i| i, threads, n))
        });
        if threads == 1 {
            // tower's RateLimit is neither `Clone` nor `Sync` (it holds a `Sleep`): one
            // thread only.
            group.bench_function("tower/rate-limit", |b| {
                b.iter_custom(|n| {
                    let rate = tower::limit::rate::Rate::new(u64::MAX, Duration::from_secs(1));
                    let mut svc = tower::limit::RateLimit::new(Bare, rate);
                    let mut cx = Context::from_waker(Waker::noop());
                    let start = Instant::now();
                    for i in 0..n {
                        call_once(&mut svc, &mut cx, i);
                    }
                    start.elapsed()
                })
            });
        }
        for keys in [1, KEYS] {
            let ours = RateLimitLayer::with_config(config(None, false))
                .key_fn(move |n: &u64| *n % keys)
                .layer(Bare);
            let theirs = governor_keyed(keys);
            group.bench_function(format!("palisade/keyed-{keys}"), |b| {
                b.iter_custom(|n| run(&ours, |i| i, threads, n))
            });
            group.bench_function(format!("governor/keyed-{keys}"), |b| {
                b.iter_custom(|n| run(&theirs, |i| i, threads, n))
            });
        }
        group.finish();
    }
}

fn http(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    let _guard = runtime.enter();
    for threads in [1, 2] {
        let mut group = c.benchmark_group(format!("ratelimit/http/{threads}-thread"));
        for keys in [1, KEYS] {
            let make = move |i| request(i, keys);
            group.bench_function(format!("bare/keys-{keys}"), |b| {
                b.iter_custom(|n| run(&BareHttp, make, threads, n))
            });
            let ours = HttpRateLimitLayer::with_config(config(Some(KeySource::peer()), false))
                .layer(BareHttp);
            group.bench_function(format!("palisade/keys-{keys}"), |b| {
                b.iter_custom(|n| run(&ours, make, threads, n))
            });
            let ours_fields =
                HttpRateLimitLayer::with_config(config(Some(KeySource::peer()), true))
                    .layer(BareHttp);
            group.bench_function(format!("palisade-with-fields/keys-{keys}"), |b| {
                b.iter_custom(|n| run(&ours_fields, make, threads, n))
            });
            let governor_config = tower_governor::governor::GovernorConfigBuilder::default()
                .per_nanosecond(1)
                .burst_size(u32::MAX)
                .finish()
                .unwrap();
            let theirs = tower_governor::GovernorLayer::new(governor_config).layer(BareHttp);
            group.bench_function(format!("tower_governor/keys-{keys}"), |b| {
                b.iter_custom(|n| run(&theirs, make, threads, n))
            });
        }
        group.finish();
    }
}

fn bench(c: &mut Criterion) {
    let runtime = support::runtime();
    generic(c, &runtime);
    http(c, &runtime);
}

criterion_group!(benches, bench);
criterion_main!(benches);
