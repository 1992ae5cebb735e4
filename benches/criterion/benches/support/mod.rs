//! What the criterion benches share: the cheapest service, and ways to call it without a
//! runtime in the way.

use std::future::{Ready, ready};
use std::hint::black_box;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tower::Service;

/// The cheapest possible service: answers at once, never fails.
#[derive(Clone, Copy)]
pub(crate) struct Bare;

impl Service<u64> for Bare {
    type Response = u64;
    type Error = std::io::Error;
    type Future = Ready<Result<u64, std::io::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u64) -> Self::Future {
        ready(Ok(req))
    }
}

/// Calls `svc` once and polls its future on this thread to the end.
pub(crate) fn call_once<S: Service<u64>>(svc: &mut S, cx: &mut Context<'_>, i: u64) {
    assert!(svc.poll_ready(cx).is_ready());
    let fut = svc.call(i);
    let mut fut = std::pin::pin!(fut);
    // Every service here answers at once unless it waits on a lock another thread holds
    // (tower-resilience's breaker does, under contention): poll again until it is done, as
    // an executor would after the wake.
    loop {
        match fut.as_mut().poll(cx) {
            Poll::Ready(r) => {
                black_box(r.is_ok());
                return;
            }
            Poll::Pending => std::thread::yield_now(),
        }
    }
}

/// Runs `iters` calls split over `threads` threads and returns the time per call per thread
/// (the wall time of the slowest thread divided by its calls).
#[allow(
    dead_code,
    reason = "the benches that run on one thread only do not use it"
)]
pub(crate) fn per_call<S>(make: &(impl Fn() -> S + Sync), threads: u64, iters: u64) -> Duration
where
    S: Service<u64> + Send,
{
    let per_thread = iters.max(1);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut svc = make();
                let mut cx = Context::from_waker(std::task::Waker::noop());
                for i in 0..per_thread {
                    call_once(&mut svc, &mut cx, i);
                }
            });
        }
    });
    start.elapsed()
}

/// A runtime for the bench thread to enter, for the layers that read tokio's clock.
#[allow(dead_code)]
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}
