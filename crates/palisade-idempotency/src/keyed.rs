//! The life of a keyed request: buffer and fingerprint it, claim its record, then run it
//! and store (or release) the outcome — or replay, refuse, or wait, as the record says.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Response, header};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use palisade_core::{grpc::is_grpc, rejection_response};
use tokio::time::Instant;
use tower_service::Service;

use crate::body::{RequestBody, ResponseBody};
use crate::error::Refusal;
use crate::layer::Shared;
use crate::metrics::{IdempotencyMetrics, Op, Outcome};
use crate::record::{Owner, RecordKey, StoredResponse, is_replayable};
use crate::store::{Claim, Record, Store, StoreError};

use palisade_core::BoxError;

/// The header a replayed response carries.
pub const REPLAYED: &str = "idempotent-replayed";

/// How long a waiting duplicate sleeps between two looks at the record, at first and at
/// most: short while the first request is likely about to finish, then backing off.
const FIRST_LOOK: Duration = Duration::from_millis(10);
const LAST_LOOK: Duration = Duration::from_millis(200);

pub(crate) async fn run<S, B, RB>(
    mut inner: S,
    shared: Arc<Shared>,
    key: String,
    request: Request<B>,
) -> Result<Response<ResponseBody<RB>>, S::Error>
where
    S: Service<Request<RequestBody<B>>, Response = Response<RB>>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    RB: Body<Data = Bytes>,
    RB::Error: Into<BoxError>,
{
    let config = &shared.config;
    let (parts, body) = request.into_parts();
    let grpc = is_grpc(&parts.headers);
    let refuse = |refusal: Refusal| Ok(refused(&shared.metrics, grpc, &refusal));

    let Some(scope) = config.scope.of(&parts) else {
        return refuse(Refusal::Unscoped);
    };
    let record = RecordKey::new(&scope, &key);
    let body = match Limited::new(body, config.max_body).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => {
            return refuse(Refusal::BodyTooLarge {
                limit: config.max_body,
            });
        }
        Err(_) => return refuse(Refusal::BodyUnreadable),
    };
    let fingerprint = config.fingerprinter.fingerprint(&parts, &body);
    let owner = Owner::random();
    let store = Timed {
        store: &*shared.store,
        metrics: &shared.metrics,
    };

    let deadline = config.wait.map(|wait| Instant::now() + wait);
    let mut pause = FIRST_LOOK;
    loop {
        let claim = match store.claim(&record, fingerprint, owner, config.lease).await {
            Ok(claim) => claim,
            Err(error) if config.fail_open => {
                tracing::warn!(%error, "idempotency store failed; running the request unprotected (fail-open)");
                shared.metrics.request(Outcome::Unprotected);
                let request = Request::from_parts(parts, RequestBody::buffered(body));
                return Ok(inner.call(request).await?.map(ResponseBody::pass));
            }
            Err(error) => {
                tracing::warn!(%error, "idempotency store failed; refusing the request (fail-closed)");
                return refuse(Refusal::StoreUnavailable {
                    retry_after: config.retry_after,
                });
            }
        };
        match claim {
            Claim::Claimed => break,
            Claim::Existing(
                Record::InFlight { fingerprint: first }
                | Record::Completed {
                    fingerprint: first, ..
                },
            ) if first != fingerprint => return refuse(Refusal::Mismatch),
            Claim::Existing(Record::Completed { response, .. }) => {
                shared.metrics.request(Outcome::Replayed);
                return Ok(replay(response));
            }
            Claim::Existing(Record::InFlight { .. }) => {
                let Some(deadline) = deadline.filter(|d| Instant::now() < *d) else {
                    return refuse(Refusal::InFlight {
                        retry_after: config.retry_after,
                    });
                };
                // Wait for the first to finish: then its response is replayed, or, if it
                // released the key, this request claims it and runs.
                tokio::time::sleep(pause.min(deadline - Instant::now())).await;
                pause = (pause * 2).min(LAST_LOOK);
            }
        }
    }

    // Claimed: this request runs. The guard releases the key if the future is dropped (the
    // client went away) or unwinds (the handler panicked) before the outcome is settled.
    let mut guard = ClaimGuard {
        store: shared.store.clone(),
        record,
        owner,
        armed: true,
    };
    let call = inner.call(Request::from_parts(parts, RequestBody::buffered(body)));
    let outcome = with_heartbeat(call, &store, &record, owner, config.lease).await;
    let response = match outcome {
        Ok(response) => response,
        Err(error) => {
            guard.release(&store, "the service failed").await;
            shared.metrics.request(Outcome::Released);
            return Err(error);
        }
    };

    let (head, body) = response.into_parts();
    let (data, trailers) = match read_whole(Box::pin(body), config.max_response).await {
        Whole::Read(data, trailers) => (data, trailers),
        Whole::TooLarge(read, rest) => {
            guard
                .release(&store, "the response is too large to store")
                .await;
            shared.metrics.request(Outcome::Released);
            return Ok(Response::from_parts(
                head,
                ResponseBody::then_rest(read, rest),
            ));
        }
        Whole::Failed(read, error) => {
            guard.release(&store, "the response body failed").await;
            shared.metrics.request(Outcome::Released);
            return Ok(Response::from_parts(
                head,
                ResponseBody::failed(read, error),
            ));
        }
    };

    if !config
        .policy
        .should_store(head.status, &head.headers, trailers.as_ref())
    {
        guard.release(&store, "the response is not final").await;
        shared.metrics.request(Outcome::Released);
        return Ok(Response::from_parts(
            head,
            ResponseBody::whole(data, trailers),
        ));
    }
    let stored = StoredResponse {
        status: head.status,
        headers: replayable(&head.headers),
        body: data.clone(),
        trailers: trailers.clone(),
    };
    let result = match store.complete(&record, owner, &stored, config.ttl).await {
        Ok(true) => {
            guard.armed = false;
            Outcome::Executed
        }
        Ok(false) => {
            // The lease ran out and someone else holds the key now: it is theirs to settle.
            tracing::warn!(
                ?record,
                "the claim was lost before the response could be stored"
            );
            guard.armed = false;
            Outcome::Released
        }
        Err(_) => {
            guard
                .release(&store, "the response could not be stored")
                .await;
            Outcome::Released
        }
    };
    shared.metrics.request(result);
    Ok(Response::from_parts(
        head,
        ResponseBody::whole(data, trailers),
    ))
}

/// Runs `call`, renewing the claim's lease every third of it meanwhile.
async fn with_heartbeat<F: Future>(
    call: F,
    store: &Timed<'_>,
    record: &RecordKey,
    owner: Owner,
    lease: Duration,
) -> F::Output {
    let heartbeat = async {
        // A third of the lease, and never zero: `interval` refuses a zero period.
        let beat = (lease / 3).max(Duration::from_millis(1));
        let mut ticks = tokio::time::interval_at(Instant::now() + beat, beat);
        loop {
            ticks.tick().await;
            match store.extend(record, owner, lease).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(?record, "the claim was lost while the request ran");
                    return std::future::pending().await;
                }
                // Counted by `Timed`; the next beat tries again.
                Err(_) => {}
            }
        }
    };
    tokio::select! {
        biased;
        output = call => output,
        never = heartbeat => never,
    }
}

/// A response body read whole, or as far as it could be.
enum Whole<B> {
    Read(Bytes, Option<HeaderMap>),
    TooLarge(Bytes, Pin<Box<B>>),
    Failed(Bytes, BoxError),
}

async fn read_whole<B>(mut body: Pin<Box<B>>, limit: usize) -> Whole<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let mut data = BytesMut::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => match frame.into_data() {
                Ok(chunk) => {
                    data.extend_from_slice(&chunk);
                    if data.len() > limit {
                        return Whole::TooLarge(data.freeze(), body);
                    }
                }
                Err(frame) => {
                    if let Ok(more) = frame.into_trailers() {
                        trailers.get_or_insert_with(HeaderMap::new).extend(more);
                    }
                }
            },
            Err(error) => return Whole::Failed(data.freeze(), error.into()),
        }
    }
    Whole::Read(data.freeze(), trailers)
}

/// The headers of a response worth storing.
fn replayable(headers: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if is_replayable(name) {
            kept.append(name.clone(), value.clone());
        }
    }
    kept
}

/// The stored response, as it was, marked as a replay.
fn replay<B>(stored: StoredResponse) -> Response<ResponseBody<B>> {
    let mut response = Response::new(ResponseBody::whole(stored.body, stored.trailers));
    *response.status_mut() = stored.status;
    *response.headers_mut() = stored.headers;
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

/// The answer to a refused request, in its protocol (problem+json, or a gRPC status),
/// logged and counted.
pub(crate) fn refused<B>(
    metrics: &IdempotencyMetrics,
    grpc: bool,
    refusal: &Refusal,
) -> Response<ResponseBody<B>> {
    tracing::debug!(%refusal, "keyed request refused");
    metrics.request(refusal.result());
    let (mut head, body) = rejection_response::<B>(refusal, grpc).into_parts();
    let body = body.into_rejection().unwrap_or_default();
    if !grpc {
        head.headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    Response::from_parts(head, ResponseBody::whole(body, None))
}

/// The store, with each operation timed and its failures counted.
struct Timed<'a> {
    store: &'a dyn Store,
    metrics: &'a IdempotencyMetrics,
}

impl Timed<'_> {
    async fn op<T>(
        &self,
        op: Op,
        future: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = future.await;
        self.metrics
            .store_op(op, started.elapsed(), result.is_err());
        if let Err(error) = &result {
            tracing::warn!(op = op.label(), %error, "idempotency store operation failed");
        }
        result
    }

    async fn claim(
        &self,
        record: &RecordKey,
        fingerprint: crate::record::Fingerprint,
        owner: Owner,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        self.op(
            Op::Claim,
            self.store.claim(record, fingerprint, owner, lease),
        )
        .await
    }

    async fn complete(
        &self,
        record: &RecordKey,
        owner: Owner,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.op(
            Op::Complete,
            self.store.complete(record, owner, response, ttl),
        )
        .await
    }

    async fn extend(
        &self,
        record: &RecordKey,
        owner: Owner,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        self.op(Op::Extend, self.store.extend(record, owner, lease))
            .await
    }

    async fn release(&self, record: &RecordKey, owner: Owner) -> Result<bool, StoreError> {
        self.op(Op::Release, self.store.release(record, owner))
            .await
    }
}

/// Releases a claim that was not settled: at once when the outcome says so, or from a task
/// when the request's future is dropped or unwinds with the claim still held.
struct ClaimGuard {
    store: Arc<dyn Store>,
    record: RecordKey,
    owner: Owner,
    armed: bool,
}

impl ClaimGuard {
    async fn release(&mut self, store: &Timed<'_>, why: &'static str) {
        self.armed = false;
        tracing::debug!(record = ?self.record, why, "releasing the idempotency key");
        // A failed release leaves the claim to run out with its lease; nothing better to do.
        let _ = store.release(&self.record, self.owner).await;
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (store, record, owner) = (self.store.clone(), self.record, self.owner);
        tracing::debug!(
            ?record,
            "request dropped or panicked with its key claimed; releasing it"
        );
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let _ = store.release(&record, owner).await;
                });
            }
            // No runtime to release from: the lease runs out instead.
            Err(_) => tracing::warn!(
                ?record,
                "no runtime to release the key from; its lease will expire"
            ),
        }
    }
}
