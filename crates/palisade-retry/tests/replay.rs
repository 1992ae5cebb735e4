//! Request bodies that are streamed, not `Clone`: replayed byte for byte, or — over the
//! limit, or failing — sent once and not retried.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// Bounds a replay that waits for a body; in paused time, reached only if it never comes.
const PATIENCE: Duration = Duration::from_secs(60);

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
    impl Service<Request<ReplayBody<Streamed>>, Response = Response<()>, Error = BoxError> + Clone,
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
    HttpRetryLayer::with_config(
        RetryConfig::builder("replay")
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

/// A dependency that answers 503 after reading `read[n]` frames of attempt n's body (all of
/// it once the list runs out, then 200), and records what the reading attempt delivered.
#[allow(clippy::type_complexity)]
fn partial_reader(
    read: Vec<usize>,
) -> (
    impl Service<Request<ReplayBody<Streamed>>, Response = Response<()>, Error = BoxError> + Clone,
    Arc<Mutex<Vec<Bytes>>>,
) {
    let log: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let attempts = Arc::new(Mutex::new(read.into_iter()));
    let seen = log.clone();
    let svc = service_fn(move |req: Request<ReplayBody<Streamed>>| {
        let (seen, frames) = (seen.clone(), attempts.lock().unwrap().next());
        async move {
            let mut body = req.into_body();
            let Some(frames) = frames else {
                let bytes = body.collect().await?.to_bytes();
                seen.lock().unwrap().push(bytes);
                return Ok(Response::new(()));
            };
            for _ in 0..frames {
                body.frame().await.expect("a frame")?;
            }
            // The body is dropped here, half-read, as a server refusing at once drops it.
            Ok(Response::builder().status(503).body(()).unwrap())
        }
    });
    (svc, log)
}

#[tokio::test(start_paused = true)]
async fn a_body_the_server_did_not_read_to_its_end_is_replayed_whole() {
    let mut trailers = HeaderMap::new();
    trailers.insert("checksum", "abc123".parse().unwrap());
    let request = || {
        streamed(vec![
            data("one "),
            data("two "),
            data("three"),
            Ok(Frame::trailers(trailers.clone())),
        ])
    };
    // Refused unread, then after one frame, then read whole: the third attempt gets the
    // recording and, after it, the rest of the caller's body that no attempt had read.
    for read in [vec![0], vec![1], vec![0, 2], vec![3]] {
        let (dep, log) = partial_reader(read.clone());
        let response = tokio::time::timeout(PATIENCE, layer(1024).layer(dep).oneshot(request()))
            .await
            .expect("the replay does not wait forever")
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "after reading {read:?}");
        assert_eq!(
            log.lock().unwrap().as_slice(),
            [Bytes::from_static(b"one two three")],
            "after reading {read:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_replay_waits_for_an_attempt_still_holding_the_body() {
    // The first attempt's body outlives its response, as a connection still sending it
    // would: the second attempt replays what was read, then waits until it is let go.
    let held: Arc<Mutex<Option<ReplayBody<Streamed>>>> = Arc::default();
    let released = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (holder, flag) = (held.clone(), released.clone());
    let dep = service_fn(move |req: Request<ReplayBody<Streamed>>| {
        let (holder, flag) = (holder.clone(), flag.clone());
        async move {
            let mut body = req.into_body();
            if !flag.load(SeqCst) && holder.lock().unwrap().is_none() {
                body.frame().await.expect("a frame")?;
                *holder.lock().unwrap() = Some(body);
                // Let go of the body a second after the refusal.
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    flag.store(true, SeqCst);
                    holder.lock().unwrap().take();
                });
                return Ok::<_, BoxError>(Response::builder().status(503).body(()).unwrap());
            }
            let bytes = body.collect().await?.to_bytes();
            assert!(flag.load(SeqCst), "the replay waited for the first attempt");
            assert_eq!(&bytes[..], b"one two three");
            Ok(Response::new(()))
        }
    });
    let request = streamed(vec![data("one "), data("two "), data("three")]);
    let response = tokio::time::timeout(PATIENCE, layer(1024).layer(dep).oneshot(request))
        .await
        .expect("the replay does not wait forever")
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(released.load(SeqCst));
}

#[tokio::test(start_paused = true)]
async fn a_body_that_outgrows_the_limit_after_a_hand_over_is_sent_whole_and_not_retried_again() {
    // The first attempt reads 10 bytes and refuses; the second gets them and reads the rest
    // from the caller's body, going over the limit: it is sent whole, and is the last.
    let (dep, log) = partial_reader(vec![1, 3, 3]);
    let request = streamed(vec![data("0123456789"), data("0123456789"), data("01234")]);
    let response = tokio::time::timeout(PATIENCE, layer(16).layer(dep).oneshot(request))
        .await
        .expect("the replay does not wait forever")
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        log.lock().unwrap().is_empty(),
        "no attempt read it a third time"
    );
}
