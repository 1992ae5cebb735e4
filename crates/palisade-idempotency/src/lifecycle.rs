//! The life of a keyed request, from the moment the service has its key to its answer:
//! buffer and fingerprint it, claim its record, then run it and store (or release) the
//! outcome — or replay, refuse, or wait, as the record says.
//!
//! This is the layer's one flow; the steps it takes live in their own rooms: reading
//! bodies in `body.rs`, refusals in `error.rs`, replays in `replay.rs`, holding the claim
//! in `claim.rs`, and the timed store in `store/timed.rs`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use palisade_core::grpc::is_grpc;
use tokio::time::Instant;
use tower_service::Service;

use crate::body::{RequestBody, ResponseBody, Whole, read_whole};
use crate::claim::{ClaimGuard, with_heartbeat};
use crate::error::Refusal;
use crate::metrics::Outcome;
use crate::record::{Fingerprint, Owner, RecordKey};
use crate::replay::{replay, to_store};
use crate::shared::Shared;
use crate::store::{Claim, Record, Settled, TimedStore};
use crate::unprotected;

use palisade_core::BoxError;

/// How long a waiting duplicate sleeps between two looks at the record, at first and at
/// most: short while the first request is likely about to finish, then backing off.
const FIRST_LOOK: Duration = Duration::from_millis(10);
const LAST_LOOK: Duration = Duration::from_millis(200);

/// Answers `request`, which carries `key`, by running it through `inner` at most once per
/// key within its scope.
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
    let (mut parts, body) = request.into_parts();
    let grpc = is_grpc(&parts.headers);
    let refuse = |refusal: Refusal| Ok(refusal.response(&shared.metrics, grpc));

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
    let store = TimedStore::new(&*shared.store, &shared.store_breaker, &shared.metrics);

    let deadline = config.wait.map(|wait| Instant::now() + wait);
    let mut pause = FIRST_LOOK;
    loop {
        let claim = match store.claim(&record, fingerprint, owner, config.lease).await {
            Ok(claim) => claim,
            Err(error) if config.fail_open => {
                tracing::warn!(%error, "idempotency store failed; running the request unprotected (fail-open)");
                shared.metrics.request(Outcome::Unprotected);
                // A handler written for the store's transaction still gets one.
                let attachment = shared.store.attach_unrecorded(&record, owner, fingerprint);
                if let Some(attachment) = &attachment {
                    parts.extensions.insert(attachment.clone());
                }
                let request = Request::from_parts(parts, RequestBody::buffered(body));
                return match attachment {
                    Some(attachment) => {
                        unprotected::run_with(inner, &shared, request, attachment, grpc).await
                    }
                    None => Ok(inner.call(request).await?.map(ResponseBody::pass)),
                };
            }
            Err(error) => {
                tracing::warn!(%error, "idempotency store failed; refusing the request (fail-closed)");
                return refuse(Refusal::StoreUnavailable {
                    retry_after: config.retry_after,
                });
            }
        };
        let existing = match claim {
            Claim::Claimed => break,
            Claim::Existing(existing) => existing,
        };
        match answer_from(existing, fingerprint, &shared, grpc) {
            Some(response) => return Ok(response),
            None => {
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
    let mut guard = ClaimGuard::new(shared.store.clone(), record, owner);
    // What the store lends the handler (Postgres: a transaction bound to this claim).
    let attachment = shared.store.attach(&record, owner, fingerprint);
    if let Some(attachment) = &attachment {
        parts.extensions.insert(attachment.clone());
    }
    // Undoes the handler's work in the attachment: true if there was any, in which case
    // the handler's response no longer says what happened.
    let abandon = || attachment.as_ref().is_some_and(|a| a.attached().abandon());
    let uncommitted = || {
        Ok(Refusal::Uncommitted {
            retry_after: config.retry_after,
        }
        .response(&shared.metrics, grpc))
    };
    let call = inner.call(Request::from_parts(parts, RequestBody::buffered(body)));
    let outcome = with_heartbeat(call, &store, &record, owner, config.lease).await;
    let response = match outcome {
        Ok(response) => response,
        Err(error) => {
            abandon();
            guard.release(&store, "the service failed").await;
            shared.metrics.request(Outcome::Released);
            return Err(error);
        }
    };

    let (head, body) = response.into_parts();
    let (data, trailers) = match read_whole(Box::pin(body), config.max_response).await {
        Whole::Read(data, trailers) => (data, trailers),
        Whole::TooLarge(read, rest) => {
            let undone = abandon();
            guard
                .release(&store, "the response is too large to store")
                .await;
            if undone {
                return uncommitted();
            }
            shared.metrics.request(Outcome::Released);
            return Ok(Response::from_parts(
                head,
                ResponseBody::then_rest(read, rest),
            ));
        }
        Whole::Failed(read, error) => {
            let undone = abandon();
            guard.release(&store, "the response body failed").await;
            if undone {
                return uncommitted();
            }
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
        // Not final (a 5xx, by default): the handler's work in a transaction is undone with
        // it, and its response says so.
        abandon();
        guard.release(&store, "the response is not final").await;
        shared.metrics.request(Outcome::Released);
        return Ok(Response::from_parts(
            head,
            ResponseBody::whole(data, trailers),
        ));
    }
    let stored = to_store(&head, data.clone(), trailers.clone());
    // In the handler's transaction if it opened one: its work and the record commit
    // together, or neither does, and then its response would not be true.
    let completed = match &attachment {
        Some(attachment) => {
            store
                .complete_attached(attachment, &stored, config.ttl)
                .await
        }
        None => Ok(Settled::NotUsed),
    };
    let completed = match completed {
        Ok(Settled::Committed) => Ok(true),
        Ok(Settled::ClaimLost) => {
            tracing::warn!(
                ?record,
                "the claim was lost before the transaction committed; nothing was kept"
            );
            guard.disarm();
            return uncommitted();
        }
        Ok(Settled::Existing(existing)) => {
            // Claimed at commit, and another request's record was there: nothing this one
            // did is kept; it answers as if its claim had found that record.
            guard.disarm();
            return match answer_from(existing, fingerprint, &shared, grpc) {
                Some(response) => Ok(response),
                None => refuse(Refusal::InFlight {
                    retry_after: config.retry_after,
                }),
            };
        }
        Ok(Settled::Aborted) => {
            // The handler's own work failed in its transaction: nothing is kept, the answer
            // is not stored, and a retry runs again.
            guard
                .release(&store, "the handler's transaction aborted")
                .await;
            shared.metrics.request(Outcome::Released);
            return Ok(Response::from_parts(
                head,
                ResponseBody::whole(data, trailers),
            ));
        }
        Err(error) => {
            tracing::warn!(?record, %error, "the keyed transaction did not commit");
            abandon();
            guard
                .release(&store, "the transaction did not commit")
                .await;
            return uncommitted();
        }
        Ok(_) => store.complete(&record, owner, &stored, config.ttl).await,
    };
    let result = match completed {
        Ok(true) => {
            guard.disarm();
            Outcome::Executed
        }
        Ok(false) => {
            // The lease ran out and someone else holds the key now: it is theirs to settle.
            tracing::warn!(
                ?record,
                "the claim was lost before the response could be stored"
            );
            guard.disarm();
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

/// What a request whose key another request holds answers from that request's record: the
/// stored response replayed, or a refusal of a different request; `None` while the first
/// request is still running.
fn answer_from<B>(
    existing: Record,
    fingerprint: Fingerprint,
    shared: &Shared,
    grpc: bool,
) -> Option<Response<ResponseBody<B>>> {
    match existing {
        Record::InFlight { fingerprint: first }
        | Record::Completed {
            fingerprint: first, ..
        } if first != fingerprint => Some(Refusal::Mismatch.response(&shared.metrics, grpc)),
        Record::Completed { response, .. } => {
            shared.metrics.request(Outcome::Replayed);
            Some(replay(response))
        }
        Record::InFlight { .. } => None,
    }
}
