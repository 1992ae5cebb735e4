//! The `tower` variant: the app behind the same protective stack as the `full` one, assembled
//! from what a user would pick without palisade — tower, tower-resilience 0.13 and axum's
//! glue — configured as close to palisade's defaults as its knobs allow, so that the figure
//! says what choosing palisade gains.
//!
//! | palisade (`full`)   | here                                                        |
//! |---------------------|-------------------------------------------------------------|
//! | shed (adaptive)     | tower's `LoadShed` over tower-resilience's AIMD limiter     |
//! | idempotency         | nothing: neither tower nor tower-resilience has one (1)     |
//! | breaker (HTTP, 5xx) | tower-resilience's circuit breaker, 5xx counted as failures |
//! | refusals as answers | axum's `HandleErrorLayer`                                   |
//!
//! (1) tower-resilience's `coalesce` (single-flight) only joins duplicates in flight, keeps
//! nothing once they complete, and needs `Clone` responses, which axum's are not; its
//! `cache` has no claim, no fingerprint and no conflict answer. Neither is idempotency, so
//! the stack goes without: it does less work on `POST` than palisade's, and the `full ÷
//! tower` ratio of a `POST` workload errs in tower's favour.
//!
//! tower-http has no layer for any row of the table, so it has no part here.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::BoxError;
use tower::ServiceBuilder;
use tower::load_shed::LoadShedLayer;
use tower::load_shed::error::Overloaded;
use tower_resilience::adaptive::{AdaptiveError, AdaptiveLimiterLayer, Aimd};
use tower_resilience::circuitbreaker::{
    CircuitBreakerError, CircuitBreakerLayer, FailureClassifier,
};

use crate::server::routes;

/// The error the limiter passes up: the breaker's, around the app's (which has none).
type StackError = AdaptiveError<CircuitBreakerError<Infallible>>;

/// The app behind load shedding → breaker, outermost first, as in the `full` variant.
pub(crate) fn tower_stack() -> Result<Router, String> {
    Ok(routes(false)?.layer(
        ServiceBuilder::new()
            // axum serves only services that cannot fail; tower's layers fail instead of
            // answering, so the user writes the answers.
            .layer(HandleErrorLayer::new(answer))
            // The limiter makes callers wait at its limit; `LoadShed` turns that wait into
            // an immediate refusal, which is what shedding means.
            .layer(LoadShedLayer::new())
            .layer(AdaptiveLimiterLayer::new(limit()?))
            .layer(breaker()?),
    ))
}

/// AIMD within palisade's bounds (from 40, between 4 and 1000). It grows on every answer
/// faster than its threshold, so under healthy load it sits at its maximum and refuses
/// nothing; its default threshold, 100 ms, is far above any healthy answer here.
/// tower-resilience's other algorithm, Vegas, shrinks the limit as soon as latency rises
/// with load — a saturated but healthy server's shape — and would refuse healthy traffic.
fn limit() -> Result<Aimd, String> {
    Aimd::builder()
        .initial_limit(40)
        .min_limit(4)
        .max_limit(1000)
        .build()
        .map_err(|e| format!("the adaptive limiter: {e}"))
}

/// A breaker on the share of 5xx answers, with palisade's thresholds: half of at least 20
/// calls opens it for 5 s, then 3 probes. (palisade's also opens on 5 failures in a row
/// and backs off from 5 s to 60 s; this one takes one failure model and a fixed wait.)
///
/// `build_with_handle`, not `build`: the layer is applied to every route of the router,
/// and only a layer built with a handle gives all of them one circuit.
///
/// Count-based window, tower-resilience's default: its time-based one (palisade's default
/// is 10 s) recounts every call in the window on every call, under a lock. The count-based
/// one does not slide: its counts reset only when the circuit changes state, so it costs
/// less than a window and protects less — after a million healthy calls it takes a million
/// failures to open. Another way in which this stack's figures flatter it.
fn breaker()
-> Result<CircuitBreakerLayer<impl FailureClassifier<Response, Infallible> + Clone>, String> {
    let (layer, _handle) = CircuitBreakerLayer::builder()
        .name("e2e")
        .failure_rate_threshold(0.5)
        .sliding_window_size(100)
        .minimum_number_of_calls(20)
        .wait_duration_in_open(Duration::from_secs(5))
        .permitted_calls_in_half_open(3)
        // Not `classify_response`, made for this: it hides its closure's type, and without
        // `Clone` the layer cannot go on an axum `Router`.
        .failure_classifier(|result: &Result<Response, Infallible>| {
            result
                .as_ref()
                .is_ok_and(|response| response.status().is_server_error())
        })
        .build_with_handle()
        .map_err(|e| format!("the circuit breaker: {e}"))?;
    Ok(layer)
}

/// The stack's errors as answers: a refusal (shed, or the circuit open) is a 503 with
/// `Retry-After`, as palisade's are (less their problem+json body); anything else a 500.
/// The breaker's error arrives inside the limiter's, which does not expose it as a
/// `source()`, so it is found by naming the whole nest of types.
async fn answer(error: BoxError) -> Response {
    let refused = error.is::<Overloaded>()
        || error.downcast_ref::<StackError>().is_some_and(|error| {
            matches!(
                error,
                AdaptiveError::LimitReached
                    | AdaptiveError::Service(CircuitBreakerError::OpenCircuit)
            )
        });
    if refused {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "overloaded",
        )
            .into_response()
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response()
    }
}
