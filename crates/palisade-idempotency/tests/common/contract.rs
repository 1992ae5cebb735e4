//! The store contract, written once and run by each store's tests against a real instance
//! (memory, one Redis, a Redis Cluster, PostgreSQL): what the layer relies on, whatever
//! keeps the records. Each run uses keys of a fresh scope, so a shared server is fine.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use palisade_idempotency::record::{Fingerprint, Owner, RecordKey, StoredResponse};
use palisade_idempotency::store::{Claim, Record, Store};

/// A lease that never runs out during a test.
const LONG: Duration = Duration::from_secs(60);

/// A lease or a time to live meant to run out.
const SHORT: Duration = Duration::from_millis(300);

/// How long to wait for a store to expire something by itself.
const PATIENCE: Duration = Duration::from_secs(15);

/// Runs every clause of the contract against `store`.
pub(crate) async fn holds(store: &dyn Store) {
    let scope = format!("contract-{:032x}", Owner::random().0);
    let key = |name: &str| RecordKey::new(&scope, name);
    one_claim_wins_then_its_response_is_replayed(store, &key("replay")).await;
    only_the_owner_settles_its_claim(store, &key("fencing")).await;
    a_lease_that_runs_out_frees_the_key_and_fences_its_old_owner(store, &key("lease")).await;
    a_completed_record_lives_for_its_time_to_live(store, &key("ttl")).await;
}

/// A response with what a replay must keep byte for byte: repeated headers, a value that is
/// not text, trailers.
pub(crate) fn response(body: &'static [u8]) -> StoredResponse {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.append("x-many", HeaderValue::from_static("one"));
    headers.append("x-many", HeaderValue::from_static("two"));
    headers.insert("x-opaque", HeaderValue::from_bytes(b"\xfa\xfb").unwrap());
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    StoredResponse {
        status: StatusCode::CREATED,
        headers,
        body: Bytes::from_static(body),
        trailers: Some(trailers),
    }
}

async fn one_claim_wins_then_its_response_is_replayed(store: &dyn Store, key: &RecordKey) {
    let fingerprint = Fingerprint([1; 32]);
    let (first, second) = (Owner::random(), Owner::random());
    assert_eq!(
        store.claim(key, fingerprint, first, LONG).await.unwrap(),
        Claim::Claimed
    );
    let in_flight = Record::InFlight { fingerprint };
    assert_eq!(
        store.claim(key, fingerprint, second, LONG).await.unwrap(),
        Claim::Existing(in_flight.clone()),
        "a duplicate sees the claim"
    );
    assert_eq!(store.lookup(key).await.unwrap(), Some(in_flight));
    let stored = response(b"{\"order\":1}");
    assert!(store.complete(key, first, &stored, LONG).await.unwrap());
    let completed = Record::Completed {
        fingerprint,
        response: stored,
    };
    assert_eq!(
        store.claim(key, fingerprint, second, LONG).await.unwrap(),
        Claim::Existing(completed.clone()),
        "a retry finds the response, byte for byte"
    );
    assert_eq!(store.lookup(key).await.unwrap(), Some(completed.clone()));
    assert!(
        !store.release(key, first).await.unwrap(),
        "a completed record is not released"
    );
    assert!(
        !store
            .complete(key, first, &response(b"other"), LONG)
            .await
            .unwrap(),
        "nor completed again with another response, not even by its owner"
    );
    assert_eq!(store.lookup(key).await.unwrap(), Some(completed));
}

async fn only_the_owner_settles_its_claim(store: &dyn Store, key: &RecordKey) {
    let fingerprint = Fingerprint([2; 32]);
    let (owner, rival) = (Owner::random(), Owner::random());
    assert_eq!(
        store.claim(key, fingerprint, owner, LONG).await.unwrap(),
        Claim::Claimed
    );
    let stored = response(b"rival");
    assert!(!store.extend(key, rival, LONG).await.unwrap());
    assert!(!store.complete(key, rival, &stored, LONG).await.unwrap());
    assert!(!store.release(key, rival).await.unwrap());
    assert!(store.extend(key, owner, LONG).await.unwrap());
    assert!(store.release(key, owner).await.unwrap());
    assert_eq!(store.lookup(key).await.unwrap(), None, "released: gone");
    assert_eq!(
        store.claim(key, fingerprint, rival, LONG).await.unwrap(),
        Claim::Claimed,
        "a released key is claimed again"
    );
    assert!(!store.extend(key, owner, LONG).await.unwrap());
    assert!(!store.release(key, owner).await.unwrap());
}

async fn a_lease_that_runs_out_frees_the_key_and_fences_its_old_owner(
    store: &dyn Store,
    key: &RecordKey,
) {
    let fingerprint = Fingerprint([3; 32]);
    let (paused, next) = (Owner::random(), Owner::random());
    assert_eq!(
        store.claim(key, fingerprint, paused, SHORT).await.unwrap(),
        Claim::Claimed
    );
    eventually("the lease to run out", || async {
        store.claim(key, fingerprint, next, LONG).await.unwrap() == Claim::Claimed
    })
    .await;
    // The holder whose lease ran out wakes up: none of its writes touch the new claim.
    let stale = response(b"stale");
    assert!(!store.complete(key, paused, &stale, LONG).await.unwrap());
    assert!(!store.extend(key, paused, LONG).await.unwrap());
    assert!(!store.release(key, paused).await.unwrap());
    assert_eq!(
        store.lookup(key).await.unwrap(),
        Some(Record::InFlight { fingerprint })
    );
    // A heartbeat sets the lease anew, shorter too: it runs out from the last one.
    assert!(store.extend(key, next, SHORT).await.unwrap());
    eventually("the shortened lease to run out", || async {
        store.lookup(key).await.unwrap().is_none()
    })
    .await;
    assert!(!store.extend(key, next, LONG).await.unwrap());
}

async fn a_completed_record_lives_for_its_time_to_live(store: &dyn Store, key: &RecordKey) {
    let fingerprint = Fingerprint([4; 32]);
    let owner = Owner::random();
    assert_eq!(
        store.claim(key, fingerprint, owner, LONG).await.unwrap(),
        Claim::Claimed
    );
    assert!(
        store
            .complete(key, owner, &response(b"brief"), SHORT)
            .await
            .unwrap()
    );
    eventually("the record to expire", || async {
        store.lookup(key).await.unwrap().is_none()
    })
    .await;
    assert_eq!(
        store
            .claim(key, fingerprint, Owner::random(), LONG)
            .await
            .unwrap(),
        Claim::Claimed,
        "an expired record's key is new again"
    );
}

/// Waits until `check` holds, polling; panics after [`PATIENCE`].
pub(crate) async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
