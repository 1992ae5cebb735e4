//! Request bodies that are streamed, not `Clone`: replayed byte for byte, or — over the
//! limit, or failing — sent once and not retried.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use palisade_retry::http::ReplayBody;
use palisade_retry::{HttpRetryLayer, RetryConfig};
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

type Chunks = Vec<Result<Frame<Bytes>, BoxError>>;
type Streamed = StreamBody<tokio_stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, BoxError>>>>;

/// A streaming PUT body: these chunks, one frame each, with no size known in advance.
fn streamed(frames: Chunks) -> Request<Streamed> {
    Request::put("http://dependency/blob")
        .body(StreamBody::new(tokio_stream::iter(frames)))
        .unwrap()
}

fn data(s: &'static str) -> Result<Frame<Bytes>, BoxError> {
    Ok(Frame::data(Bytes::from_static(s.as_bytes())))
}

/// What one attempt delivered: its bytes and trailers, or the body's error.
type Delivered = Result<(Bytes, Option<HeaderMap>), String>;

/// A dependency that reads each request body to its end, then answers 503 `failures` times
/// and 200 after; it records what every attempt delivered.
#[allow(clippy::type_complexity)]
fn reader(
    failures: usize,
) -> (
    impl Service<
        Request<ReplayBody<Streamed>>,
        Response = Response<()>,
        Error = BoxError,
        Future = impl Send,
    > + Clone,
    Arc<Mutex<Vec<Delivered>>>,
) {
    let log: Arc<Mutex<Vec<Delivered>>> = Arc::default();
    let seen = log.clone();
    let svc = service_fn(move |req: Request<ReplayBody<Streamed>>| {
        let seen = seen.clone();
        async move {
            let delivered = match req.into_body().collect().await {
                Ok(collected) => {
                    let trailers = collected.trailers().cloned();
                    Ok((collected.to_bytes(), trailers))
                }
                Err(error) => Err(error.to_string()),
            };
            let n = {
                let mut seen = seen.lock().unwrap();
                seen.push(delivered.clone());
                seen.len()
            };
            match delivered {
                // A server that could not read the request: the transport failed.
                Err(error) => Err(BoxError::from(error)),
                Ok(_) if n <= failures => Ok(Response::builder().status(503).body(()).unwrap()),
                Ok(_) => Ok(Response::new(())),
            }
        }
    });
    (svc, log)
}

fn layer(limit: usize) -> HttpRetryLayer {
    HttpRetryLayer::new(
        RetryConfig::builder()
            .name("replay")
            .max_attempts(3)
            .replay_limit(limit)
            .build()
            .unwrap(),
    )
}

#[tokio::test(start_paused = true)]
async fn a_streamed_body_is_replayed_byte_for_byte_with_its_trailers() {
    let mut trailers = HeaderMap::new();
    trailers.insert("checksum", "abc123".parse().unwrap());
    let request = streamed(vec![
        data("hello, "),
        data("streaming "),
        data("world"),
        Ok(Frame::trailers(trailers.clone())),
    ]);
    let (dep, log) = reader(2);
    let response = layer(1024).layer(dep).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 3);
    for delivered in log.iter() {
        let (bytes, got_trailers) = delivered.as_ref().unwrap();
        assert_eq!(&bytes[..], b"hello, streaming world");
        assert_eq!(got_trailers.as_ref(), Some(&trailers));
    }
}

#[tokio::test(start_paused = true)]
async fn a_body_over_the_limit_is_sent_once_and_not_retried() {
    let request = streamed(vec![data("0123456789"), data("0123456789"), data("01234")]);
    let (dep, log) = reader(2);
    let response = layer(16).layer(dep).oneshot(request).await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "the 503 is returned as it was"
    );
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        log[0].as_ref().unwrap().0.len(),
        25,
        "sent in full, untouched"
    );
}

#[tokio::test(start_paused = true)]
async fn a_body_that_fails_is_not_retried_and_its_error_reaches_the_caller() {
    let request = streamed(vec![
        data("partial "),
        Err(BoxError::from("upload interrupted")),
    ]);
    let (dep, log) = reader(0);
    let error = layer(1024).layer(dep).oneshot(request).await.unwrap_err();
    assert_eq!(error.to_string(), "upload interrupted");
    assert_eq!(log.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_body_the_server_did_not_read_to_its_end_is_not_replayed() {
    // The dependency answers 503 without reading the body: nothing complete to replay.
    let calls = Arc::new(Mutex::new(0));
    let counter = calls.clone();
    let dep = service_fn(move |_: Request<ReplayBody<Streamed>>| {
        *counter.lock().unwrap() += 1;
        async { Ok::<_, Infallible>(Response::builder().status(503).body(()).unwrap()) }
    });
    let request = streamed(vec![data("never read")]);
    let response = layer(1024).layer(dep).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(*calls.lock().unwrap(), 1);
}
