//! The metrics an operator's alerts rely on, scraped from a Prometheus recorder: present
//! from the moment their layer is made (an `increase(...) > 0` alert must see the first
//! event of a process), labelled by `name`, and not one series per endpoint — the metrics
//! facade cannot delete a series, so per-endpoint ones would outlive their endpoints.
//!
//! One process, one global recorder: this file holds one test.

use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use metrics_exporter_prometheus::PrometheusBuilder;
use palisade::balance::discover::WatchDiscover;
use palisade::balance::http::http_endpoints;
use palisade::prelude::*;
use palisade::retry::http::ReplayBody;
use tower::{ServiceBuilder, ServiceExt};

/// The lines of `scrape` for `metric` (its samples, without comments).
fn samples<'a>(scrape: &'a str, metric: &str) -> Vec<&'a str> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(metric))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerting_metrics_exist_from_construction_and_no_series_per_endpoint() {
    let prometheus = PrometheusBuilder::new().install_recorder().unwrap();

    // A failing server, so that the balancer ejects it.
    let app = axum::Router::new().route(
        "/stock",
        axum::routing::get(|| async { StatusCode::SERVICE_UNAVAILABLE }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let hyper = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let (_publish, addresses) = tokio::sync::watch::channel([addr].into_iter().collect());
    let balance = Balance::with_classifier(
        WatchDiscover::new("inventory-watch", addresses, http_endpoints(hyper)),
        BalanceConfig::builder("inventory").build().unwrap(),
        HttpClassifier::default(),
    );
    let breaker = BreakerConfig::builder("inventory").build().unwrap();
    let retry = RetryConfig::builder("inventory").build().unwrap();
    let client = ServiceBuilder::new()
        .http_circuit_breaker(breaker)
        .http_retry(retry)
        .buffer(64)
        .service(balance);

    // A rate limit kept by a fleet's store.
    let limits = palisade::ratelimit::RateLimitConfig::builder("api")
        .policy(palisade::ratelimit::Policy::new(
            "per-client",
            palisade::ratelimit::Quota::per_second(10),
        ))
        .build()
        .unwrap();
    let _fleet = palisade::ratelimit::fleet::FleetRateLimitLayer::new(
        limits,
        palisade::ratelimit::fleet::Fleet::exact(),
        palisade::ratelimit::store::MemoryStore::new(),
    )
    .unwrap();

    // Made, not yet used: every series an alert reads is there, at zero.
    let scrape = prometheus.render();
    for metric in [
        "palisade_ratelimit_store_calls_total{name=\"api\",result=\"failed\"} 0",
        "palisade_ratelimit_evicted_total{name=\"api\",policy=\"per-client\",kind=\"early\"} 0",
        "palisade_balance_ejections_total{name=\"inventory\"} 0",
        "palisade_balance_panic_total{name=\"inventory\"} 0",
        "palisade_balance_no_endpoints_total{name=\"inventory\"} 0",
        "palisade_breaker_transitions_total{name=\"inventory\",from=\"closed\",to=\"open\"} 0",
        "palisade_retry_",
    ] {
        assert!(scrape.contains(metric), "missing `{metric}` in:\n{scrape}");
    }
    let kept = samples(&scrape, "palisade_balance_discovery_kept_total");
    assert!(
        kept.iter().any(|l| l.contains("name=\"inventory-watch\"")),
        "the discovery's counter carries its name: {kept:?}"
    );

    // Failures enough to eject the endpoint (five in a row).
    for _ in 0..8 {
        let request = http::Request::get("/stock").body(Full::default()).unwrap();
        let _ = client.clone().oneshot(request).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let scrape = prometheus.render();
    // The endpoint's gate opened (alone, it is kept in rotation: the balancer's panic mode).
    assert!(
        !scrape.contains("palisade_balance_panic_total{name=\"inventory\"} 0"),
        "the gate tripped"
    );
    let breakers: Vec<&str> = samples(&scrape, "palisade_breaker_state")
        .into_iter()
        .filter(|l| !l.contains("name=\"inventory\""))
        .collect();
    assert!(
        breakers.is_empty(),
        "the balancer's per-endpoint gates are silent: {breakers:?}"
    );
    assert!(
        samples(&scrape, "palisade_balance_requests_total").is_empty(),
        "no per-endpoint series unless asked"
    );
}

/// The operator's page lists every series the layers record: a metric added to a layer and
/// left out of docs/operations.md fails here, not in someone's dashboard.
#[test]
fn operations_guide_names_every_metric() {
    let guide = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/operations.md"
    ))
    .expect("docs/operations.md");
    let all = [
        palisade::balance::metrics::ALL,
        palisade::breaker::metrics::ALL,
        palisade::deadline::metrics::ALL,
        palisade::idempotency::metrics::ALL,
        palisade::ratelimit::metrics::ALL,
        palisade::registry::metrics::ALL,
        palisade::retry::metrics::ALL,
        palisade::shed::metrics::ALL,
    ];
    let missing: Vec<&str> = all
        .concat()
        .into_iter()
        .filter(|name| !guide.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/operations.md does not name {missing:?}"
    );
}
