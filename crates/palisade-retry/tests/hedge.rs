//! Hedged requests, in paused time, through the public API: when a hedge goes, what wins,
//! what is cancelled, and what stops hedging (the budget, the deadline, the request itself).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use palisade_core::Deadline;
use palisade_retry::budget::PercentBudget;
use palisade_retry::hedge::Hedge;
use palisade_retry::http::ReplayBody;
use palisade_retry::{DeadlineExceeded, HttpRetryLayer, RetryConfig, RetryLayer};
use tokio::time::Instant;
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

const MS: Duration = Duration::from_millis(1);

/// What one call does: answer (`Ok`) or fail (`Err`) after a while.
#[derive(Clone, Copy, Debug)]
enum Act {
    Answer(Duration),
    Fail(Duration),
}

/// The futures of a dependency that have not finished or been dropped.
#[derive(Clone, Default)]
struct Live(Arc<AtomicUsize>);

struct Guard(Live);

impl Live {
    fn enter(&self) -> Guard {
        self.0.fetch_add(1, Ordering::SeqCst);
        Guard(self.clone())
    }

    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A dependency whose n-th call does `act(n)`, answering with its call's number; the
/// instants of the calls, and its live futures.
#[allow(clippy::type_complexity)]
fn dependency_fn(
    act: impl Fn(usize) -> Act + Clone + Send + 'static,
) -> (
    impl Service<u32, Response = usize, Error = BoxError, Future = impl Send> + Clone,
    Arc<Mutex<Vec<Instant>>>,
    Live,
) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let live = Live::default();
    let (log, alive) = (calls.clone(), live.clone());
    let svc = service_fn(move |_: u32| {
        let n = {
            let mut calls = log.lock().unwrap();
            calls.push(Instant::now());
            calls.len() - 1
        };
        let act = act(n);
        let guard = alive.enter();
        async move {
            let _guard = guard;
            match act {
                Act::Answer(after) => {
                    tokio::time::sleep(after).await;
                    Ok(n)
                }
                Act::Fail(after) => {
                    tokio::time::sleep(after).await;
                    Err(BoxError::from("unavailable"))
                }
            }
        }
    });
    (svc, calls, live)
}

/// A dependency whose n-th call follows `script[n]`, the last repeating.
#[allow(clippy::type_complexity)]
fn dependency(
    script: Vec<Act>,
) -> (
    impl Service<u32, Response = usize, Error = BoxError, Future = impl Send> + Clone,
    Arc<Mutex<Vec<Instant>>>,
    Live,
) {
    let script = Arc::new(script);
    dependency_fn(move |n| script[n.min(script.len() - 1)])
}

fn hedged(hedge: Hedge, max_attempts: u32) -> RetryLayer {
    RetryLayer::with_config(
        RetryConfig::builder("hedged")
            .max_attempts(max_attempts)
            .hedge(hedge)
            .build()
            .unwrap(),
    )
}

fn since(start: Instant, calls: &Mutex<Vec<Instant>>) -> Vec<Duration> {
    calls.lock().unwrap().iter().map(|&t| t - start).collect()
}

#[tokio::test(start_paused = true)]
async fn a_slow_answer_is_raced_by_a_hedge_and_the_loser_is_cancelled() {
    let (dep, calls, live) = dependency(vec![Act::Answer(1000 * MS), Act::Answer(10 * MS)]);
    let svc = hedged(Hedge::after(50 * MS), 2).layer(dep);
    let start = Instant::now();
    assert_eq!(svc.oneshot(1).await.unwrap(), 1, "the hedge's answer");
    assert_eq!(start.elapsed(), 60 * MS);
    assert_eq!(since(start, &calls), [Duration::ZERO, 50 * MS]);
    assert_eq!(live.count(), 0, "the slow attempt's future was dropped");
}

#[tokio::test(start_paused = true)]
async fn an_answer_before_the_delay_sends_nothing_more() {
    let (dep, calls, _) = dependency(vec![Act::Answer(10 * MS)]);
    let mut svc = hedged(Hedge::after(50 * MS), 3).layer(dep);
    for _ in 0..3 {
        svc.ready().await.unwrap().call(1).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(calls.lock().unwrap().len(), 3, "one call a request");
}

#[tokio::test(start_paused = true)]
async fn hedges_go_one_delay_apart_up_to_the_attempts() {
    let (dep, calls, live) = dependency(vec![Act::Answer(1000 * MS)]);
    let svc = hedged(Hedge::after(50 * MS), 3).layer(dep);
    let start = Instant::now();
    assert_eq!(
        svc.oneshot(1).await.unwrap(),
        0,
        "the first attempt answers first"
    );
    assert_eq!(since(start, &calls), [Duration::ZERO, 50 * MS, 100 * MS]);
    assert_eq!(live.count(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_empty_budget_stops_hedging() {
    let (dep, calls, _) = dependency(vec![Act::Answer(200 * MS)]);
    let empty = PercentBudget::new(Duration::from_secs(10), 0, 0.0).unwrap();
    let svc = hedged(Hedge::after(50 * MS), 3)
        .with_budget(empty)
        .layer(dep);
    let start = Instant::now();
    assert_eq!(svc.oneshot(1).await.unwrap(), 0);
    assert_eq!(start.elapsed(), 200 * MS, "the first attempt, waited for");
    assert_eq!(calls.lock().unwrap().len(), 1, "no hedge");
}

#[tokio::test(start_paused = true)]
async fn when_every_request_is_slow_hedges_stay_within_their_share() {
    // An overload: every answer is slower than the delay. The retry budget would allow
    // every hedge; the hedges' own share does not: 10 % of the answered requests, and 10
    // more.
    let (dep, calls, _) = dependency(vec![Act::Answer(100 * MS)]);
    let svc = hedged(Hedge::after(10 * MS), 2)
        .with_budget(PercentBudget::new(Duration::from_secs(10), 1000, 1.0).unwrap())
        .layer(dep);
    let mut answers = Vec::new();
    for _ in 0..200 {
        answers.push(tokio::spawn(svc.clone().oneshot(1)));
        tokio::time::sleep(5 * MS).await;
    }
    for answer in answers {
        answer.await.unwrap().unwrap();
    }
    let hedges = calls.lock().unwrap().len() - 200;
    assert!(
        (20..=30).contains(&hedges),
        "{hedges} hedges for 200 requests"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failure_sends_the_next_attempt_at_once() {
    let (dep, calls, _) = dependency(vec![Act::Fail(5 * MS), Act::Answer(10 * MS)]);
    let svc = hedged(Hedge::after(50 * MS), 2).layer(dep);
    let start = Instant::now();
    assert_eq!(svc.oneshot(1).await.unwrap(), 1);
    assert_eq!(since(start, &calls), [Duration::ZERO, 5 * MS], "no backoff");
}

#[tokio::test(start_paused = true)]
async fn when_every_attempt_fails_the_last_failure_is_returned() {
    let (dep, calls, live) = dependency(vec![Act::Fail(100 * MS)]);
    let svc = hedged(Hedge::after(10 * MS), 3).layer(dep);
    let error = svc.oneshot(1).await.unwrap_err();
    assert_eq!(error.to_string(), "unavailable");
    assert_eq!(calls.lock().unwrap().len(), 3);
    assert_eq!(live.count(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_attempt_timeout_cuts_one_attempt_and_sends_the_next() {
    let (dep, calls, live) = dependency(vec![Act::Answer(1000 * MS), Act::Answer(5 * MS)]);
    let config = RetryConfig::builder("hedged")
        .max_attempts(2)
        .attempt_timeout(20 * MS)
        .hedge(Hedge::after(50 * MS))
        .build()
        .unwrap();
    let svc = RetryLayer::with_config(config).layer(dep);
    let start = Instant::now();
    assert_eq!(svc.oneshot(1).await.unwrap(), 1);
    assert_eq!(since(start, &calls), [Duration::ZERO, 20 * MS]);
    assert_eq!(live.count(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_adaptive_delay_is_the_percentile_of_recent_latency() {
    // 2 % of answers are slow: the 95th percentile is the fast ones' 5 ms. Then one call
    // (the first after `hang_at`) hangs.
    let hang_at = Arc::new(AtomicUsize::new(usize::MAX));
    let at = hang_at.clone();
    let (dep, calls, _) = dependency_fn(move |n| {
        if n == at.load(Ordering::SeqCst) {
            Act::Answer(1000 * MS)
        } else if n % 50 == 0 {
            Act::Answer(100 * MS)
        } else {
            Act::Answer(5 * MS)
        }
    });
    let svc = hedged(Hedge::at_percentile(0.95), 2)
        .with_budget(PercentBudget::new(Duration::from_secs(10), 1000, 0.2).unwrap())
        .layer(dep);
    let mut answers = Vec::new();
    for _ in 0..400 {
        answers.push(tokio::spawn(svc.clone().oneshot(1)));
        tokio::time::sleep(MS).await;
    }
    for answer in answers {
        answer.await.unwrap().unwrap();
    }
    let before = calls.lock().unwrap().len();
    assert!(
        before - 400 <= 8,
        "about one hedge per slow answer: {before}"
    );
    // A request whose first attempt hangs is hedged after about 5 ms, not the 1 s cap.
    hang_at.store(before, Ordering::SeqCst);
    let start = Instant::now();
    svc.oneshot(1).await.unwrap();
    let gap = since(start, &calls)[before + 1];
    assert!(gap >= 5 * MS && gap <= 6 * MS, "{gap:?}");
}

// --- deadlines -------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_hedged_call_ends_at_the_inherited_deadline() {
    let (dep, calls, live) = dependency(vec![Act::Answer(1000 * MS)]);
    let svc = hedged(Hedge::after(50 * MS), 3).layer(dep);
    let start = Instant::now();
    let error = Deadline::after(30 * MS)
        .scope(svc.oneshot(1))
        .await
        .unwrap_err();
    let exceeded = error.downcast_ref::<DeadlineExceeded>().unwrap();
    assert_eq!(exceeded.deadline(), 30 * MS);
    assert_eq!(start.elapsed(), 30 * MS);
    assert_eq!(
        calls.lock().unwrap().len(),
        1,
        "no hedge after the deadline"
    );
    assert_eq!(live.count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_retry_obeys_the_inherited_deadline_too() {
    let (dep, calls, _) = dependency(vec![Act::Fail(10 * MS)]);
    let config = RetryConfig::builder("retried")
        .max_attempts(5)
        .backoff(
            palisade_retry::backoff::Backoff::exponential(40 * MS, Duration::from_secs(1))
                .jitter(palisade_retry::backoff::Jitter::None),
        )
        .build()
        .unwrap();
    let svc = RetryLayer::with_config(config).layer(dep);
    let start = Instant::now();
    // 10 ms, 40 ms of backoff, 10 ms: a second backoff of 80 ms would end after 100 ms.
    let error = Deadline::after(100 * MS)
        .scope(svc.oneshot(1))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "unavailable",
        "the last failure, not a timeout"
    );
    assert_eq!(since(start, &calls), [Duration::ZERO, 50 * MS]);
}

#[tokio::test(start_paused = true)]
async fn no_retry_is_started_that_could_not_finish_before_the_deadline() {
    // Each attempt fails after 40 ms. With 100 ms, a second attempt starts at 45 ms and
    // ends at 85; a third would start at 90 and need until 130: it is not sent.
    let (dep, calls, _) = dependency(vec![Act::Fail(40 * MS)]);
    let config = RetryConfig::builder("retried")
        .max_attempts(5)
        .backoff(
            palisade_retry::backoff::Backoff::exponential(5 * MS, 5 * MS)
                .jitter(palisade_retry::backoff::Jitter::None),
        )
        .build()
        .unwrap();
    let svc = RetryLayer::with_config(config).layer(dep);
    let start = Instant::now();
    let error = Deadline::after(100 * MS)
        .scope(svc.oneshot(1))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "unavailable",
        "the last failure, at once"
    );
    assert_eq!(
        start.elapsed(),
        85 * MS,
        "not left to run into the deadline"
    );
    assert_eq!(since(start, &calls), [Duration::ZERO, 45 * MS]);
}

#[tokio::test(start_paused = true)]
async fn no_hedge_is_sent_that_the_typical_attempt_could_not_finish() {
    let mut script = vec![Act::Answer(3 * MS); 300];
    script.push(Act::Answer(1000 * MS));
    let (dep, calls, _) = dependency(script);
    let svc = hedged(Hedge::after(4 * MS), 2)
        .with_budget(PercentBudget::new(Duration::from_secs(10), 1000, 0.2).unwrap())
        .layer(dep);
    for _ in 0..300 {
        svc.clone().oneshot(1).await.unwrap();
    }
    // 4 ms in, 2 ms are left: less than the median 3 ms. No hedge.
    let error = Deadline::after(6 * MS)
        .scope(svc.oneshot(1))
        .await
        .unwrap_err();
    assert!(error.is::<DeadlineExceeded>());
    assert_eq!(calls.lock().unwrap().len(), 301);
}

// --- HTTP: only what is safe to send twice -------------------------------------------------

type Bodies = Arc<Mutex<Vec<(Option<String>, Bytes)>>>;

/// An HTTP dependency whose first call hangs and later ones answer at once; it records each
/// call's `Idempotency-Key` and body.
#[allow(clippy::type_complexity)]
fn http_dependency() -> (
    impl Service<
        Request<ReplayBody<Full<Bytes>>>,
        Response = Response<()>,
        Error = BoxError,
        Future = impl Send,
    > + Clone,
    Bodies,
) {
    let seen: Bodies = Arc::default();
    let log = seen.clone();
    let svc = service_fn(move |req: Request<ReplayBody<Full<Bytes>>>| {
        let log = log.clone();
        async move {
            let key = req
                .headers()
                .get("idempotency-key")
                .map(|k| k.to_str().unwrap().to_owned());
            let body = req.into_body().collect().await?.to_bytes();
            let n = {
                let mut seen = log.lock().unwrap();
                seen.push((key, body));
                seen.len()
            };
            if n == 1 {
                std::future::pending::<()>().await;
            }
            Ok::<_, BoxError>(Response::new(()))
        }
    });
    (svc, seen)
}

fn post() -> Request<Full<Bytes>> {
    Request::post("http://dependency/orders")
        .body(Full::new(Bytes::from_static(b"{\"sku\": 42}")))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_post_is_hedged_only_with_an_idempotency_key_and_its_body_is_replayed() {
    let config = |keys| {
        RetryConfig::builder("hedged")
            .max_attempts(2)
            .hedge(Hedge::after(50 * MS))
            .idempotency_keys(keys)
            .build()
            .unwrap()
    };
    let (dep, seen) = http_dependency();
    let svc = HttpRetryLayer::with_config(config(false)).layer(dep);
    let unkeyed = tokio::time::timeout(Duration::from_secs(1), svc.oneshot(post())).await;
    assert!(unkeyed.is_err(), "a bare POST is sent once, and hangs");
    assert_eq!(seen.lock().unwrap().len(), 1);

    let (dep, seen) = http_dependency();
    let svc = HttpRetryLayer::with_config(config(true)).layer(dep);
    svc.oneshot(post()).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "hedged");
    assert!(seen[0].0.is_some());
    assert_eq!(seen[0].0, seen[1].0, "one key: one operation to the server");
    assert_eq!(seen[1].1, Bytes::from_static(b"{\"sku\": 42}"));
}

#[tokio::test(start_paused = true)]
async fn a_body_over_the_replay_limit_is_not_hedged() {
    let config = RetryConfig::builder("hedged")
        .max_attempts(2)
        .hedge(Hedge::after(50 * MS))
        .replay_limit(4)
        .build()
        .unwrap();
    let (dep, seen) = http_dependency();
    let svc = HttpRetryLayer::with_config(config).layer(dep);
    let put = Request::put("http://dependency/orders/1")
        .body(Full::new(Bytes::from_static(b"too long to keep")))
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(1), svc.oneshot(put)).await;
    assert!(answer.is_err(), "sent once, and it hangs");
    assert_eq!(seen.lock().unwrap().len(), 1);
}
