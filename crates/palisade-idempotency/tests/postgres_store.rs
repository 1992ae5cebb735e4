//! The Postgres store against the machine's PostgreSQL (`PALISADE_POSTGRES_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/test`), in real time (the database keeps the clock):
//! each test in a schema of its own, dropped at its end.
#![cfg(feature = "postgres")]

use std::sync::Arc;
use std::time::Duration;

use palisade_idempotency::record::{Fingerprint, Owner, RecordKey};
use palisade_idempotency::store::postgres::PostgresStore;
use palisade_idempotency::store::{Claim, Record, Store};
use sqlx::postgres::PgPoolOptions;

mod common;

use common::contract::response;

use common::postgres::Schema;

/// A lease long enough never to run out during a test.
const LONG: Duration = Duration::from_secs(60);

fn key(name: &str) -> RecordKey {
    RecordKey::new("tenant", name)
}

#[tokio::test]
async fn the_store_contract_holds() {
    let schema = Schema::new().await;
    common::contract::holds(&schema.store().await).await;
    schema.drop().await;
}

#[tokio::test]
async fn expired_records_are_absent_at_once_and_cleaned_up_in_batches() {
    let schema = Schema::new().await;
    let store = schema.store().await;
    for n in 0..5 {
        let (k, owner) = (key(&format!("short-{n}")), Owner::random());
        store
            .claim(&k, Fingerprint([3; 32]), owner, LONG)
            .await
            .unwrap();
        let ttl = Duration::from_millis(100);
        assert!(
            store
                .complete(&k, owner, &response(b"x"), ttl)
                .await
                .unwrap()
        );
    }
    let kept = key("kept");
    store
        .claim(&kept, Fingerprint([4; 32]), Owner::random(), LONG)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(store.lookup(&key("short-0")).await.unwrap(), None);
    assert_eq!(store.cleanup(3).await.unwrap(), 3, "a batch at most");
    assert_eq!(store.cleanup(3).await.unwrap(), 2);
    assert_eq!(store.cleanup(3).await.unwrap(), 0);
    assert!(
        store.lookup(&kept).await.unwrap().is_some(),
        "live records stay"
    );
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_duplicates_over_two_instances_claim_once() {
    let schema = Schema::new().await;
    // Two instances of a service: two pools, one table.
    let (a, b) = (
        Arc::new(schema.store().await),
        Arc::new(schema.store().await),
    );
    let (k, fp) = (key("contended"), Fingerprint([9; 32]));
    let claims: Vec<_> = (0..1000)
        .map(|n| {
            let store = if n % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { store.claim(&k, fp, Owner::random(), LONG).await })
        })
        .collect();
    let mut claimed = 0;
    for claim in claims {
        match claim.await.unwrap().unwrap() {
            Claim::Claimed => claimed += 1,
            Claim::Existing(Record::InFlight { fingerprint }) => assert_eq!(fingerprint, fp),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(claimed, 1);
    schema.drop().await;
}

#[tokio::test]
async fn names_are_checked_before_they_reach_sql() {
    let pool = PgPoolOptions::new()
        .connect_lazy(&common::postgres::url())
        .unwrap();
    let error = PostgresStore::new(pool.clone())
        .table(None, "records; DROP TABLE orders")
        .unwrap_err();
    assert_eq!(error.field(), "table");
    let error = PostgresStore::new(pool)
        .table(Some("a-b"), "ok")
        .unwrap_err();
    assert_eq!(error.field(), "schema");
}

#[tokio::test]
async fn ensure_schema_is_safe_to_run_from_every_instance_at_once() {
    let schema = Schema::new().await;
    let store = schema.store().await;
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.ensure_schema().await })
        })
        .collect();
    for run in runs {
        run.await.unwrap().unwrap();
    }
    schema.drop().await;
}

#[tokio::test]
async fn an_unreachable_database_fails_fast() {
    // Nothing listens on port 1: the pool's acquire gives up, the operation fails.
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy("postgres://postgres@127.0.0.1:1/test")
        .unwrap();
    let store = PostgresStore::new(pool);
    let started = std::time::Instant::now();
    let result = store
        .claim(&key("k"), Fingerprint([0; 32]), Owner::random(), LONG)
        .await;
    assert!(result.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_database_fails_the_operation_at_the_store_timeout() {
    let schema = Schema::new().await;
    let store = schema.store().await.timeout(Duration::from_millis(200));
    // Another session holds the records' table locked: every statement on it waits.
    let mut locker = schema.pool.begin().await.unwrap();
    sqlx::query(&format!(
        "LOCK TABLE \"{}\".records IN ACCESS EXCLUSIVE MODE",
        schema.name
    ))
    .execute(&mut *locker)
    .await
    .unwrap();
    let stalled = key("k");
    let claim = store.claim(&stalled, Fingerprint([0; 32]), Owner::random(), LONG);
    // The guard against a hang is generous; the store's own timeout is what answers.
    let result = tokio::time::timeout(Duration::from_secs(30), claim)
        .await
        .expect("the claim gave up on its own");
    let error = result.expect_err("a stalled claim fails");
    assert!(
        error.to_string().contains("did not answer within"),
        "{error}"
    );
    let lookup = tokio::time::timeout(Duration::from_secs(30), store.lookup(&stalled))
        .await
        .expect("the lookup gave up on its own");
    assert!(lookup.is_err());
    locker.rollback().await.unwrap();
    // Unlocked, the store works again. (The abandoned claim's statement may still run once
    // the lock is gone, and hold `k` until its lease runs out, as any claim whose answer
    // was lost does.)
    assert_eq!(
        store
            .claim(&key("k2"), Fingerprint([0; 32]), Owner::random(), LONG)
            .await
            .unwrap(),
        Claim::Claimed
    );
    schema.drop().await;
}
