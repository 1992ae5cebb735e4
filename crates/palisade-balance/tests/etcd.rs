//! Discovery from a real etcd that the tests start, kill and restart, in real time, fed by
//! palisade-registry's registrations: changes as they happen, draining members out at once,
//! a watch that resumes after etcd restarts without missing or repeating a change, a
//! compacted revision listed again, and self-preservation when etcd is down or most members
//! vanish at once.

#![cfg(feature = "etcd")]

use std::collections::BTreeSet;
use std::time::Duration;

use etcd_client::Client;
use palisade_balance::discover::{EtcdConfig, EtcdDiscover, EtcdEndpoint};
use palisade_registry::etcd::{EtcdRegistry, Instance, Registered};
use palisade_test::etcd::Etcd;
use tokio_stream::StreamExt;
use tower::discover::Change;

type Discover = EtcdDiscover<fn(&EtcdEndpoint) -> String, String>;

fn make(endpoint: &EtcdEndpoint) -> String {
    format!("client for {}", endpoint.addr)
}

fn discover(client: &Client, config: EtcdConfig) -> Discover {
    EtcdDiscover::new(
        "orders",
        client.clone(),
        config,
        make as fn(&EtcdEndpoint) -> String,
    )
}

/// The next change, as `+id` or `-id`; `None` if none comes within `within`.
async fn next(discover: &mut Discover, within: Duration) -> Option<String> {
    match tokio::time::timeout(within, discover.next()).await {
        Ok(Some(Ok(Change::Insert(key, _)))) => Some(format!("+{}", key.id)),
        Ok(Some(Ok(Change::Remove(key)))) => Some(format!("-{}", key.id)),
        Ok(None) => panic!("the discovery ended"),
        Err(_) => None,
    }
}

/// The next `n` changes, in any order (a set's diff comes removals first, then by key).
async fn changes(discover: &mut Discover, n: usize) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for _ in 0..n {
        seen.insert(
            next(discover, Duration::from_secs(15))
                .await
                .expect("a change"),
        );
    }
    seen
}

fn set(changes: &[&str]) -> BTreeSet<String> {
    changes.iter().map(|c| (*c).to_owned()).collect()
}

async fn register(client: &Client, id: &str, port: u16, ttl: u64) -> Registered {
    let addr = format!("10.0.0.1:{port}").parse().unwrap();
    EtcdRegistry::new(client.clone())
        .register(
            Instance::new("orders", addr)
                .id(id)
                .ttl(Duration::from_secs(ttl)),
        )
        .await
        .unwrap()
}

async fn client(etcd: &Etcd) -> Client {
    Client::connect([etcd.endpoint()], None).await.unwrap()
}

const QUIET: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_follows_registrations_and_takes_draining_members_out() {
    let etcd = Etcd::start();
    let client = client(&etcd).await;
    let a = register(&client, "a", 1, 10).await;
    let mut discover = discover(&client, EtcdConfig::default());
    assert_eq!(changes(&mut discover, 1).await, set(&["+a"]), "listed");

    let b = register(&client, "b", 2, 10).await;
    assert_eq!(changes(&mut discover, 1).await, set(&["+b"]), "watched");
    b.set_draining().await.unwrap();
    assert_eq!(
        changes(&mut discover, 1).await,
        set(&["-b"]),
        "draining: out"
    );
    b.deregister().await.unwrap();
    // `a` goes without draining first, and it is the whole fleet: kept (self-preservation),
    // until another member makes it no more than half.
    a.deregister().await.unwrap();
    assert_eq!(next(&mut discover, QUIET).await, None);

    // A record that is not a member is ignored.
    let mut writer = client.clone();
    writer
        .put("/palisade/services/orders/junk", "not json", None)
        .await
        .unwrap();
    let _c = register(&client, "c", 3, 10).await;
    assert_eq!(changes(&mut discover, 2).await, set(&["-a", "+c"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_resumes_after_etcd_restarts_missing_nothing() {
    let mut etcd = Etcd::start();
    let client = client(&etcd).await;
    let a = register(&client, "a", 1, 30).await;
    let config = (EtcdConfig::builder().retry(Duration::from_secs(2), Duration::from_secs(2)))
        .build()
        .unwrap();
    let mut discover = discover(&client, config);
    assert_eq!(changes(&mut discover, 1).await, set(&["+a"]));

    // etcd down: the last good set stays.
    etcd.kill();
    assert_eq!(next(&mut discover, QUIET).await, None, "nothing removed");

    // Back; before the follower's retry, changes it must get from its last revision.
    etcd.restart();
    let _b = register(&client, "b", 2, 30).await;
    a.deregister().await.unwrap();
    let _c = register(&client, "c", 3, 30).await;
    assert_eq!(changes(&mut discover, 3).await, set(&["+b", "-a", "+c"]));
    assert_eq!(next(&mut discover, QUIET).await, None, "each change once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_revision_is_listed_again() {
    let mut etcd = Etcd::start();
    let client = client(&etcd).await;
    let a = register(&client, "a", 1, 30).await;
    let config = (EtcdConfig::builder().retry(Duration::from_secs(3), Duration::from_secs(3)))
        .build()
        .unwrap();
    let mut discover = discover(&client, config);
    assert_eq!(changes(&mut discover, 1).await, set(&["+a"]));

    etcd.kill();
    etcd.restart();
    // While the follower waits to watch again: changes, then a compaction past them all.
    let _b = register(&client, "b", 2, 30).await;
    a.deregister().await.unwrap();
    let mut admin = client.clone();
    let revision = admin
        .get("x", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    admin.compact(revision, None).await.unwrap();

    assert_eq!(
        changes(&mut discover, 2).await,
        set(&["+b", "-a"]),
        "listed again"
    );
    assert_eq!(next(&mut discover, QUIET).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn most_members_vanishing_at_once_are_kept_until_replaced() {
    let etcd = Etcd::start();
    let client = client(&etcd).await;
    let mut members = Vec::new();
    for (i, id) in ["a", "b", "c", "d"].into_iter().enumerate() {
        members.push(register(&client, id, i as u16, 2).await);
    }
    let mut discover = discover(&client, EtcdConfig::default());
    assert_eq!(
        changes(&mut discover, 4).await,
        set(&["+a", "+b", "+c", "+d"])
    );

    // Three stop heart-beating at once (a partition from etcd, say): their leases expire
    // together, and the discovery keeps them.
    let kept = members.split_off(1);
    drop(kept);
    assert_eq!(
        next(&mut discover, Duration::from_secs(6)).await,
        None,
        "kept"
    );

    // Replacements arrive: once the missing ones are no more than half of the fleet, they
    // go (three of five missing: kept; three of six: let go).
    let _e = register(&client, "e", 5, 10).await;
    assert_eq!(changes(&mut discover, 1).await, set(&["+e"]));
    let _f = register(&client, "f", 6, 10).await;
    assert_eq!(
        changes(&mut discover, 4).await,
        set(&["+f", "-b", "-c", "-d"]),
        "released"
    );
}
