//! Every `PalisadeBuilderExt` method, called where a real app has tower with every feature
//! and tower-http's own `ServiceBuilderExt` in scope: an inherent `ServiceBuilder` method or
//! a method of the other trait with the same name would take the call (or make it
//! ambiguous), and this file would not compile.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use palisade::prelude::*;
use tower::{BoxError, ServiceBuilder, ServiceExt, service_fn};
use tower_http::ServiceBuilderExt;

fn breaker() -> BreakerConfig {
    BreakerConfig::builder("builder").build().unwrap()
}

fn retry() -> RetryConfig {
    RetryConfig::builder("builder").build().unwrap()
}

fn shed() -> ShedConfig {
    ShedConfig::builder("builder").build().unwrap()
}

fn rate_limit() -> RateLimitConfig {
    RateLimitConfig::builder("builder")
        .policy(Policy::new("all", Quota::per_second(100)))
        .build()
        .unwrap()
}

#[tokio::test]
async fn every_method_resolves_beside_tower_full_and_tower_http() {
    // Generic mode: a request that is `Clone`, errors as `BoxError`.
    let generic = ServiceBuilder::new()
        .circuit_breaker(breaker())
        .retry_on_error(retry())
        .shed(shed())
        .limit_rate(rate_limit())
        // tower's own layers, in the same chain.
        .concurrency_limit(64)
        .timeout(Duration::from_secs(1))
        .service(service_fn(|n: u32| async move { Ok::<_, BoxError>(n + 1) }));
    assert_eq!(generic.oneshot(1).await.unwrap(), 2);

    // HTTP mode, with tower-http's methods beside palisade's.
    let idempotency = IdempotencyConfig::builder("builder", Scope::global())
        .build()
        .unwrap();
    let http = ServiceBuilder::new()
        .trace_for_http()
        .http_rate_limit(rate_limit())
        .http_shed(shed())
        .idempotency(MemoryStore::new(), idempotency)
        .http_circuit_breaker(breaker())
        .http_retry(retry())
        .service(service_fn(|_: http::Request<_>| async {
            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"ok"))))
        }));
    let request = http::Request::get("/")
        .body(Full::<Bytes>::default())
        .unwrap();
    let response = http.oneshot(request).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
}
