//! The `axum_server` example, briefly, on loopback: its stack answers, replays a keyed POST,
//! and serves palisade's metrics.

#[path = "../axum_server.rs"]
#[allow(dead_code, reason = "the example's main is not run here")]
mod axum_server;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[tokio::test]
async fn the_axum_server_example_serves_its_stack() {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("the only recorder of this test binary");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, axum_server::app(metrics)).await });

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let post = || {
        http::Request::post(format!("http://{addr}/orders"))
            .header("idempotency-key", "\"o-1\"")
            .body(Full::new(Bytes::from_static(b"{\"qty\":1}")))
            .unwrap()
    };
    let first = client.request(post()).await.unwrap();
    assert_eq!(first.status(), http::StatusCode::CREATED);
    let second = client.request(post()).await.unwrap();
    assert_eq!(second.headers()["idempotent-replayed"], "true");

    // GET `path`: its status and its body as text.
    let get = async |path: &str| {
        let uri = format!("http://{addr}{path}").parse().unwrap();
        let response = client.get(uri).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    assert_eq!(get("/report").await.0, http::StatusCode::OK);

    let (_, text) = get("/metrics").await;
    assert!(
        text.contains("palisade_idempotency_requests_total"),
        "{text}"
    );
    assert!(text.contains("palisade_breaker_calls_total"), "{text}");

    // The scrape and the probe are outside the shedder: they take no slot and no sample.
    assert_eq!(get("/healthz").await.0, http::StatusCode::OK);
    let (_, again) = get("/metrics").await;
    let shed_samples = |scrape: &str| {
        scrape
            .lines()
            .find(|l| l.starts_with("palisade_shed_latency_seconds_count{name=\"server\"}"))
            .map(str::to_owned)
    };
    assert!(shed_samples(&text).is_some(), "{text}");
    assert_eq!(
        shed_samples(&again),
        shed_samples(&text),
        "neither the scrape nor the probe went through the shedder"
    );
}
