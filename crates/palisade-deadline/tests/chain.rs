//! One deadline from edge to leaf, over loopback: three axum services in a chain, each
//! enforcing the deadline it is sent and passing what is left of it on. The leaf's handler
//! never answers; it is cancelled when the first caller's deadline passes, and the caller
//! is answered `504`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use bytes::Bytes;
use http::Request;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use palisade_deadline::{
    DeadlineExceeded, EnforceDeadlineLayer, PropagateDeadline, PropagateDeadlineLayer,
};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower::{Layer, ServiceExt};

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// The timeout each hop was sent, in the order the hops were reached.
type Sent = Arc<Mutex<Vec<(&'static str, String)>>>;

fn record(sent: &Sent, hop: &'static str, headers: &HeaderMap) {
    let value = headers
        .get("x-request-timeout-ms")
        .map_or_else(|| "none".to_owned(), |v| v.to_str().unwrap().to_owned());
    sent.lock().unwrap().push((hop, value));
}

#[derive(Clone)]
struct Hop {
    name: &'static str,
    next: SocketAddr,
    client: PropagateDeadline<HttpClient>,
    sent: Sent,
}

/// A hop's handler: calls the next service, and answers with its status.
async fn forward(State(hop): State<Hop>, headers: HeaderMap) -> StatusCode {
    record(&hop.sent, hop.name, &headers);
    let request = Request::get(format!("http://{}/", hop.next))
        .body(Empty::new())
        .unwrap();
    match hop.client.oneshot(request).await {
        Ok(response) => response.status(),
        Err(error) if error.is::<DeadlineExceeded>() => StatusCode::GATEWAY_TIMEOUT,
        Err(_) => StatusCode::BAD_GATEWAY,
    }
}

/// Notifies when dropped: the leaf's work was cancelled.
struct Cancelled(Arc<Notify>);

impl Drop for Cancelled {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

#[tokio::test]
async fn three_services_stop_when_the_first_caller_s_deadline_passes() {
    let sent = Sent::default();
    let cancelled = Arc::new(Notify::new());
    let leaf = {
        let (sent, cancelled) = (sent.clone(), cancelled.clone());
        let work = move |headers: HeaderMap| async move {
            record(&sent, "leaf", &headers);
            let _cancelled = Cancelled(cancelled);
            // Work that would never finish: only the deadline ends it.
            std::future::pending::<StatusCode>().await
        };
        Router::new()
            .route("/", get(work))
            .layer(EnforceDeadlineLayer::new("leaf"))
    };
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let hop = |name, next| {
        let hop = Hop {
            name,
            next,
            client: PropagateDeadlineLayer::new(name).layer(client.clone()),
            sent: sent.clone(),
        };
        Router::new()
            .route("/", get(forward))
            .with_state(hop)
            .layer(EnforceDeadlineLayer::new(name))
    };
    let leaf = serve(leaf).await;
    let middle = serve(hop("middle", leaf)).await;
    let front = serve(hop("front", middle)).await;

    let request = Request::get(format!("http://{front}/"))
        .header("x-request-timeout-ms", "300")
        .body(Empty::new())
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .expect("answered at the deadline, not at the server's 30 s maximum")
        .unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    tokio::time::timeout(Duration::from_secs(10), cancelled.notified())
        .await
        .expect("the leaf's work was cancelled");

    let sent = sent.lock().unwrap().clone();
    let hops: Vec<_> = sent.iter().map(|(hop, _)| *hop).collect();
    assert_eq!(hops, ["front", "middle", "leaf"]);
    let millis: Vec<u64> = sent.iter().map(|(_, ms)| ms.parse().unwrap()).collect();
    assert_eq!(millis[0], 300);
    // Each hop passes on less than it was given: at least its margin less.
    assert!(
        millis[1] <= 295 && millis[2] <= millis[1] - 5 && millis[2] > 0,
        "{sent:?}"
    );
}
