//! The `hyper_client` example against three axum servers on loopback, found through SRV
//! records that hickory's DNS server (in-process) serves: requests succeed though one
//! server answers every request with 503, that server is left nearly idle, and when DNS
//! drops a server the client stops calling it.

#[path = "../hyper_client.rs"]
#[allow(dead_code, reason = "the example's main is not run here")]
mod hyper_client;

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use axum::http::StatusCode;
use bytes::Bytes;
use http_body_util::Full;
use palisade::balance::discover::DnsQuery;
use palisade_test::dns::DnsServer;
use tower::ServiceExt;

const SERVICE: &str = "_http._tcp.orders.svc.test.";

/// An axum server on loopback that answers `/report` with `status`, counting its requests.
async fn backend(status: StatusCode) -> (u16, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().route(
        "/report",
        axum::routing::get(move || async move {
            counted.fetch_add(1, Relaxed);
            status
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, hits)
}

async fn get(client: &palisade::client::BoxClient) -> StatusCode {
    let request = http::Request::get("/report")
        .body(Full::<Bytes>::default())
        .unwrap();
    match client.clone().oneshot(request).await {
        Ok(response) => response.status(),
        Err(error) => panic!("the request failed: {error}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hyper_client_balances_over_dns_around_a_failing_server() {
    let (a, a_hits) = backend(StatusCode::OK).await;
    let (b, b_hits) = backend(StatusCode::OK).await;
    let (bad, bad_hits) = backend(StatusCode::SERVICE_UNAVAILABLE).await;
    let dns = DnsServer::start().await;
    for host in ["a", "b", "bad"] {
        dns.set_a(&format!("{host}.svc.test."), &[1]).await;
    }
    dns.set_srv(
        SERVICE,
        &[
            (10, 1, a, "a.svc.test."),
            (10, 1, b, "b.svc.test."),
            (10, 1, bad, "bad.svc.test."),
        ],
    )
    .await;
    let client = hyper_client::client(dns.resolver(), DnsQuery::srv(SERVICE).unwrap()).unwrap();

    // Every request succeeds: the one sent to the failing server is retried elsewhere, and
    // the balancer soon stops choosing it.
    for _ in 0..300 {
        assert_eq!(get(&client).await, StatusCode::OK);
    }
    common::assert_failing_server_avoided(&a_hits, &b_hits, &bad_hits);

    // DNS drops server a: once the TTL has passed, the client calls only b.
    dns.set_srv(
        SERVICE,
        &[(10, 1, b, "b.svc.test."), (10, 1, bad, "bad.svc.test.")],
    )
    .await;
    common::until_removed_server_idle(&a_hits, async || {
        for _ in 0..50 {
            assert_eq!(get(&client).await, StatusCode::OK);
        }
    })
    .await;
}
