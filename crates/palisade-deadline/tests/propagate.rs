//! The client layer, in paused time: each call bounded by the earliest of the inherited
//! deadline (less the margin), its own timeout and a timeout already written; the rest sent
//! on; the call cut when it passes, or not sent with no time left.

use std::future::pending;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderMap, Request};
use palisade_core::cancel::{self, Cancellation};
use palisade_deadline::timeout::parse_grpc_timeout;
use palisade_deadline::{Deadline, DeadlineExceeded, PropagateConfig, PropagateDeadlineLayer};
use tokio::time::Instant;
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

const MS: Duration = Duration::from_millis(1);

fn layer(timeout: Option<Duration>) -> PropagateDeadlineLayer {
    let mut config = PropagateConfig::builder("dependency");
    if let Some(timeout) = timeout {
        config = config.timeout(timeout);
    }
    PropagateDeadlineLayer::with_config(config.build().unwrap())
}

/// A dependency that records the headers of each call, and answers at once.
fn recording() -> (
    impl Service<Request<()>, Response = (), Error = BoxError, Future = impl Send> + Clone,
    Arc<Mutex<Vec<HeaderMap>>>,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let svc = service_fn(move |request: Request<()>| {
        log.lock().unwrap().push(request.headers().clone());
        async { Ok::<_, BoxError>(()) }
    });
    (svc, seen)
}

fn http() -> Request<()> {
    Request::get("http://dependency/").body(()).unwrap()
}

fn grpc() -> Request<()> {
    Request::post("http://dependency/pkg.Svc/Method")
        .header("content-type", "application/grpc")
        .body(())
        .unwrap()
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|value| value.to_str().unwrap().to_owned())
}

#[tokio::test(start_paused = true)]
async fn a_call_without_a_deadline_passes_through_untouched() {
    let (dep, seen) = recording();
    layer(None).layer(dep).oneshot(http()).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(header(&seen[0], "x-request-timeout-ms"), None);
    assert_eq!(header(&seen[0], "grpc-timeout"), None);
}

#[tokio::test(start_paused = true)]
async fn the_inherited_deadline_less_the_margin_is_sent_on() {
    let (dep, seen) = recording();
    let svc = layer(None).layer(dep);
    let inherited = Deadline::after(100 * MS);
    inherited
        .scope(async {
            tokio::time::advance(20 * MS).await;
            svc.clone().oneshot(http()).await.unwrap();
            svc.clone().oneshot(grpc()).await.unwrap();
        })
        .await;
    let seen = seen.lock().unwrap();
    // 100 ms, 20 gone, 5 kept back for the answer's way home.
    assert_eq!(header(&seen[0], "x-request-timeout-ms").unwrap(), "75");
    let grpc = seen[1].get("grpc-timeout").unwrap();
    assert_eq!(parse_grpc_timeout(grpc).unwrap(), 75 * MS);
    assert_eq!(header(&seen[1], "x-request-timeout-ms"), None, "gRPC's own");
}

#[tokio::test(start_paused = true)]
async fn the_earliest_of_inherited_own_and_written_wins() {
    let (dep, seen) = recording();
    let svc = layer(Some(30 * MS)).layer(dep);
    let with = |value: &str| {
        Request::get("http://dependency/")
            .header("x-request-timeout-ms", value)
            .body(())
            .unwrap()
    };
    Deadline::after(100 * MS)
        .scope(async {
            svc.clone().oneshot(http()).await.unwrap();
            svc.clone().oneshot(with("10")).await.unwrap();
            svc.clone().oneshot(with("500")).await.unwrap();
            svc.clone().oneshot(with("not a number")).await.unwrap();
        })
        .await;
    // Outside any request, the call's own timeout alone.
    svc.clone().oneshot(http()).await.unwrap();
    let sent: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|headers| header(headers, "x-request-timeout-ms").unwrap())
        .collect();
    assert_eq!(sent, ["30", "10", "30", "30", "30"]);
}

/// Counts how the futures it guards were dropped.
#[derive(Clone, Default)]
struct Drops {
    timed_out: Arc<AtomicUsize>,
    other: Arc<AtomicUsize>,
}

struct Guard(Drops);

impl Drop for Guard {
    fn drop(&mut self) {
        match cancel::current() {
            Cancellation::TimedOut => self.0.timed_out.fetch_add(1, SeqCst),
            _ => self.0.other.fetch_add(1, SeqCst),
        };
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_is_cut_at_its_deadline_and_dropped_as_timed_out() {
    let drops = Drops::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let dep = {
        let (drops, calls) = (drops.clone(), calls.clone());
        service_fn(move |_: Request<()>| {
            calls.fetch_add(1, SeqCst);
            let guard = Guard(drops.clone());
            async move {
                let _guard = guard;
                pending::<Result<(), BoxError>>().await
            }
        })
    };
    let svc = layer(None).layer(dep);
    let start = Instant::now();
    let error = Deadline::after(100 * MS)
        .scope(svc.oneshot(http()))
        .await
        .unwrap_err();
    assert_eq!(
        start.elapsed(),
        95 * MS,
        "the inherited deadline less the margin"
    );
    let exceeded = error.downcast_ref::<DeadlineExceeded>().unwrap();
    assert_eq!(exceeded.timeout, 95 * MS);
    assert_eq!(calls.load(SeqCst), 1);
    assert_eq!(drops.timed_out.load(SeqCst), 1, "dropped saying why");
    assert_eq!(drops.other.load(SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_call_with_no_time_left_is_not_sent() {
    let (dep, seen) = recording();
    let svc = layer(None).layer(dep);
    let inherited = Deadline::after(100 * MS);
    let error = inherited
        .scope(async {
            // 4 ms left: less than the margin.
            tokio::time::advance(96 * MS).await;
            svc.oneshot(http()).await.unwrap_err()
        })
        .await;
    assert!(error.is::<DeadlineExceeded>());
    assert!(seen.lock().unwrap().is_empty(), "never sent");
}
