//! What the client examples' tests share: three servers, one failing, and a server taken
//! out of discovery.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

/// After 300 requests: both healthy servers served, and the failing one was left nearly
/// idle (the balancer's failure penalty and ejection, with retries elsewhere).
pub(crate) fn assert_failing_server_avoided(a: &AtomicUsize, b: &AtomicUsize, bad: &AtomicUsize) {
    let (a, b, bad) = (a.load(Relaxed), b.load(Relaxed), bad.load(Relaxed));
    assert!(a > 50 && b > 50, "both healthy servers serve: {a} and {b}");
    assert!(
        bad <= 15,
        "the failing server is left nearly idle: {bad} of 300"
    );
}

/// Sends `batch` after `batch` until one reaches the removed server no more; panics after
/// 20 s (discovery that never follows).
pub(crate) async fn until_removed_server_idle(removed: &AtomicUsize, mut batch: impl AsyncFnMut()) {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let before = removed.load(Relaxed);
            batch().await;
            if removed.load(Relaxed) == before {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("discovery takes the server out within 20 s");
}
