//! The server layer, in paused time: deadlines read from `grpc-timeout` and the HTTP header,
//! capped, seen by the handler, and enforced by cancelling it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use palisade_deadline::{Deadline, DeadlineConfig, EnforceDeadlineLayer};
use tokio::time::Instant;
use tower::{BoxError, Layer, ServiceExt, service_fn};

const MS: Duration = Duration::from_millis(1);

fn layer() -> EnforceDeadlineLayer {
    EnforceDeadlineLayer::with_config(
        DeadlineConfig::builder("test")
            .max(Duration::from_secs(5))
            .build()
            .unwrap(),
    )
}

/// A handler that answers with the time its request had left, as it saw it from the task's
/// current deadline, and checks the request's extension says the same.
async fn remaining(request: Request<Empty<Bytes>>) -> Result<Response<Full<Bytes>>, BoxError> {
    let current = palisade_deadline::current().expect("a current deadline");
    assert_eq!(request.extensions().get::<Deadline>(), Some(&current));
    let left = current.remaining().as_millis().to_string();
    Ok(Response::new(Full::new(Bytes::from(left))))
}

fn request(headers: &[(&str, &str)]) -> Request<Empty<Bytes>> {
    let mut request = Request::post("http://server/call");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Empty::new()).unwrap()
}

async fn answer<B>(response: Response<B>) -> (StatusCode, http::HeaderMap, String)
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let (head, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        head.status,
        head.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test(start_paused = true)]
async fn the_handler_sees_the_deadline_its_caller_sent_capped_by_the_maximum() {
    let svc = layer().layer(service_fn(remaining));
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[("x-request-timeout-ms", "250")], "250"),
        (
            &[
                ("content-type", "application/grpc"),
                ("grpc-timeout", "100m"),
            ],
            "100",
        ),
        (
            &[("content-type", "application/grpc"), ("grpc-timeout", "2S")],
            "2000",
        ),
        // Beyond the server's maximum: the maximum.
        (&[("x-request-timeout-ms", "60000")], "5000"),
        // None sent: the maximum too.
        (&[], "5000"),
    ];
    for (headers, left) in cases {
        let (status, _, body) = answer(svc.clone().oneshot(request(headers)).await.unwrap()).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, left),
            "{headers:?}"
        );
    }
    // A gRPC call's timeout is grpc-timeout: the HTTP header is not read for it.
    let grpc = request(&[
        ("content-type", "application/grpc"),
        ("x-request-timeout-ms", "10"),
    ]);
    let (_, _, body) = answer(svc.oneshot(grpc).await.unwrap()).await;
    assert_eq!(body, "5000");
}

/// A handler that never answers, and says when its future was dropped.
fn hanging(
    dropped: Arc<AtomicBool>,
) -> impl tower::Service<
    Request<Empty<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = BoxError,
    Future = impl Send,
> + Clone {
    service_fn(move |_: Request<Empty<Bytes>>| {
        let guard = DropFlag(dropped.clone());
        async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            Ok::<_, BoxError>(Response::new(Full::new(Bytes::new())))
        }
    })
}

struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn at_the_deadline_the_handler_is_cancelled_and_the_caller_told() {
    let dropped = Arc::new(AtomicBool::new(false));
    let svc = layer().layer(hanging(dropped.clone()));
    let started = Instant::now();
    let response = svc
        .clone()
        .oneshot(request(&[("x-request-timeout-ms", "100")]))
        .await
        .unwrap();
    assert_eq!(
        started.elapsed(),
        100 * MS,
        "cut at the deadline, not later"
    );
    assert!(dropped.load(SeqCst), "the handler's future was dropped");
    let (status, headers, body) = answer(response).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert!(body.contains("deadline-exceeded"), "{body}");

    let dropped = Arc::new(AtomicBool::new(false));
    let svc = layer().layer(hanging(dropped.clone()));
    let grpc = request(&[
        ("content-type", "application/grpc"),
        ("grpc-timeout", "50m"),
    ]);
    let (status, headers, _) = answer(svc.oneshot(grpc).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "gRPC answers trailers-only");
    assert_eq!(headers["grpc-status"], "4", "DEADLINE_EXCEEDED");
    assert!(dropped.load(SeqCst));
}

#[tokio::test(start_paused = true)]
async fn an_answer_in_time_passes_untouched() {
    let svc = layer().layer(service_fn(|_: Request<Empty<Bytes>>| async {
        tokio::time::sleep(80 * MS).await;
        Ok::<_, BoxError>(
            Response::builder()
                .status(StatusCode::CREATED)
                .header("x-order", "7")
                .body(Full::new(Bytes::from_static(b"made")))
                .unwrap(),
        )
    }));
    let response = svc
        .oneshot(request(&[("x-request-timeout-ms", "100")]))
        .await
        .unwrap();
    let (status, headers, body) = answer(response).await;
    assert_eq!(
        (status, &headers["x-order"], body.as_str()),
        (
            StatusCode::CREATED,
            &"7".parse::<http::HeaderValue>().unwrap(),
            "made"
        )
    );
}

#[tokio::test(start_paused = true)]
async fn a_timeout_that_does_not_read_is_refused_and_the_handler_never_runs() {
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let svc = layer().layer(service_fn(move |_: Request<Empty<Bytes>>| {
        flag.store(true, SeqCst);
        async { Ok::<_, BoxError>(Response::new(Full::new(Bytes::new()))) }
    }));
    let http_cases: [&[(&str, &str)]; 3] = [
        &[("x-request-timeout-ms", "soon")],
        &[("x-request-timeout-ms", "-5")],
        &[("x-request-timeout-ms", "5"), ("x-request-timeout-ms", "9")],
    ];
    for headers in http_cases {
        let (status, response_headers, body) =
            answer(svc.clone().oneshot(request(headers)).await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{headers:?}");
        assert_eq!(response_headers["content-type"], "application/problem+json");
        assert!(body.contains("malformed-timeout"), "{body}");
    }
    let grpc = request(&[("content-type", "application/grpc"), ("grpc-timeout", "1x")]);
    let (_, headers, _) = answer(svc.oneshot(grpc).await.unwrap()).await;
    assert_eq!(headers["grpc-status"], "3", "INVALID_ARGUMENT");
    assert!(!ran.load(SeqCst));
}

#[tokio::test(start_paused = true)]
async fn a_server_under_a_deadline_already_keeps_the_earlier_one() {
    let svc = layer().layer(service_fn(remaining));
    let outer = Deadline::after(40 * MS);
    let (_, _, body) = answer(
        outer
            .scope(svc.oneshot(request(&[("x-request-timeout-ms", "250")])))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body, "40");
}
