//! HTTP mode on real servers over loopback: an axum app keyed by the peer address through
//! `ConnectInfo`, a client behind a trusted proxy, and a tonic server past its quota.
//!
//! Real time, with quotas per hour: nothing refills while a test runs, so what is admitted
//! never depends on how fast the machine is.

#![cfg(feature = "http")]

use std::net::SocketAddr;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use palisade_ratelimit::http::{KeySource, TrustedProxies};
use palisade_ratelimit::{HttpRateLimitLayer, Policy, Quota, RateLimitConfig};
use tokio::net::TcpListener;

async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    addr
}

fn layer(key: KeySource, per_hour: u32) -> HttpRateLimitLayer {
    HttpRateLimitLayer::with_config(
        RateLimitConfig::builder("server")
            .policy(Policy::new("per-client", Quota::per_hour(per_hour)).key(key))
            .build()
            .unwrap(),
    )
}

async fn call(
    addr: SocketAddr,
    forwarded_for: Option<&str>,
) -> (StatusCode, http::HeaderMap, Bytes) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut request = http::Request::get(format!("http://{addr}/"))
        .body(Empty::new())
        .unwrap();
    if let Some(value) = forwarded_for {
        request
            .headers_mut()
            .insert("x-forwarded-for", value.parse().unwrap());
    }
    let response = client.request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

#[tokio::test]
async fn an_axum_app_limits_each_peer_and_refuses_with_429() {
    let addr = serve(
        Router::new()
            .route("/", get(|| async { "hello" }))
            .layer(layer(KeySource::peer(), 3)),
    )
    .await;
    for remaining in (0..3).rev() {
        let (status, headers, body) = call(addr, None).await;
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"hello"[..]));
        assert_eq!(
            headers["ratelimit"],
            format!("\"per-client\";r={remaining};t={}", 1200 * (3 - remaining))
        );
    }
    let (status, headers, body) = call(addr, None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "1200");
    assert_eq!(headers["ratelimit-policy"], "\"per-client\";q=3;w=3600");
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["status"], 429);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_is_its_forwarded_address_and_cannot_pick_another() {
    // The test's client connects from 127.0.0.1: it plays the load balancer.
    let proxies = TrustedProxies::new(["127.0.0.0/8"]).unwrap();
    let addr = serve(
        Router::new()
            .route("/", get(|| async { "hello" }))
            .layer(layer(KeySource::client_ip(proxies), 1)),
    )
    .await;
    assert_eq!(call(addr, Some("203.0.113.1")).await.0, StatusCode::OK);
    assert_eq!(
        call(addr, Some("203.0.113.1")).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The same client inventing a first hop is still the address the proxy saw.
    assert_eq!(
        call(addr, Some("10.9.9.9, 203.0.113.1")).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        call(addr, Some("203.0.113.2")).await.0,
        StatusCode::OK,
        "another client"
    );
}

#[tokio::test]
async fn without_trusted_proxies_forwarding_headers_are_ignored() {
    let addr = serve(
        Router::new()
            .route("/", get(|| async { "hello" }))
            .layer(layer(KeySource::peer(), 1)),
    )
    .await;
    assert_eq!(call(addr, Some("203.0.113.1")).await.0, StatusCode::OK);
    assert_eq!(
        call(addr, Some("203.0.113.2")).await.0,
        StatusCode::TOO_MANY_REQUESTS,
        "a new X-Forwarded-For buys no new quota"
    );
}

mod grpc {
    use tonic::Code;
    use tonic::transport::{Endpoint, Server};
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    use super::*;

    #[tokio::test]
    async fn a_tonic_server_over_quota_answers_resource_exhausted_with_pushback() {
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("orders", tonic_health::ServingStatus::Serving)
            .await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(
            Server::builder()
                // Keyed by the peer, which tonic hands over as `TcpConnectInfo`.
                .layer(layer(KeySource::peer(), 2))
                .add_service(health)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = HealthClient::new(channel);
        let check = || HealthCheckRequest {
            service: "orders".to_owned(),
        };
        client.check(check()).await.unwrap();
        client.check(check()).await.unwrap();
        let status = client.check(check()).await.unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted);
        // Half an hour after the first call, less the real time since.
        let pushback: u64 = status
            .metadata()
            .get("grpc-retry-pushback-ms")
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1_790_000..=1_800_000).contains(&pushback), "{pushback}");
    }
}
