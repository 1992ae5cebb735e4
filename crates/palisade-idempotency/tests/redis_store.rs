//! The Redis store against a real `redis-server`, in real time (Redis keeps its own clock):
//! each test starts its own server on a free port.
#![cfg(feature = "redis")]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use palisade_idempotency::record::{Fingerprint, Owner, RecordKey, StoredResponse};
use palisade_idempotency::store::{Claim, Record, RedisStore, Store};
use palisade_test::redis::RedisServer;
use redis::aio::MultiplexedConnection;

mod common;

use common::contract::{eventually, response};

/// How long a test waits for something Redis does by itself (an expiry, a reconnect).
const PATIENCE: Duration = Duration::from_secs(15);

/// A lease long enough never to run out during a test.
const LONG: Duration = Duration::from_secs(60);

async fn store(server: &RedisServer) -> RedisStore {
    RedisStore::connect(&server.url())
        .await
        .expect("the store connects")
}

/// A plain connection, to look at Redis behind the store's back.
async fn plain(server: &RedisServer) -> MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

fn completed(fingerprint: Fingerprint, response: &StoredResponse) -> Option<Record> {
    Some(Record::Completed {
        fingerprint,
        response: response.clone(),
    })
}

fn in_flight(fingerprint: Fingerprint) -> Option<Record> {
    Some(Record::InFlight { fingerprint })
}

async fn gone(store: &RedisStore, key: &RecordKey) -> bool {
    store.lookup(key).await.unwrap().is_none()
}

/// `PTTL` of a record, in milliseconds (-2: no such key).
async fn pttl(con: &mut MultiplexedConnection, store_key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(store_key)
        .query_async(con)
        .await
        .unwrap()
}

fn redis_key(key: &RecordKey) -> String {
    format!("palisade:idem:{}", key.to_hex())
}

#[tokio::test]
async fn the_store_contract_holds() {
    let server = RedisServer::start();
    common::contract::holds(&store(&server).await).await;
}

#[tokio::test]
async fn heartbeats_keep_a_claim_alive_past_its_lease() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let mut con = plain(&server).await;
    let key = RecordKey::new("tenant", "slow");
    let fp = Fingerprint([4; 32]);
    let owner = Owner::random();

    let lease = Duration::from_secs(2);
    assert_eq!(
        store.claim(&key, fp, owner, lease).await.unwrap(),
        Claim::Claimed
    );
    // 8 × 300 ms: past the first lease, and the second.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(store.extend(&key, owner, lease).await.unwrap());
    }
    assert_eq!(store.lookup(&key).await.unwrap(), in_flight(fp));

    // The lease is set anew, not merely kept: longer than the claim's own now.
    assert!(store.extend(&key, owner, LONG).await.unwrap());
    assert!(pttl(&mut con, &redis_key(&key)).await > 30_000);
    // And shorter again: the lease is what the last heartbeat said.
    assert!(
        store
            .extend(&key, owner, Duration::from_millis(200))
            .await
            .unwrap()
    );
    eventually("the shortened lease to run out", || gone(&store, &key)).await;
    assert!(!store.extend(&key, owner, lease).await.unwrap());
}

#[tokio::test]
async fn a_completed_record_lives_for_its_ttl() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let mut con = plain(&server).await;
    let key = RecordKey::new("tenant", "ttl");
    let fp = Fingerprint([5; 32]);
    let owner = Owner::random();
    let stored = response(b"short-lived");

    assert_eq!(
        store.claim(&key, fp, owner, LONG).await.unwrap(),
        Claim::Claimed
    );
    assert!(
        store
            .complete(&key, owner, &stored, Duration::from_secs(1))
            .await
            .unwrap()
    );
    // The time to live replaced the (60 s) lease.
    let ttl = pttl(&mut con, &redis_key(&key)).await;
    assert!(ttl <= 1_000, "PTTL {ttl}");
    eventually("the record to expire", || gone(&store, &key)).await;
    assert_eq!(
        store.claim(&key, fp, Owner::random(), LONG).await.unwrap(),
        Claim::Claimed
    );
}

/// `number_of_cached_scripts` from `INFO memory`.
async fn cached_scripts(con: &mut MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(con)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("number_of_cached_scripts:"))
        .expect("INFO memory reports the cached scripts")
        .trim()
        .parse()
        .unwrap()
}

async fn flush_scripts(con: &mut MultiplexedConnection) {
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(con)
        .await
        .unwrap();
    assert_eq!(cached_scripts(con).await, 0);
}

#[tokio::test]
async fn scripts_are_loaded_again_after_a_script_flush() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let mut con = plain(&server).await;
    let key = RecordKey::new("tenant", "flushed");
    let fp = Fingerprint([6; 32]);
    let owner = Owner::random();
    let stored = response(b"flushed");

    flush_scripts(&mut con).await;
    assert_eq!(
        store.claim(&key, fp, owner, LONG).await.unwrap(),
        Claim::Claimed
    );
    assert_eq!(cached_scripts(&mut con).await, 1);
    flush_scripts(&mut con).await;
    assert!(store.extend(&key, owner, LONG).await.unwrap());
    flush_scripts(&mut con).await;
    assert!(store.complete(&key, owner, &stored, LONG).await.unwrap());
    assert_eq!(store.lookup(&key).await.unwrap(), completed(fp, &stored));

    let other = RecordKey::new("tenant", "flushed-too");
    flush_scripts(&mut con).await;
    assert_eq!(
        store.claim(&other, fp, owner, LONG).await.unwrap(),
        Claim::Claimed
    );
    flush_scripts(&mut con).await;
    assert!(store.release(&other, owner).await.unwrap());
    assert_eq!(store.lookup(&other).await.unwrap(), None);
}

#[tokio::test]
async fn the_raw_key_never_reaches_redis() {
    let server = RedisServer::start();
    let default = store(&server).await;
    let prefixed = store(&server).await.prefix("orders:idem");
    let mut con = plain(&server).await;
    let (scope, raw) = ("scope-alice-7d1e", "client-key-3f9a0c");
    let key = RecordKey::new(scope, raw);
    let owner = Owner::random();

    for store in [&default, &prefixed] {
        assert_eq!(
            store
                .claim(&key, Fingerprint([7; 32]), owner, LONG)
                .await
                .unwrap(),
            Claim::Claimed
        );
        assert!(
            store
                .complete(&key, owner, &response(b"r"), LONG)
                .await
                .unwrap()
        );
    }
    let other = RecordKey::new(scope, "in-flight-key-55be");
    assert_eq!(
        default
            .claim(&other, Fingerprint([7; 32]), owner, LONG)
            .await
            .unwrap(),
        Claim::Claimed
    );

    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut con)
        .await
        .unwrap();
    keys.sort();
    let mut expected = vec![
        format!("palisade:idem:{}", key.to_hex()),
        format!("palisade:idem:{}", other.to_hex()),
        format!("orders:idem:{}", key.to_hex()),
    ];
    expected.sort();
    assert_eq!(keys, expected);
    for name in &keys {
        let fields: Vec<Vec<u8>> = redis::cmd("HGETALL")
            .arg(name)
            .query_async(&mut con)
            .await
            .unwrap();
        for text in std::iter::once(name.as_bytes()).chain(fields.iter().map(Vec::as_slice)) {
            for secret in [scope, raw, "in-flight-key-55be"] {
                assert!(
                    !text.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{secret} found in {name}"
                );
            }
        }
    }
}

/// A hash's fields, as `HSET` writes them.
type Fields = Vec<(&'static str, Vec<u8>)>;

#[tokio::test]
async fn records_that_do_not_decode_are_errors() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let mut con = plain(&server).await;
    let fp = vec![8u8; 32];
    let cases: Vec<(&str, Fields)> = vec![
        (
            "unknown state",
            vec![("state", b"paused".to_vec()), ("fp", fp.clone())],
        ),
        (
            "short fingerprint",
            vec![("state", b"inflight".to_vec()), ("fp", vec![8; 31])],
        ),
        ("no fingerprint", vec![("state", b"inflight".to_vec())]),
        (
            "done without response",
            vec![("state", b"done".to_vec()), ("fp", fp.clone())],
        ),
        (
            "bad response",
            vec![
                ("state", b"done".to_vec()),
                ("fp", fp.clone()),
                ("resp", b"\x09not a response".to_vec()),
            ],
        ),
        ("no state", vec![("fp", fp.clone())]),
    ];
    for (i, (what, fields)) in cases.into_iter().enumerate() {
        let key = RecordKey::new("corrupt", &i.to_string());
        let mut hset = redis::cmd("HSET");
        hset.arg(redis_key(&key));
        for (name, value) in fields {
            hset.arg(name).arg(value);
        }
        let _: i64 = hset.query_async(&mut con).await.unwrap();
        assert!(store.lookup(&key).await.is_err(), "lookup: {what}");
        assert!(
            store
                .claim(&key, Fingerprint([8; 32]), Owner::random(), LONG)
                .await
                .is_err(),
            "claim: {what}"
        );
    }

    // Not a hash at all: Redis's WRONGTYPE error.
    let key = RecordKey::new("corrupt", "string");
    let () = redis::cmd("SET")
        .arg(redis_key(&key))
        .arg("x")
        .query_async(&mut con)
        .await
        .unwrap();
    let owner = Owner::random();
    assert!(store.lookup(&key).await.is_err());
    assert!(
        store
            .claim(&key, Fingerprint([8; 32]), owner, LONG)
            .await
            .is_err()
    );
    assert!(
        store
            .complete(&key, owner, &response(b"x"), LONG)
            .await
            .is_err()
    );
    assert!(store.release(&key, owner).await.is_err());
    assert!(store.extend(&key, owner, LONG).await.is_err());
}

/// Runs `op` with a generous bound, so that a hang fails the test instead of stalling it.
async fn bounded<T>(what: &str, op: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, op)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}

#[tokio::test]
async fn operations_fail_while_redis_is_down_and_succeed_once_it_is_back() {
    let mut server = RedisServer::start();
    let store = store(&server).await;
    let key = RecordKey::new("tenant", "outage");
    let fp = Fingerprint([9; 32]);
    let owner = Owner::random();
    let stored = response(b"after the outage");
    assert_eq!(
        store.claim(&key, fp, owner, LONG).await.unwrap(),
        Claim::Claimed
    );

    server.kill();
    // Twice: the first op finds the connection broken, the second the reconnect failing.
    for _ in 0..2 {
        assert!(
            bounded("claim", store.claim(&key, fp, owner, LONG))
                .await
                .is_err()
        );
        assert!(
            bounded("complete", store.complete(&key, owner, &stored, LONG))
                .await
                .is_err()
        );
        assert!(
            bounded("release", store.release(&key, owner))
                .await
                .is_err()
        );
        assert!(
            bounded("extend", store.extend(&key, owner, LONG))
                .await
                .is_err()
        );
        assert!(bounded("lookup", store.lookup(&key)).await.is_err());
    }

    server.restart();
    // The restarted server is empty; the manager reconnects within a few attempts.
    let (store_ref, key_ref) = (&store, &key);
    eventually("the store to reconnect", || async move {
        matches!(
            bounded("claim", store_ref.claim(key_ref, fp, owner, LONG)).await,
            Ok(Claim::Claimed)
        )
    })
    .await;
    assert!(store.extend(&key, owner, LONG).await.unwrap());
    assert!(store.complete(&key, owner, &stored, LONG).await.unwrap());
    assert_eq!(store.lookup(&key).await.unwrap(), completed(fp, &stored));
    let other = RecordKey::new("tenant", "after");
    assert_eq!(
        store.claim(&other, fp, owner, LONG).await.unwrap(),
        Claim::Claimed
    );
    assert!(store.release(&other, owner).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_many_concurrent_claims_exactly_one_wins() {
    let server = RedisServer::start();
    // Several connections, as several instances of a service would have.
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(store(&server).await);
    }
    let key = RecordKey::new("tenant", "contended");
    let tasks = 200;
    let start = Arc::new(tokio::sync::Barrier::new(tasks));
    let claims: Vec<_> = (0..tasks)
        .map(|i| {
            let store = stores[i % stores.len()].clone();
            let start = start.clone();
            tokio::spawn(async move {
                let fp = Fingerprint([i as u8; 32]);
                start.wait().await;
                (
                    fp,
                    store.claim(&key, fp, Owner::random(), LONG).await.unwrap(),
                )
            })
        })
        .collect();
    let mut results = Vec::new();
    for claim in claims {
        results.push(claim.await.unwrap());
    }

    let winners: Vec<Fingerprint> = results
        .iter()
        .filter(|(_, claim)| *claim == Claim::Claimed)
        .map(|(fp, _)| *fp)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one claim wins");
    let winner = winners[0];
    for (fp, claim) in &results {
        if *fp != winner {
            assert_eq!(
                *claim,
                Claim::Existing(Record::InFlight {
                    fingerprint: winner
                })
            );
        }
    }
    assert_eq!(stores[0].lookup(&key).await.unwrap(), in_flight(winner));
}
