//! Admission, the queue, priorities, cancellation and the adaptive limits, in paused time,
//! through the public API.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use palisade_shed::limit::{Aimd, Fixed, Gradient};
use palisade_shed::priority::{Priority, priority_fn};
use palisade_shed::{Overloaded, Queue, Reason, ShedConfig, ShedLayer};
use tokio::sync::oneshot;
use tokio::time::{Instant, advance, sleep};
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

const MS: Duration = Duration::from_millis(1);

type Call = Pin<Box<dyn Future<Output = Result<(), BoxError>>>>;

/// A request: its priority, and the signal that finishes it.
struct Req {
    priority: Priority,
    done: oneshot::Receiver<()>,
}

/// A shedder in front of a service whose calls run until the test finishes them.
fn shed(
    config: ShedConfig,
) -> (
    impl Service<Req, Response = (), Error = BoxError, Future: 'static>,
    palisade_shed::ShedHandle,
) {
    let layer = ShedLayer::with_config(config).priority(priority_fn(|r: &Req| r.priority));
    let handle = layer.handle();
    let svc = layer.layer(service_fn(|req: Req| async move {
        let _ = req.done.await;
        Ok::<_, BoxError>(())
    }));
    (svc, handle)
}

/// Starts a call (admission is decided in `call`); returns it with the sender that
/// finishes it.
fn start<S>(svc: &mut S, priority: Priority) -> (Call, oneshot::Sender<()>)
where
    S: Service<Req, Response = (), Error = BoxError>,
    S::Future: 'static,
{
    let (finish, done) = oneshot::channel();
    let call: Call = Box::pin(svc.call(Req { priority, done }));
    (call, finish)
}

fn poll(call: &mut Call) -> Poll<Result<(), BoxError>> {
    call.as_mut().poll(&mut Context::from_waker(Waker::noop()))
}

fn refusal(result: Poll<Result<(), BoxError>>) -> Option<Reason> {
    match result {
        Poll::Ready(Err(e)) => Some(e.downcast_ref::<Overloaded>().expect("Overloaded").reason()),
        _ => None,
    }
}

fn fixed(limit: usize) -> palisade_shed::ShedConfigBuilder {
    ShedConfig::builder("test").limit(Fixed(limit))
}

#[tokio::test(start_paused = true)]
async fn at_the_limit_a_request_is_refused_at_once_without_a_queue() {
    let (mut svc, handle) = shed(fixed(2).no_queue().build().unwrap());
    let (_a, finish_a) = start(&mut svc, Priority::Critical);
    let (_b, _finish_b) = start(&mut svc, Priority::Critical);
    assert_eq!(handle.inflight(), 2);
    let (mut c, _) = start(&mut svc, Priority::Critical);
    assert_eq!(refusal(poll(&mut c)), Some(Reason::Limit));

    finish_a.send(()).unwrap();
    let mut a = _a;
    assert!(matches!(poll(&mut a), Poll::Ready(Ok(()))));
    assert_eq!(handle.inflight(), 1, "a finished request frees its slot");
    let (mut d, _finish_d) = start(&mut svc, Priority::Critical);
    assert!(poll(&mut d).is_pending(), "admitted, running");
}

#[tokio::test(start_paused = true)]
async fn a_queued_request_gets_the_next_free_slot() {
    let (mut svc, handle) = shed(fixed(1).build().unwrap());
    let (mut a, finish_a) = start(&mut svc, Priority::Default);
    let (mut b, finish_b) = start(&mut svc, Priority::Default);
    assert_eq!(handle.queued(), 1);
    assert!(poll(&mut b).is_pending());

    finish_a.send(()).unwrap();
    assert!(matches!(poll(&mut a), Poll::Ready(Ok(()))));
    assert_eq!(handle.queued(), 0);
    assert_eq!(handle.inflight(), 1, "the slot went straight to the waiter");
    finish_b.send(()).unwrap();
    assert!(matches!(poll(&mut b), Poll::Ready(Ok(()))));
    assert_eq!(handle.inflight(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_queue_wait_is_long_while_the_queue_drains_and_short_under_a_standing_queue() {
    let (mut svc, _handle) = shed(fixed(1).build().unwrap());
    let (_running, _keep) = start(&mut svc, Priority::Default);

    // The queue was empty just now: a waiter may wait the whole interval, 100 ms.
    let (mut first, _) = start(&mut svc, Priority::Default);
    advance(50 * MS).await;
    // Another joins at 50 ms; the queue emptied 50 ms ago: 100 ms for it too.
    let (mut second, _) = start(&mut svc, Priority::Default);
    advance(49 * MS).await;
    assert!(poll(&mut first).is_pending());
    advance(MS).await;
    assert_eq!(refusal(poll(&mut first)), Some(Reason::QueueTimeout));

    // At 101 ms the queue has not been empty since 0: a standing queue. A newcomer may wait
    // only 5 ms, and the one before it keeps its 100 ms.
    advance(MS).await;
    let (mut third, _) = start(&mut svc, Priority::Default);
    advance(4 * MS).await;
    assert!(poll(&mut third).is_pending());
    advance(MS).await;
    assert_eq!(refusal(poll(&mut third)), Some(Reason::QueueTimeout));
    assert!(poll(&mut second).is_pending());
    advance(44 * MS).await;
    assert_eq!(refusal(poll(&mut second)), Some(Reason::QueueTimeout));
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_refuses_and_sheddable_requests_never_wait() {
    let queue = Queue {
        max_len: 1,
        ..Queue::default()
    };
    let (mut svc, _) = shed(fixed(1).queue(queue).build().unwrap());
    let (_running, _keep) = start(&mut svc, Priority::Critical);
    let (mut waiting, _) = start(&mut svc, Priority::Default);
    assert!(poll(&mut waiting).is_pending());
    let (mut full, _) = start(&mut svc, Priority::Default);
    assert_eq!(refusal(poll(&mut full)), Some(Reason::QueueFull));

    let (mut svc, _) = shed(fixed(4).build().unwrap());
    let held: Vec<_> = (0..2)
        .map(|_| start(&mut svc, Priority::Sheddable))
        .collect();
    let (mut shed_at_half, _) = start(&mut svc, Priority::Sheddable);
    assert_eq!(
        refusal(poll(&mut shed_at_half)),
        Some(Reason::Limit),
        "sheddable requests may use half the limit, and do not queue"
    );
    drop(held);
}

#[tokio::test(start_paused = true)]
async fn lower_priorities_are_refused_first_and_critical_keeps_its_share() {
    let (mut svc, handle) = shed(fixed(10).no_queue().build().unwrap());
    let mut held = Vec::new();
    // Sheddable requests stop at 5 of 10.
    for _ in 0..5 {
        held.push(start(&mut svc, Priority::Sheddable));
    }
    let (mut s, _) = start(&mut svc, Priority::Sheddable);
    assert_eq!(refusal(poll(&mut s)), Some(Reason::Limit));
    // Default requests stop at 9 of 10.
    for _ in 0..4 {
        held.push(start(&mut svc, Priority::Default));
    }
    let (mut d, _) = start(&mut svc, Priority::Default);
    assert_eq!(refusal(poll(&mut d)), Some(Reason::Limit));
    // The last slot is the critical share.
    let (mut c, _keep) = start(&mut svc, Priority::Critical);
    assert!(poll(&mut c).is_pending());
    assert_eq!(handle.inflight(), 10);
    held.clear();
    assert_eq!(handle.inflight(), 1, "dropped calls gave their slots back");
}

#[tokio::test(start_paused = true)]
async fn thousands_of_cancellations_leak_no_slot() {
    let (mut svc, handle) = shed(fixed(5).build().unwrap());
    for round in 0..2_000 {
        // Five running, three waiting; then the clients go away, in a different order
        // each round, some after a wait.
        let mut calls: Vec<_> = (0..8)
            .map(|i| {
                let priority = if i % 3 == 0 {
                    Priority::Critical
                } else {
                    Priority::Default
                };
                start(&mut svc, priority)
            })
            .collect();
        if round % 2 == 0 {
            calls.reverse();
        }
        if round % 7 == 0 {
            advance(3 * MS).await;
        }
        for (call, _finish) in calls.drain(..) {
            drop(call);
        }
        if round % 11 == 0 {
            advance(200 * MS).await;
        }
    }
    assert_eq!(handle.inflight(), 0);
    let (mut fresh, _f) = start(&mut svc, Priority::Default);
    assert!(poll(&mut fresh).is_pending());
    assert_eq!(handle.inflight(), 1, "admitted at once");
    assert_eq!(handle.queued(), 0);
}

/// A closed-loop load of `clients` clients on a service whose latency the test sets; a
/// refused client backs off 5 ms. Returns the handle to read the limit.
fn loaded(
    config: ShedConfig,
    clients: usize,
    latency_ms: Arc<AtomicU64>,
) -> palisade_shed::ShedHandle {
    let layer = ShedLayer::with_config(config);
    let handle = layer.handle();
    let svc = layer.layer(service_fn(move |()| {
        let latency = Duration::from_millis(latency_ms.load(SeqCst));
        async move {
            sleep(latency).await;
            Ok::<_, std::io::Error>(())
        }
    }));
    for _ in 0..clients {
        let svc = svc.clone();
        tokio::spawn(async move {
            loop {
                if svc.clone().oneshot(()).await.is_err() {
                    sleep(5 * MS).await;
                }
            }
        });
    }
    handle
}

#[tokio::test(start_paused = true)]
async fn aimd_grows_while_fast_and_backs_off_when_slow() {
    let latency = Arc::new(AtomicU64::new(10));
    let aimd = Aimd::new(2, 10, 100, Duration::from_millis(50)).unwrap();
    let config = ShedConfig::builder("test")
        .limit(aimd)
        .no_queue()
        .build()
        .unwrap();
    let handle = loaded(config, 200, latency.clone());
    sleep(Duration::from_secs(2)).await;
    let grown = handle.limit();
    assert!(
        grown > 50,
        "fast and busy: grows by one per request, to {grown}"
    );

    latency.store(80, SeqCst);
    sleep(Duration::from_secs(2)).await;
    assert!(
        handle.limit() < 10,
        "slow: × 0.9 per request, to {}",
        handle.limit()
    );
}

#[tokio::test(start_paused = true)]
async fn the_gradient_limit_falls_when_latency_rises_and_recovers_when_it_falls() {
    let latency = Arc::new(AtomicU64::new(10));
    let config = ShedConfig::builder("test")
        .limit(Gradient::default().jitter_seed(7))
        .no_queue()
        .build()
        .unwrap();
    let handle = loaded(config, 100, latency.clone());
    sleep(Duration::from_secs(3)).await;
    let unloaded = handle.limit();
    assert!(
        unloaded > 40,
        "10 ms at every concurrency: grows, to {unloaded}"
    );

    // Latency triples: the server is queueing.
    latency.store(30, SeqCst);
    sleep(Duration::from_secs(2)).await;
    let slowed = handle.limit();
    assert!(slowed < unloaded / 2, "fell from {unloaded} to {slowed}");

    latency.store(10, SeqCst);
    sleep(Duration::from_secs(3)).await;
    let recovered = handle.limit();
    assert!(
        recovered > unloaded / 2,
        "recovered from {slowed} to {recovered}"
    );
    let _ = Instant::now();
}

#[tokio::test(start_paused = true)]
async fn gradient_measures_min_rtt_again_and_follows_a_slower_server() {
    // The server becomes permanently slower (a smaller host): after the next min-RTT
    // measurement the limit grows again instead of staying pinned low.
    let latency = Arc::new(AtomicU64::new(10));
    let gradient = Gradient::default()
        .jitter_seed(7)
        .min_rtt_interval(Duration::from_secs(5))
        .unwrap();
    let config = ShedConfig::builder("test")
        .limit(gradient)
        .no_queue()
        .build()
        .unwrap();
    let handle = loaded(config, 100, latency.clone());
    sleep(Duration::from_secs(3)).await;
    latency.store(40, SeqCst);
    sleep(Duration::from_millis(500)).await;
    // Before the next measurement (due 4.5 to 5.5 s after the first): squeezed.
    let squeezed = highest_limit(&handle, Duration::from_millis(900)).await;
    sleep(Duration::from_secs(8)).await;
    // Well after it: the limit has grown again. (Highest over a while, because a
    // measurement pins it to the minimum for a moment.)
    let regrown = highest_limit(&handle, Duration::from_secs(2)).await;
    assert!(
        regrown > 2 * squeezed,
        "re-measured: {regrown} after {squeezed}"
    );
}

/// The highest limit seen over `period`, sampled every 10 ms.
async fn highest_limit(handle: &palisade_shed::ShedHandle, period: Duration) -> usize {
    let end = Instant::now() + period;
    let mut highest = 0;
    while Instant::now() < end {
        highest = highest.max(handle.limit());
        sleep(10 * MS).await;
    }
    highest
}

#[tokio::test(start_paused = true)]
async fn waiting_default_requests_never_take_the_critical_share() {
    let (mut svc, handle) = shed(fixed(10).build().unwrap());
    let mut calls: Vec<_> = (0..10)
        .map(|_| start(&mut svc, Priority::Default))
        .collect();
    assert_eq!(handle.inflight(), 9, "default requests stop at 90 %");
    assert_eq!(handle.queued(), 1);
    let (mut critical, _keep) = start(&mut svc, Priority::Critical);
    assert!(poll(&mut critical).is_pending());
    assert_eq!(
        handle.inflight(),
        10,
        "the reserved slot went to the critical request"
    );
    calls.clear();
}

#[tokio::test(start_paused = true)]
async fn a_critical_request_takes_the_place_of_a_default_one_in_a_full_queue() {
    let queue = Queue {
        max_len: 1,
        ..Queue::default()
    };
    let (mut svc, handle) = shed(fixed(1).queue(queue).build().unwrap());
    let (mut running, finish) = start(&mut svc, Priority::Critical);
    let (mut default, _) = start(&mut svc, Priority::Default);
    assert!(poll(&mut default).is_pending());
    let (mut critical, _keep) = start(&mut svc, Priority::Critical);
    assert_eq!(
        refusal(poll(&mut default)),
        Some(Reason::QueueFull),
        "displaced"
    );
    assert!(poll(&mut critical).is_pending());
    assert_eq!(handle.queued(), 1);

    finish.send(()).unwrap();
    assert!(matches!(poll(&mut running), Poll::Ready(Ok(()))));
    assert!(poll(&mut critical).is_pending(), "running now");
    assert_eq!((handle.inflight(), handle.queued()), (1, 0));
}

/// A limit that counts the samples it is given, and never moves.
#[derive(Clone, Default)]
struct CountingLimit(Arc<AtomicU64>);

impl palisade_shed::limit::Limit for CountingLimit {
    fn initial(&self) -> usize {
        10
    }
    fn update(&mut self, limit: usize, _: palisade_shed::limit::Sample) -> usize {
        self.0.fetch_add(1, SeqCst);
        limit
    }
    fn bounds(&self) -> (usize, usize) {
        (10, 10)
    }
}

/// A refusal by a palisade layer below the shedder (a breaker, in generic mode).
#[derive(Debug)]
struct RefusedBelow;

impl std::fmt::Display for RefusedBelow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused below")
    }
}

impl std::error::Error for RefusedBelow {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&palisade_core::refusal::LOCAL_REFUSAL)
    }
}

#[tokio::test(start_paused = true)]
async fn a_refusal_from_below_is_no_latency_sample() {
    // A refusal below takes no time: sampled, it would read as the service being fast (or,
    // behind a slow refusal, slow) and move the limit for work nobody did.
    let limit = CountingLimit::default();
    let config = ShedConfig::builder("test")
        .limit(palisade_shed::limit::LimitConfig::custom({
            let limit = limit.clone();
            move || limit.clone()
        }))
        .build()
        .unwrap();
    let mut svc = ShedLayer::with_config(config).layer(service_fn(|refuse: bool| async move {
        sleep(MS).await;
        if refuse {
            Err::<(), BoxError>(Box::new(RefusedBelow))
        } else {
            Err("a real failure".into())
        }
    }));
    assert!(svc.ready().await.unwrap().call(true).await.is_err());
    assert_eq!(limit.0.load(SeqCst), 0, "a refusal is not a sample");
    assert!(svc.ready().await.unwrap().call(false).await.is_err());
    assert_eq!(limit.0.load(SeqCst), 1, "a failure of the service is one");

    // The same in HTTP mode, where a refusal is a marked response.
    let config = ShedConfig::builder("test")
        .limit(palisade_shed::limit::LimitConfig::custom({
            let limit = limit.clone();
            move || limit.clone()
        }))
        .build()
        .unwrap();
    let mut http = palisade_shed::HttpShedLayer::with_config(config).layer(service_fn(
        |refuse: http::Request<()>| async move {
            sleep(MS).await;
            let mut response = http::Response::new(());
            if refuse.uri().path() == "/refused" {
                response
                    .extensions_mut()
                    .insert(palisade_core::refusal::Refused::new("breaker-open"));
            }
            Ok::<_, std::convert::Infallible>(response)
        },
    ));
    for path in ["/refused", "/served"] {
        let request = http::Request::get(path).body(()).unwrap();
        http.ready().await.unwrap().call(request).await.unwrap();
    }
    assert_eq!(
        limit.0.load(SeqCst),
        2,
        "only the served request is a sample"
    );
}
