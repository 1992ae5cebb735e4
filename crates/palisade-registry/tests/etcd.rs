//! Registration in a real etcd that the tests start, kill and restart, in real time: the
//! heartbeat, the lease's expiry after the registered process is killed (`kill -9`), the
//! drain's order (draining, then gone), and riding out an etcd restart and a lost lease.

#![cfg(feature = "etcd")]

use std::process::{Command, Stdio};
use std::time::Duration;

use etcd_client::Client;
use palisade_registry::drain::{Drain, DrainConfig};
use palisade_registry::etcd::{EtcdRegistry, Instance, Member};
use palisade_test::etcd::Etcd;

/// Polls `check` every 50 ms for up to 15 s; whether it came true.
async fn eventually<F: std::future::Future<Output = bool>>(mut check: impl FnMut() -> F) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The member under `key`, if there is one.
async fn member(client: &Client, key: &str) -> Option<Member> {
    let mut client = client.clone();
    let answer = client.get(key, None).await.ok()?;
    Member::decode(answer.kvs().first()?.value())
}

async fn client(etcd: &Etcd) -> Client {
    Client::connect([etcd.endpoint()], None).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_lives_by_its_heartbeats_and_goes_with_its_lease() {
    let etcd = Etcd::start();
    let client = client(&etcd).await;
    let instance = Instance::new("orders", "10.0.0.7:8080".parse().unwrap())
        .id("orders-1")
        .zone("eu-west-1a")
        .weight(2)
        .metadata("version", "1.4.2")
        .ttl(Duration::from_secs(2));
    let registered = EtcdRegistry::new(client.clone())
        .register(instance)
        .await
        .unwrap();
    assert_eq!(registered.key(), "/palisade/services/orders/orders-1");
    let found = member(&client, registered.key()).await.expect("registered");
    assert_eq!(
        (found.weight, found.zone.as_deref()),
        (2, Some("eu-west-1a"))
    );
    assert_eq!(found.metadata["version"], "1.4.2");

    // Three TTLs later it is still there: the heartbeats renew the lease.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(member(&client, registered.key()).await.is_some(), "renewed");

    // Dropped (no deregistration): its lease runs out, and the key goes with it.
    let key = registered.key().to_owned();
    drop(registered);
    assert!(eventually(|| async { member(&client, &key).await.is_none() }).await);
}

/// Not a test on its own: the registered process of the next test, which kills it.
#[tokio::test]
#[ignore = "run as a child process by a_killed_process_is_gone_when_its_lease_expires"]
async fn registered_process() {
    let endpoint = std::env::var("PALISADE_ETCD").expect("run by its parent test");
    let client = Client::connect([endpoint], None).await.unwrap();
    let _registered = EtcdRegistry::new(client)
        .register(
            Instance::new("orders", "10.0.0.9:8080".parse().unwrap())
                .id("doomed")
                .ttl(Duration::from_secs(2)),
        )
        .await
        .unwrap();
    std::future::pending::<()>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_is_gone_when_its_lease_expires() {
    let etcd = Etcd::start();
    let client = client(&etcd).await;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "registered_process", "--ignored", "--quiet"])
        .env("PALISADE_ETCD", etcd.endpoint())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let key = "/palisade/services/orders/doomed";
    assert!(
        eventually(|| async { member(&client, key).await.is_some() }).await,
        "the child registered"
    );
    // Its heartbeats keep it past its TTL...
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(member(&client, key).await.is_some());
    // ... until it is killed, with no chance to deregister.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        eventually(|| async { member(&client, key).await.is_none() }).await,
        "gone with its lease"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_instance_says_it_is_draining_then_deregisters() {
    let etcd = Etcd::start();
    let client = client(&etcd).await;
    let registered = EtcdRegistry::new(client.clone())
        .prefix("/apps")
        // A long TTL: the key must go by the deregistration, not by expiry.
        .register(
            Instance::new("orders", "10.0.0.7:8080".parse().unwrap()).ttl(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    let key = registered.key().to_owned();
    assert_eq!(key, "/apps/orders/10.0.0.7:8080");
    let drain = Drain::new(
        DrainConfig::builder("orders")
            .grace(Duration::from_secs(1))
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap(),
    );
    let following = registered.follow(&drain);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(member(&client, &key).await.map(|m| m.draining), Some(false));

    drain.start();
    assert!(
        eventually(|| async { member(&client, &key).await.is_some_and(|m| m.draining) }).await,
        "marked draining when the drain starts"
    );
    following.await.unwrap().expect("deregistered");
    assert!(member(&client, &key).await.is_none(), "gone at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_rides_out_an_etcd_restart_and_a_lost_lease() {
    let mut etcd = Etcd::start();
    let client = client(&etcd).await;
    let registered = EtcdRegistry::new(client.clone())
        .register(
            Instance::new("orders", "10.0.0.7:8080".parse().unwrap()).ttl(Duration::from_secs(2)),
        )
        .await
        .unwrap();
    let key = registered.key().to_owned();

    etcd.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    etcd.restart();
    // etcd restarts its leases' clocks; the heartbeats, back, keep it past several TTLs.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(member(&client, &key).await.is_some(), "still registered");

    // The lease lost (revoked from outside, as an expiry during a long outage would):
    // the registration is granted a new one and put back.
    let mut admin = client.clone();
    let lease = admin.get(key.as_str(), None).await.unwrap().kvs()[0].lease();
    admin.lease_revoke(lease).await.unwrap();
    assert!(member(&client, &key).await.is_none());
    assert!(
        eventually(|| async { member(&client, &key).await.is_some() }).await,
        "registered again"
    );
}
