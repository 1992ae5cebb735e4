//! HTTP mode on real servers over loopback: an axum app flooded by concurrent clients, a
//! tonic server past its limit, and a slot held until the response body has been sent.

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
    ShedConfig::builder()
        .name("server")
        .limit(Fixed(limit))
        .no_queue()
        .retry_after(Duration::from_secs(2))
        .build()
        .unwrap()
}

async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

#[tokio::test(start_paused = true)]
async fn a_flooded_axum_app_answers_what_it_can_and_refuses_the_rest_properly() {
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    let handler = move || {
        let count = count.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            count.fetch_add(1, SeqCst);
            "done"
        }
    };
    // No HandleErrorLayer: a refusal is a response.
    let addr = serve(
        Router::new()
            .route("/work", get(handler))
            .layer(HttpShedLayer::new(config(4))),
    )
    .await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();

    let calls: Vec<_> = (0..40)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let response = client
                    .get(format!("http://{addr}/work").parse().unwrap())
                    .await
                    .unwrap();
                let (parts, body) = response.into_parts();
                (parts, body.collect().await.unwrap().to_bytes())
            })
        })
        .collect();
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
    assert_eq!(ok + refused, 40);
    assert!(ok >= 4, "at least a limit's worth served, got {ok}");
    assert!(refused > 0, "40 at once on a limit of 4: some refused");
    assert_eq!(served.load(SeqCst), ok, "every accepted request ran, once");
}

#[tokio::test(start_paused = true)]
async fn the_slot_is_held_until_the_response_body_ends() {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, std::io::Error>>(4);
    let body = Arc::new(std::sync::Mutex::new(Some(rx)));
    let layer = HttpShedLayer::new(config(1));
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

    #[tokio::test(start_paused = true)]
    async fn a_tonic_server_past_its_limit_answers_resource_exhausted() {
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("orders", tonic_health::ServingStatus::Serving)
            .await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Behind the shedder, each call takes 100 ms: two at once fill a limit of 2.
        let slow = tower::layer::layer_fn(|inner| {
            tower::util::MapFutureLayer::new(|f| async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                f.await
            })
            .layer(inner)
        });
        tokio::spawn(
            Server::builder()
                .layer(HttpShedLayer::new(config(2)))
                .layer(slow)
                .add_service(health)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let checks: Vec<_> = (0..6)
            .map(|_| {
                let mut client = HealthClient::new(channel.clone());
                tokio::spawn(async move {
                    client
                        .check(HealthCheckRequest {
                            service: "orders".to_owned(),
                        })
                        .await
                })
            })
            .collect();
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
