//! HTTP mode on real servers over loopback: an axum app flooded by concurrent clients, a
//! tonic server past its limit, and a slot held until the response body has been sent.
//!
//! Real time, with the handlers held at a gate the test opens once every refusal is back:
//! what is admitted and what is refused never depends on how fast the machine is (the
//! paused clock would jump while frames are in flight).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use palisade_shed::limit::Fixed;
use palisade_shed::{HttpShedLayer, ShedConfig};
use tokio::net::TcpListener;
use tower::{Layer, ServiceExt, service_fn};

fn config(limit: usize) -> ShedConfig {
    ShedConfig::builder("server")
        .limit(Fixed(limit))
        .no_queue()
        .retry_after(Duration::from_secs(2))
        .build()
        .unwrap()
}

/// A gate the handlers wait at until the test opens it.
#[derive(Clone)]
struct Gate(tokio::sync::watch::Receiver<bool>);

impl Gate {
    fn new() -> (tokio::sync::watch::Sender<bool>, Self) {
        let (open, gate) = tokio::sync::watch::channel(false);
        (open, Self(gate))
    }

    async fn pass(mut self) {
        let _ = self.0.wait_for(|open| *open).await;
    }
}

/// Waits until `count` reaches `n` (the refusals are back), for at most 10 s.
async fn until(count: &AtomicUsize, n: usize) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while count.load(SeqCst) < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} of {n} after 10 s", count.load(SeqCst)));
}

async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_axum_app_answers_what_it_can_and_refuses_the_rest_properly() {
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    let (open, gate) = Gate::new();
    let handler = move || {
        let (count, gate) = (count.clone(), gate.clone());
        async move {
            gate.pass().await;
            count.fetch_add(1, SeqCst);
            "done"
        }
    };
    // No HandleErrorLayer: a refusal is a response.
    let addr = serve(
        Router::new()
            .route("/work", get(handler))
            .layer(HttpShedLayer::with_config(config(4))),
    )
    .await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();

    let answered = Arc::new(AtomicUsize::new(0));
    let calls: Vec<_> = (0..40)
        .map(|_| {
            let (client, answered) = (client.clone(), answered.clone());
            tokio::spawn(async move {
                let response = client
                    .get(format!("http://{addr}/work").parse().unwrap())
                    .await
                    .unwrap();
                let (parts, body) = response.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                answered.fetch_add(1, SeqCst);
                (parts, body)
            })
        })
        .collect();
    // Four run, held at the gate; the other 36 are refused at once.
    until(&answered, 36).await;
    open.send(true).unwrap();
    let (mut ok, mut refused) = (0, 0);
    for call in calls {
        let (parts, body) = call.await.unwrap();
        match parts.status {
            StatusCode::OK => {
                assert_eq!(body, "done");
                ok += 1;
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(parts.headers["retry-after"], "2");
                assert_eq!(parts.headers["content-type"], "application/problem+json");
                let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(problem["type"], "urn:palisade:problem:overloaded");
                assert_eq!(problem["status"], 503);
                assert_eq!(problem["retry_after_ms"], 2000);
                refused += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(
        (ok, refused),
        (4, 36),
        "a limit's worth served, the rest refused"
    );
    assert_eq!(served.load(SeqCst), ok, "every accepted request ran, once");
}

#[tokio::test(start_paused = true)]
async fn the_slot_is_held_until_the_response_body_ends() {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, std::io::Error>>(4);
    let body = Arc::new(std::sync::Mutex::new(Some(rx)));
    let layer = HttpShedLayer::with_config(config(1));
    let handle = layer.handle();
    let svc = layer.layer(service_fn(move |_: Request<Empty<Bytes>>| {
        let stream = body.lock().unwrap().take();
        async move {
            let body = match stream {
                Some(rx) => Body::new(StreamBody::new(
                    tokio_stream::wrappers::ReceiverStream::new(rx),
                )),
                None => Body::from("short"),
            };
            Ok::<_, std::convert::Infallible>(Response::new(body))
        }
    }));
    let streaming = svc
        .clone()
        .oneshot(Request::new(Empty::new()))
        .await
        .unwrap();
    assert_eq!(streaming.status(), StatusCode::OK);
    assert_eq!(handle.inflight(), 1, "the head is out, the body is not");

    let refused = svc
        .clone()
        .oneshot(Request::new(Empty::new()))
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);

    tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"chunk"))))
        .await
        .unwrap();
    drop(tx);
    let bytes = streaming.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(bytes, "chunk");
    assert_eq!(handle.inflight(), 0, "the body ended: the slot is free");
    let next = svc.oneshot(Request::new(Empty::new())).await.unwrap();
    assert_eq!(next.status(), StatusCode::OK);
}

mod grpc {
    use tonic::Code;
    use tonic::transport::{Endpoint, Server};
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tonic_server_past_its_limit_answers_resource_exhausted() {
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("orders", tonic_health::ServingStatus::Serving)
            .await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Behind the shedder, each call waits at the gate: two fill a limit of 2.
        let (open, gate) = Gate::new();
        let slow = tower::layer::layer_fn(move |inner| {
            let gate = gate.clone();
            tower::util::MapFutureLayer::new(move |f| {
                let gate = gate.clone();
                async move {
                    gate.pass().await;
                    f.await
                }
            })
            .layer(inner)
        });
        tokio::spawn(
            Server::builder()
                .layer(HttpShedLayer::with_config(config(2)))
                .layer(slow)
                .add_service(health)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let answered = Arc::new(AtomicUsize::new(0));
        let checks: Vec<_> = (0..6)
            .map(|_| {
                let mut client = HealthClient::new(channel.clone());
                let answered = answered.clone();
                tokio::spawn(async move {
                    let answer = client
                        .check(HealthCheckRequest {
                            service: "orders".to_owned(),
                        })
                        .await;
                    answered.fetch_add(1, SeqCst);
                    answer
                })
            })
            .collect();
        until(&answered, 4).await;
        open.send(true).unwrap();
        let mut exhausted = 0;
        let mut served = 0;
        for check in checks {
            match check.await.unwrap() {
                Ok(_) => served += 1,
                Err(status) => {
                    assert_eq!(status.code(), Code::ResourceExhausted);
                    assert_eq!(
                        status.metadata().get("grpc-retry-pushback-ms").unwrap(),
                        "2000"
                    );
                    exhausted += 1;
                }
            }
        }
        assert_eq!(served, 2, "the limit's worth served");
        assert_eq!(exhausted, 4);
    }
}
