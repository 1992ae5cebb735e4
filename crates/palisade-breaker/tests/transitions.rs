//! Every transition of the breaker, in paused time, through the public API.

use std::time::Duration;

use palisade_breaker::{
    BreakerConfig, BreakerOpen, CircuitBreakerLayer, OpenDuration, State, Window,
};
use palisade_core::{Outcome, classify_fn};
use palisade_test::{Backend, Behaviour, Script};
use tokio::time::{advance, timeout};
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

const OPEN_FOR: Duration = Duration::from_secs(5);

fn config() -> palisade_breaker::BreakerConfigBuilder {
    BreakerConfig::builder("test")
        .consecutive_failures(3)
        .no_failure_rate()
        .open_duration(OpenDuration::fixed(OPEN_FOR))
        .half_open_probes(2)
        .successes_to_close(2)
}

/// The test breaker, with a single probe whose success closes it.
fn one_probe() -> BreakerConfig {
    config()
        .half_open_probes(1)
        .successes_to_close(1)
        .build()
        .unwrap()
}

/// A service whose next answers are set by the test: `true` succeeds, `false` fails.
fn switchable() -> (
    impl Service<(), Response = (), Error = BoxError, Future = impl Send> + Clone,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = healthy.clone();
    let svc = service_fn(move |()| {
        let ok = flag.load(std::sync::atomic::Ordering::SeqCst);
        async move {
            if ok {
                Ok(())
            } else {
                Err(BoxError::from("down"))
            }
        }
    });
    (svc, healthy)
}

async fn call<S: Service<(), Error = BoxError>>(svc: &mut S) -> Result<S::Response, BoxError> {
    svc.ready().await?.call(()).await
}

fn is_refusal(result: &Result<(), BoxError>) -> bool {
    matches!(result, Err(e) if e.is::<BreakerOpen>())
}

#[tokio::test(start_paused = true)]
async fn closed_opens_after_consecutive_failures_and_a_success_resets_the_count() {
    let layer = CircuitBreakerLayer::with_config(config().build().unwrap());
    let handle = layer.handle();
    let (inner, healthy) = switchable();
    let mut svc = layer.layer(inner);

    healthy.store(false, std::sync::atomic::Ordering::SeqCst);
    call(&mut svc).await.unwrap_err();
    call(&mut svc).await.unwrap_err();
    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    call(&mut svc).await.unwrap();
    assert_eq!(handle.counts().consecutive_failures, 0);
    healthy.store(false, std::sync::atomic::Ordering::SeqCst);
    call(&mut svc).await.unwrap_err();
    call(&mut svc).await.unwrap_err();
    assert_eq!(handle.state(), State::Closed);
    call(&mut svc).await.unwrap_err();
    assert_eq!(handle.state(), State::Open);

    let refused = call(&mut svc).await;
    assert!(is_refusal(&refused));
    let err = refused.unwrap_err();
    let open = err.downcast_ref::<BreakerOpen>().unwrap();
    assert_eq!(open.retry_after(), Some(OPEN_FOR));
    assert_eq!(open.state(), State::Open);
    assert_eq!(open.name(), "test");
}

#[tokio::test(start_paused = true)]
async fn open_half_opens_after_the_open_duration_and_closes_on_enough_successes() {
    let layer = CircuitBreakerLayer::with_config(config().build().unwrap());
    let handle = layer.handle();
    let (inner, healthy) = switchable();
    let mut svc = layer.layer(inner);
    let mut changes = handle.subscribe();

    healthy.store(false, std::sync::atomic::Ordering::SeqCst);
    for _ in 0..3 {
        call(&mut svc).await.unwrap_err();
    }
    assert_eq!(*changes.borrow_and_update(), State::Open);
    advance(OPEN_FOR - Duration::from_millis(1)).await;
    assert!(
        is_refusal(&call(&mut svc).await),
        "still open just before the end"
    );
    assert!(handle.retry_after().unwrap() <= Duration::from_millis(1));

    advance(Duration::from_millis(1)).await;
    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    call(&mut svc).await.unwrap();
    assert_eq!(handle.state(), State::HalfOpen);
    call(&mut svc).await.unwrap();
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(
        handle.counts().window.calls,
        0,
        "counts start afresh when closed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_for_longer_with_exponential_open_durations() {
    let layer = CircuitBreakerLayer::with_config(
        config()
            .open_duration(OpenDuration::Exponential {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(3),
                multiplier: 2.0,
                jitter: 0.0,
            })
            .build()
            .unwrap(),
    );
    let handle = layer.handle();
    let (inner, healthy) = switchable();
    let mut svc = layer.layer(inner);
    healthy.store(false, std::sync::atomic::Ordering::SeqCst);
    for _ in 0..3 {
        call(&mut svc).await.unwrap_err();
    }
    for expected in [1, 2, 3, 3] {
        let expected = Duration::from_secs(expected);
        assert_eq!(handle.state(), State::Open);
        assert_eq!(handle.retry_after(), Some(expected));
        advance(expected).await;
        // The probe fails: open again, for longer, up to the cap.
        call(&mut svc).await.unwrap_err();
    }
    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    advance(Duration::from_secs(3)).await;
    call(&mut svc).await.unwrap();
    call(&mut svc).await.unwrap();
    assert_eq!(handle.state(), State::Closed);
    // Closing resets the backoff.
    healthy.store(false, std::sync::atomic::Ordering::SeqCst);
    for _ in 0..3 {
        call(&mut svc).await.unwrap_err();
    }
    assert_eq!(handle.retry_after(), Some(Duration::from_secs(1)));
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_only_the_permitted_probes_at_once() {
    let layer = CircuitBreakerLayer::with_config(config().build().unwrap());
    let handle = layer.handle();
    let backend = Backend::new(
        Script::new()
            .then(Duration::from_secs(1), Behaviour::failing())
            .forever(Behaviour::healthy(Duration::from_secs(1))),
    );
    let svc = layer.layer(backend.clone());
    for _ in 0..3 {
        svc.clone().oneshot(()).await.unwrap_err();
    }
    advance(OPEN_FOR).await;
    let probes: Vec<_> = (0..2)
        .map(|_| tokio::spawn(svc.clone().oneshot(())))
        .collect();
    tokio::task::yield_now().await;
    assert_eq!(handle.state(), State::HalfOpen);
    let third = svc.clone().oneshot(()).await.unwrap_err();
    let open = third.downcast_ref::<BreakerOpen>().unwrap();
    assert_eq!(open.state(), State::HalfOpen);
    for probe in probes {
        probe.await.unwrap().unwrap();
    }
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(backend.stats().calls(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_probe_returns_its_slot_and_is_not_a_success() {
    let layer = CircuitBreakerLayer::with_config(one_probe());
    let handle = layer.handle();
    let backend = Backend::new(
        Script::new()
            .then(Duration::from_secs(1), Behaviour::failing())
            .forever(Behaviour::hanging()),
    );
    let svc = layer.layer(backend.clone());
    for _ in 0..3 {
        svc.clone().oneshot(()).await.unwrap_err();
    }
    advance(OPEN_FOR).await;
    for _ in 0..100 {
        let probe = timeout(Duration::from_millis(10), svc.clone().oneshot(())).await;
        assert!(probe.is_err(), "the hanging probe times out and is dropped");
        assert_eq!(
            handle.state(),
            State::HalfOpen,
            "a dropped probe never closes the breaker"
        );
    }
    assert_eq!(
        backend.stats().calls(),
        103,
        "each dropped probe gave its slot back"
    );
}

#[tokio::test(start_paused = true)]
async fn failure_rate_trips_once_the_window_has_enough_calls() {
    let layer = CircuitBreakerLayer::with_config(
        config()
            .no_consecutive_failures()
            .failure_rate(0.5)
            .window(Window::count(10))
            .min_calls(10)
            .build()
            .unwrap(),
    );
    let handle = layer.handle();
    let (inner, healthy) = switchable();
    let mut svc = layer.layer(inner);
    for i in 0..9 {
        healthy.store(i % 2 == 0, std::sync::atomic::Ordering::SeqCst);
        let _ = call(&mut svc).await;
    }
    assert_eq!(handle.counts().window.failures, 4);
    assert_eq!(
        handle.state(),
        State::Closed,
        "9 calls are fewer than min_calls"
    );
    healthy.store(false, std::sync::atomic::Ordering::SeqCst);
    call(&mut svc).await.unwrap_err();
    assert_eq!(handle.state(), State::Open, "5 failures of 10 calls is 50%");
}

#[tokio::test(start_paused = true)]
async fn slow_calls_trip_even_when_they_succeed() {
    let layer = CircuitBreakerLayer::with_config(
        config()
            .no_consecutive_failures()
            .no_failure_rate()
            .slow_calls(0.5, Duration::from_millis(100))
            .window(Window::time(Duration::from_secs(10)))
            .min_calls(4)
            .build()
            .unwrap(),
    );
    let handle = layer.handle();
    let fast = Backend::new(Script::always(Behaviour::healthy(Duration::from_millis(
        10,
    ))));
    let slow = Backend::new(Script::always(Behaviour::healthy(Duration::from_millis(
        150,
    ))));
    layer.layer(fast.clone()).oneshot(()).await.unwrap();
    layer.layer(fast).oneshot(()).await.unwrap();
    layer.layer(slow.clone()).oneshot(()).await.unwrap();
    assert_eq!(handle.state(), State::Closed);
    layer.layer(slow).oneshot(()).await.unwrap();
    assert_eq!(handle.counts().window.slow, 2);
    assert_eq!(handle.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn ignored_outcomes_count_neither_way() {
    let layer = CircuitBreakerLayer::with_config(config().consecutive_failures(1).build().unwrap())
        .classifier(classify_fn(|_: Result<&(), &BoxError>| Outcome::Ignored));
    let handle = layer.handle();
    let (inner, healthy) = switchable();
    let mut svc = layer.layer(inner);
    healthy.store(false, std::sync::atomic::Ordering::SeqCst);
    for _ in 0..10 {
        call(&mut svc).await.unwrap_err();
    }
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(handle.counts().window.calls, 0);
}

#[tokio::test(start_paused = true)]
async fn forced_open_and_disabled_through_the_handle() {
    let layer = CircuitBreakerLayer::with_config(config().consecutive_failures(1).build().unwrap());
    let handle = layer.handle();
    let (inner, healthy) = switchable();
    let mut svc = layer.layer(inner);

    handle.force_open();
    let refused = call(&mut svc).await;
    assert!(is_refusal(&refused));
    assert_eq!(
        refused
            .unwrap_err()
            .downcast_ref::<BreakerOpen>()
            .unwrap()
            .retry_after(),
        None
    );
    advance(Duration::from_secs(3600)).await;
    assert_eq!(
        handle.state(),
        State::ForcedOpen,
        "a forced state does not time out"
    );

    handle.force_closed();
    assert_eq!(handle.state(), State::Disabled);
    healthy.store(false, std::sync::atomic::Ordering::SeqCst);
    for _ in 0..5 {
        let result = call(&mut svc).await;
        assert!(!is_refusal(&result));
    }
    assert_eq!(handle.state(), State::Disabled, "disabled never trips");
    assert_eq!(
        handle.counts().consecutive_failures,
        5,
        "but it still counts"
    );

    handle.reset();
    assert_eq!(handle.state(), State::Closed);
    call(&mut svc).await.unwrap_err();
    assert_eq!(handle.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn gate_mode_is_pending_while_open_and_wakes_when_a_probe_is_due() {
    let layer = CircuitBreakerLayer::with_config(one_probe()).gate();
    let handle = layer.handle();
    let backend = Backend::new(
        Script::new()
            .then(Duration::from_secs(1), Behaviour::failing())
            .forever(Behaviour::healthy(Duration::from_millis(10))),
    );
    let mut svc = layer.layer(backend.clone());
    for _ in 0..3 {
        call(&mut svc).await.unwrap_err();
    }
    assert_eq!(handle.state(), State::Open);
    // poll_ready is Pending (never Err) while open...
    let early = timeout(
        OPEN_FOR - Duration::from_millis(1),
        ServiceExt::<()>::ready(&mut svc),
    )
    .await;
    assert!(early.is_err(), "ready while open");
    // ...and becomes Ready by itself when the probe is due, with the probe slot reserved.
    let start = tokio::time::Instant::now();
    ServiceExt::<()>::ready(&mut svc).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(1));
    assert_eq!(handle.state(), State::HalfOpen);

    // Another clone waits for the slot and is woken when the probe succeeds.
    let mut other = svc.clone();
    let waiting = tokio::spawn(async move {
        ServiceExt::<()>::ready(&mut other).await.unwrap();
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    svc.call(()).await.unwrap();
    assert_eq!(handle.state(), State::Closed);
    waiting.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_refusal_from_a_breaker_below_counts_neither_way() {
    // Stacked breakers (a client's outer breaker over per-endpoint ones, a server's over a
    // shedder's): the inner one's refusal says nothing about the dependency.
    let inner = CircuitBreakerLayer::with_config(config().build().unwrap().renamed("inner"));
    let inner_handle = inner.handle();
    let outer = CircuitBreakerLayer::with_config(config().build().unwrap().renamed("outer"));
    let outer_handle = outer.handle();
    let (svc, _) = switchable();
    let mut svc = outer.layer(inner.layer(svc));
    inner_handle.force_open();
    for _ in 0..10 {
        let refused = call(&mut svc).await;
        assert!(is_refusal(&refused), "the inner breaker's refusal, as is");
    }
    assert_eq!(outer_handle.state(), State::Closed);
    assert_eq!(outer_handle.counts().consecutive_failures, 0);
}

#[tokio::test(start_paused = true)]
async fn a_call_cut_by_a_timeout_is_a_failure_and_a_dropped_one_is_not() {
    use palisade_core::cancel::{self, Cancellation};
    let layer = CircuitBreakerLayer::with_config(config().build().unwrap());
    let handle = layer.handle();
    let mut svc = layer.layer(service_fn(|()| {
        std::future::pending::<Result<(), BoxError>>()
    }));

    let call = svc.ready().await.unwrap().call(());
    drop(call);
    assert_eq!(
        handle.counts().consecutive_failures,
        0,
        "a caller that went away says nothing of the service"
    );
    for _ in 0..3 {
        let call = svc.ready().await.unwrap().call(());
        cancel::dropping(Cancellation::TimedOut, || drop(call));
    }
    assert_eq!(
        handle.state(),
        State::Open,
        "three calls the timeout cut are three failures"
    );
}
