//! What the criterion benches share: the cheapest service, and a way to call it without a
//! runtime in the way.

use std::future::{Ready, ready};
use std::hint::black_box;
use std::task::{Context, Poll};

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
