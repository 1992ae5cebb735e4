//! The layer's semantics, in memory and in tokio's paused time: exactly once, replay,
//! mismatch, scopes, what releases a key, leases, expiry and bad input.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use palisade_idempotency::record::{Fingerprint, Owner, RecordKey, StoredResponse};
use palisade_idempotency::store::{Claim, MemoryStore, Record, Store, StoreError, StoreFuture};
use palisade_idempotency::{
    IdempotencyConfig, IdempotencyConfigBuilder, IdempotencyLayer, REPLAYED, RequestBody, Scope,
};
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

type Body = Full<Bytes>;

/// What the handler does with a request, chosen by its path.
async fn handler(
    calls: Arc<AtomicUsize>,
    request: Request<RequestBody<Body>>,
) -> Result<Response<http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>>, BoxError> {
    let n = calls.fetch_add(1, SeqCst) + 1;
    let path = request.uri().path().to_owned();
    let body = request.into_body().collect().await?.to_bytes();
    let respond = |status: u16, body: Bytes| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("x-execution", n)
            .header("set-cookie", "session=secret")
            .header("date", "Sat, 21 Nov 2026 10:00:00 GMT")
            .body(Full::new(body).boxed_unsync())
            .unwrap()
    };
    match path.as_str() {
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok(respond(201, body))
        }
        "/brief" => {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(respond(201, body))
        }
        "/fail" => Ok(respond(503, Bytes::from_static(b"try later"))),
        "/error" => Err("the handler failed".into()),
        "/panic" => panic!("the handler panicked"),
        "/large" => Ok(respond(200, Bytes::from(vec![b'x'; 4096]))),
        "/trailers" => {
            let mut trailers = HeaderMap::new();
            trailers.insert("x-checksum", HeaderValue::from_static("abc"));
            let frames = vec![
                Ok(http_body::Frame::data(Bytes::from_static(b"part one, "))),
                Ok(http_body::Frame::data(Bytes::from_static(b"part two"))),
                Ok(http_body::Frame::trailers(trailers)),
            ];
            let stream = tokio_stream::iter(frames);
            Ok(Response::builder()
                .status(201)
                .header("x-execution", n)
                .body(StreamBody::new(stream).boxed_unsync())
                .unwrap())
        }
        _ => Ok(respond(201, body)),
    }
}

struct Harness {
    calls: Arc<AtomicUsize>,
    layer: IdempotencyLayer,
}

impl Harness {
    fn new(config: IdempotencyConfigBuilder) -> Self {
        Self::with_store(MemoryStore::new(), config)
    }

    fn with_store(store: impl Store, config: IdempotencyConfigBuilder) -> Self {
        Self {
            calls: Arc::new(AtomicUsize::new(0)),
            layer: IdempotencyLayer::with_config(store, config.build().unwrap()),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(SeqCst)
    }

    fn service(
        &self,
    ) -> impl Service<
        Request<Body>,
        Response = Response<
            palisade_idempotency::ResponseBody<
                http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>,
            >,
        >,
        Error = BoxError,
        Future: Send,
    > + Clone
    + Send
    + 'static {
        let calls = self.calls.clone();
        self.layer
            .layer(service_fn(move |request| handler(calls.clone(), request)))
    }

    async fn send(&self, request: Request<Body>) -> Result<Answer, BoxError> {
        let response = self.service().oneshot(request).await?;
        Ok(Answer::read(response).await)
    }
}

fn config() -> IdempotencyConfigBuilder {
    IdempotencyConfig::builder("orders", Scope::global())
}

#[derive(Debug, Clone, PartialEq)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    trailers: Option<HeaderMap>,
}

impl Answer {
    async fn read<B>(response: Response<B>) -> Self
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: std::fmt::Debug,
    {
        let (head, body) = response.into_parts();
        let collected = body.collect().await.expect("the body reads");
        let trailers = collected.trailers().cloned();
        Self {
            status: head.status,
            headers: head.headers,
            body: collected.to_bytes(),
            trailers,
        }
    }

    fn replayed(&self) -> bool {
        self.headers.get(REPLAYED).is_some_and(|v| v == "true")
    }

    fn problem(&self) -> serde_json::Value {
        assert_eq!(
            self.headers["content-type"], "application/problem+json",
            "a problem+json body"
        );
        serde_json::from_slice(&self.body).expect("valid JSON")
    }
}

fn post(path: &str, key: Option<&str>, body: &'static str) -> Request<Body> {
    let mut request = Request::post(path);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

/// On two worker threads in real time, so that claims really race in parallel (a
/// current-thread runtime would run them one after another).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_duplicates_run_the_handler_once() {
    let harness = Arc::new(Harness::new(
        config().wait_for_in_flight(Duration::from_secs(30)),
    ));
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let harness = harness.clone();
            tokio::spawn(async move {
                harness
                    .send(post("/brief", Some("\"order-1\""), "{\"qty\":1}"))
                    .await
            })
        })
        .collect();
    let mut replays = 0;
    for task in tasks {
        let answer = task.await.unwrap().unwrap();
        assert_eq!(answer.status, StatusCode::CREATED);
        assert_eq!(answer.body, "{\"qty\":1}");
        assert_eq!(answer.headers["x-execution"], "1");
        replays += usize::from(answer.replayed());
    }
    assert_eq!(harness.calls(), 1, "the handler ran once");
    assert_eq!(replays, 999);
}

#[tokio::test(start_paused = true)]
async fn a_replay_is_byte_identical_and_does_not_call_the_handler() {
    let harness = Harness::new(config());
    let first = harness
        .send(post("/trailers", Some("k1"), "{}"))
        .await
        .unwrap();
    assert!(!first.replayed());
    let second = harness
        .send(post("/trailers", Some("\"k1\""), "{}"))
        .await
        .unwrap();
    assert_eq!(harness.calls(), 1);
    assert!(second.replayed(), "marked Idempotent-Replayed: true");
    assert_eq!(second.status, first.status);
    assert_eq!(second.body, "part one, part two");
    assert_eq!(second.body, first.body);
    assert_eq!(second.trailers, first.trailers);
    assert_eq!(second.trailers.unwrap()["x-checksum"], "abc");
    let mut headers = second.headers.clone();
    headers.remove(REPLAYED);
    headers.remove("content-length");
    let mut original = first.headers.clone();
    original.remove("content-length");
    assert_eq!(headers, original);

    // Set-Cookie and Date are not stored; the rest is.
    harness.send(post("/", Some("k2"), "{}")).await.unwrap();
    let replay = harness.send(post("/", Some("k2"), "{}")).await.unwrap();
    assert!(replay.replayed());
    assert!(replay.headers.get("set-cookie").is_none());
    assert!(replay.headers.get("date").is_none());
    assert_eq!(replay.headers["content-type"], "application/json");
}

#[tokio::test(start_paused = true)]
async fn a_key_reused_for_a_different_request_is_refused_with_422() {
    let harness = Harness::new(config());
    harness
        .send(post("/orders?a=1", Some("k"), "{\"qty\":1}"))
        .await
        .unwrap();
    for other in [
        post("/orders?a=1", Some("k"), "{\"qty\":2}"),
        post("/other?a=1", Some("k"), "{\"qty\":1}"),
        post("/orders?a=2", Some("k"), "{\"qty\":1}"),
    ] {
        let answer = harness.send(other).await.unwrap();
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            answer.problem()["type"],
            "urn:palisade:problem:idempotency-key-mismatch"
        );
    }
    assert_eq!(harness.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn one_caller_never_receives_another_callers_response() {
    let harness = Harness::new(IdempotencyConfig::builder(
        "test",
        Scope::from_fn(|parts| {
            parts
                .headers
                .get("x-user")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        }),
    ));
    let as_user = |user: &'static str, body: &'static str| {
        let mut request = post("/", Some("same-key"), body);
        request
            .headers_mut()
            .insert("x-user", HeaderValue::from_static(user));
        request
    };
    let alice = harness
        .send(as_user("alice", "alice's order"))
        .await
        .unwrap();
    let bob = harness.send(as_user("bob", "bob's order")).await.unwrap();
    assert_eq!(alice.body, "alice's order");
    assert_eq!(bob.body, "bob's order");
    assert!(!bob.replayed());
    assert_eq!(harness.calls(), 2);

    let anonymous = harness
        .send(post("/", Some("same-key"), "x"))
        .await
        .unwrap();
    assert_eq!(anonymous.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        anonymous.problem()["type"],
        "urn:palisade:problem:idempotency-key-unscoped"
    );
}

#[tokio::test(start_paused = true)]
async fn failures_release_the_key_so_a_retry_runs() {
    let harness = Harness::new(config());
    // 5xx
    for _ in 0..2 {
        let answer = harness
            .send(post("/fail", Some("k-503"), ""))
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!answer.replayed());
    }
    assert_eq!(harness.calls(), 2, "a 503 is not stored");

    // An error from the service.
    for _ in 0..2 {
        assert!(
            harness
                .send(post("/error", Some("k-err"), ""))
                .await
                .is_err()
        );
    }
    assert_eq!(harness.calls(), 4);

    // A response too large to store is sent in full, and not stored.
    let small = Harness::new(config().max_response(1024));
    for _ in 0..2 {
        let answer = small.send(post("/large", Some("k-big"), "")).await.unwrap();
        assert_eq!(answer.body.len(), 4096);
    }
    assert_eq!(small.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_panic_or_a_dropped_request_releases_the_key() {
    let harness = Arc::new(Harness::new(config()));
    let panicked = {
        let harness = harness.clone();
        tokio::spawn(async move { harness.send(post("/panic", Some("k-panic"), "")).await })
    };
    assert!(panicked.await.unwrap_err().is_panic());
    // The release runs in a task of its own; let it.
    tokio::task::yield_now().await;
    let retry = harness.send(post("/", Some("k-panic"), "")).await.unwrap();
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(harness.calls(), 2, "the retry ran");

    // The client goes away while the handler runs.
    let dropped = {
        let harness = harness.clone();
        tokio::spawn(async move { harness.send(post("/slow", Some("k-drop"), "")).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    dropped.abort();
    let _ = dropped.await;
    tokio::task::yield_now().await;
    let calls = harness.calls();
    let retry = harness.send(post("/", Some("k-drop"), "")).await.unwrap();
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(harness.calls(), calls + 1, "the retry ran");
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_of_a_running_request_gets_409_while_the_lease_is_renewed() {
    // The handler takes 10 s; the lease is 3 s and renewed while it runs.
    let harness = Arc::new(Harness::new(config().lease(Duration::from_secs(3))));
    let first = {
        let harness = harness.clone();
        tokio::spawn(async move { harness.send(post("/slow", Some("k"), "")).await })
    };
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let duplicate = harness.send(post("/slow", Some("k"), "")).await.unwrap();
        assert_eq!(duplicate.status, StatusCode::CONFLICT);
        assert_eq!(duplicate.headers["retry-after"], "1");
        assert_eq!(
            duplicate.problem()["type"],
            "urn:palisade:problem:idempotency-key-in-flight"
        );
    }
    assert_eq!(first.await.unwrap().unwrap().status, StatusCode::CREATED);
    assert_eq!(harness.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_crashed_holders_key_is_free_after_its_lease_and_its_late_write_is_refused() {
    let store = Arc::new(MemoryStore::new());
    let record = RecordKey::new("", "k");
    let fingerprint = Fingerprint([7; 32]);
    let (crashed, retry) = (Owner::random(), Owner::random());
    let lease = Duration::from_secs(60);
    assert_eq!(
        store
            .claim(&record, fingerprint, crashed, lease)
            .await
            .unwrap(),
        Claim::Claimed
    );
    tokio::time::advance(lease + Duration::from_secs(1)).await;
    assert_eq!(
        store
            .claim(&record, fingerprint, retry, lease)
            .await
            .unwrap(),
        Claim::Claimed
    );

    let late = StoredResponse {
        status: StatusCode::CREATED,
        headers: HeaderMap::new(),
        body: Bytes::from_static(b"late"),
        trailers: None,
    };
    let ttl = Duration::from_secs(3600);
    assert!(
        !store.complete(&record, crashed, &late, ttl).await.unwrap(),
        "fenced"
    );
    assert!(!store.release(&record, crashed).await.unwrap(), "fenced");
    assert!(
        !store.extend(&record, crashed, lease).await.unwrap(),
        "fenced"
    );
    assert_eq!(
        store.lookup(&record).await.unwrap(),
        Some(Record::InFlight { fingerprint }),
        "the new holder's claim is intact"
    );
    assert!(store.complete(&record, retry, &late, ttl).await.unwrap());

    // Through the layer: a holder that vanished without releasing (its future leaked)
    // blocks the key only until its lease runs out.
    let harness = Harness::new(config().lease(Duration::from_secs(5)));
    let vanished = Box::pin(harness.send(post("/slow", Some("k"), "")));
    let mut vanished = vanished;
    // Poll it until the handler runs, then leak it: no release, no heartbeat.
    let _ = tokio::time::timeout(Duration::from_secs(1), &mut vanished).await;
    std::mem::forget(vanished);
    assert_eq!(
        harness
            .send(post("/slow", Some("k"), ""))
            .await
            .unwrap()
            .status,
        StatusCode::CONFLICT
    );
    tokio::time::advance(Duration::from_secs(6)).await;
    let retry = harness.send(post("/", Some("k"), "")).await.unwrap();
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(harness.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn records_expire_after_their_ttl() {
    let harness = Harness::new(
        config()
            .lease(Duration::from_secs(1))
            .ttl(Duration::from_secs(60)),
    );
    harness.send(post("/", Some("k"), "")).await.unwrap();
    assert!(
        harness
            .send(post("/", Some("k"), ""))
            .await
            .unwrap()
            .replayed()
    );
    tokio::time::advance(Duration::from_secs(61)).await;
    assert!(
        !harness
            .send(post("/", Some("k"), ""))
            .await
            .unwrap()
            .replayed()
    );
    assert_eq!(harness.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn malformed_keys_get_400_with_a_problem_that_says_what_is_wrong() {
    let harness = Harness::new(config());
    let long = "k".repeat(256);
    let cases: Vec<(Vec<&[u8]>, &str)> = vec![
        (vec![b"\"\""], "empty"),
        (vec![long.as_bytes()], "longer than 255"),
        (vec!["\"clé\"".as_bytes()], "outside printable ASCII"),
        (vec![b"\"abc"], "unbalanced"),
        (vec![b"\"a\\bc\""], "backslash"),
        (vec![b"a", b"b"], "more than once"),
    ];
    for (values, says) in cases {
        let mut request = post("/", None, "{}");
        for value in values {
            request
                .headers_mut()
                .append("idempotency-key", HeaderValue::from_bytes(value).unwrap());
        }
        let answer = harness.send(request).await.unwrap();
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{says}");
        let problem = answer.problem();
        assert_eq!(problem["status"], 400);
        assert_eq!(
            problem["type"],
            "urn:palisade:problem:idempotency-key-malformed"
        );
        assert!(
            problem["detail"].as_str().unwrap().contains(says),
            "{problem} should say {says}"
        );
    }
    assert_eq!(harness.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_keyed_body_over_the_limit_gets_413() {
    let harness = Harness::new(config());
    let big = Request::post("/")
        .header("idempotency-key", "k")
        .body(Full::new(Bytes::from(vec![0u8; 2 << 20])))
        .unwrap();
    let answer = harness.send(big).await.unwrap();
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.problem()["status"], 413);
    assert_eq!(harness.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn other_methods_and_keyless_requests_pass_through_unless_the_key_is_required() {
    let harness = Harness::new(config());
    let get = Request::get("/")
        .header("idempotency-key", "k")
        .body(Body::default())
        .unwrap();
    for _ in 0..2 {
        harness.send(get.clone()).await.unwrap();
        harness.send(post("/", None, "")).await.unwrap();
    }
    assert_eq!(harness.calls(), 4, "nothing replayed");

    let strict = Harness::new(config().required(true).methods([Method::POST]));
    let missing = strict.send(post("/", None, "")).await.unwrap();
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        missing.problem()["type"],
        "urn:palisade:problem:idempotency-key-missing"
    );
    let patch = Request::patch("/").body(Body::default()).unwrap();
    assert_eq!(
        strict.send(patch).await.unwrap().status,
        StatusCode::CREATED
    );
}

/// A store that is down.
struct Down;

impl Store for Down {
    fn claim<'a>(
        &'a self,
        _: &'a RecordKey,
        _: Fingerprint,
        _: Owner,
        _: Duration,
    ) -> StoreFuture<'a, Claim> {
        Box::pin(async { Err(StoreError::new("connection refused")) })
    }
    fn complete<'a>(
        &'a self,
        _: &'a RecordKey,
        _: Owner,
        _: &'a StoredResponse,
        _: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async { Err(StoreError::new("connection refused")) })
    }
    fn release<'a>(&'a self, _: &'a RecordKey, _: Owner) -> StoreFuture<'a, bool> {
        Box::pin(async { Err(StoreError::new("connection refused")) })
    }
    fn extend<'a>(&'a self, _: &'a RecordKey, _: Owner, _: Duration) -> StoreFuture<'a, bool> {
        Box::pin(async { Err(StoreError::new("connection refused")) })
    }
    fn lookup<'a>(&'a self, _: &'a RecordKey) -> StoreFuture<'a, Option<Record>> {
        Box::pin(async { Err(StoreError::new("connection refused")) })
    }
}

#[tokio::test(start_paused = true)]
async fn a_store_that_fails_closes_the_door_unless_told_to_fail_open() {
    let closed = Harness::with_store(Down, config());
    let answer = closed.send(post("/", Some("k"), "")).await.unwrap();
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.headers["retry-after"], "1");
    assert_eq!(
        answer.problem()["type"],
        "urn:palisade:problem:idempotency-store-unavailable"
    );
    assert_eq!(closed.calls(), 0);

    let open = Harness::with_store(Down, config().fail_open(true));
    let answer = open.send(post("/", Some("k"), "")).await.unwrap();
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(open.calls(), 1);
}

/// A store that is down, and counts how often it was asked to claim.
struct CountedDown(Arc<AtomicUsize>);

impl Store for CountedDown {
    fn claim<'a>(
        &'a self,
        key: &'a RecordKey,
        fingerprint: Fingerprint,
        owner: Owner,
        lease: Duration,
    ) -> StoreFuture<'a, Claim> {
        self.0.fetch_add(1, SeqCst);
        Down.claim(key, fingerprint, owner, lease)
    }
    fn complete<'a>(
        &'a self,
        key: &'a RecordKey,
        owner: Owner,
        response: &'a StoredResponse,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Down.complete(key, owner, response, ttl)
    }
    fn release<'a>(&'a self, key: &'a RecordKey, owner: Owner) -> StoreFuture<'a, bool> {
        Down.release(key, owner)
    }
    fn extend<'a>(
        &'a self,
        key: &'a RecordKey,
        owner: Owner,
        lease: Duration,
    ) -> StoreFuture<'a, bool> {
        Down.extend(key, owner, lease)
    }
    fn lookup<'a>(&'a self, key: &'a RecordKey) -> StoreFuture<'a, Option<Record>> {
        Down.lookup(key)
    }
}

#[tokio::test(start_paused = true)]
async fn a_store_that_keeps_failing_is_not_asked_again_until_a_probe_is_due() {
    let asked = Arc::new(AtomicUsize::new(0));
    let harness = Harness::with_store(CountedDown(asked.clone()), config());
    let refused = async || {
        let answer = harness.send(post("/", Some("k"), "")).await.unwrap();
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            answer.problem()["type"],
            "urn:palisade:problem:idempotency-store-unavailable"
        );
    };
    // Three failures in a row open the store's breaker: the next requests are refused
    // without asking the store (without waiting out its timeout, were it a real one).
    for _ in 0..10 {
        refused().await;
    }
    assert_eq!(asked.load(SeqCst), 3);
    // Once the breaker's open time has passed, one request probes the store; it fails, and
    // the breaker opens again, for longer.
    tokio::time::sleep(Duration::from_secs(2)).await;
    refused().await;
    refused().await;
    assert_eq!(asked.load(SeqCst), 4);
    assert_eq!(harness.calls(), 0, "fail-closed: the handler never ran");
}

#[tokio::test(start_paused = true)]
async fn results_are_counted() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let harness = Harness::new(config());
    harness.send(post("/", Some("k"), "a")).await.unwrap();
    harness.send(post("/", Some("k"), "a")).await.unwrap();
    harness.send(post("/", Some("k"), "b")).await.unwrap();
    harness.send(post("/fail", Some("f"), "")).await.unwrap();

    let mut counts = std::collections::BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        // Every result is registered when the layer is made; count those that happened.
        if key.key().name() == palisade_idempotency::metrics::REQUESTS_TOTAL
            && let DebugValue::Counter(n) = value
            && n > 0
        {
            let result = key
                .key()
                .labels()
                .find(|l| l.key() == "result")
                .unwrap()
                .value()
                .to_owned();
            counts.insert(result, n);
        }
    }
    let expected = [
        ("executed", 1),
        ("mismatch", 1),
        ("released", 1),
        ("replayed", 1),
    ];
    assert_eq!(counts, expected.map(|(r, n)| (r.to_owned(), n)).into());
}

#[tokio::test(start_paused = true)]
async fn a_tiny_lease_is_renewed_without_panicking() {
    let harness = Harness::new(
        config()
            .lease(Duration::from_nanos(2))
            .ttl(Duration::from_secs(1)),
    );
    let answer = harness.send(post("/slow", Some("k"), "")).await.unwrap();
    assert_eq!(answer.status, StatusCode::CREATED);
}
