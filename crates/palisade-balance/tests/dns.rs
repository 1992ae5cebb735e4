//! DNS discovery against hickory's DNS server, in-process on a loopback UDP port: records
//! changed in the zone show up within their TTL, SRV gives ports and weights, and a server
//! that fails, stays silent or answers nothing leaves the last good set in place.
//!
//! These tests run in real time, since the resolver talks to a real socket; they wait for
//! events (a change, the server seeing a query), each bounded by a generous timeout that
//! only a broken build reaches.
#![cfg(feature = "dns")]

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use palisade_balance::discover::{Change, DnsConfig, DnsDiscover, DnsEndpoint, DnsQuery};
use palisade_test::dns::{DnsBehaviour, DnsServer};
use tokio_stream::StreamExt;

/// Bounds every wait; reached only when something is broken.
const PATIENCE: Duration = Duration::from_secs(20);

fn endpoint(last_octet: u8, port: u16, weight: u32) -> DnsEndpoint {
    DnsEndpoint {
        addr: SocketAddr::from((Ipv4Addr::new(127, 0, 0, last_octet), port)),
        weight,
    }
}

fn config() -> DnsConfig {
    DnsConfig::builder()
        .min_interval(Duration::from_millis(100))
        .max_interval(Duration::from_secs(2))
        .build()
        .expect("a valid config")
}

type Source = DnsDiscover<fn(&DnsEndpoint) -> SocketAddr, SocketAddr>;

fn source(server: &DnsServer, query: DnsQuery) -> Source {
    DnsDiscover::new(
        "test",
        server.resolver(),
        query,
        config(),
        |e: &DnsEndpoint| e.addr,
    )
}

/// The next `n` changes, as (inserted, removed).
async fn changes(source: &mut Source, n: usize) -> (BTreeSet<DnsEndpoint>, BTreeSet<DnsEndpoint>) {
    let (mut inserted, mut removed) = (BTreeSet::new(), BTreeSet::new());
    for _ in 0..n {
        let change = tokio::time::timeout(PATIENCE, source.next())
            .await
            .expect("a change within the TTL")
            .expect("the source goes on")
            .expect("infallible");
        match change {
            Change::Insert(key, addr) => {
                assert_eq!(key.addr, addr, "the service is made for its endpoint");
                inserted.insert(key);
            }
            Change::Remove(key) => {
                removed.insert(key);
            }
        }
    }
    (inserted, removed)
}

#[tokio::test]
async fn a_records_added_and_removed_show_up_within_their_ttl() {
    let server = DnsServer::start().await;
    server.set_a("api.svc.test.", &[1, 2]).await;
    let mut source = source(&server, DnsQuery::host("api.svc.test.", 8080).unwrap());

    let (inserted, removed) = changes(&mut source, 2).await;
    assert_eq!(
        inserted,
        [endpoint(1, 8080, 1), endpoint(2, 8080, 1)].into()
    );
    assert!(removed.is_empty());

    server.set_a("api.svc.test.", &[2, 3]).await;
    let (inserted, removed) = changes(&mut source, 2).await;
    assert_eq!(inserted, [endpoint(3, 8080, 1)].into());
    assert_eq!(removed, [endpoint(1, 8080, 1)].into());
    assert_eq!(
        source.endpoints(),
        &[endpoint(2, 8080, 1), endpoint(3, 8080, 1)].into()
    );
}

#[tokio::test]
async fn srv_records_give_ports_and_weights_of_the_preferred_priority() {
    let server = DnsServer::start().await;
    server
        .set_srv(
            "_http._tcp.svc.test.",
            &[
                (10, 30, 9001, "a.svc.test."),
                (10, 10, 9002, "b.svc.test."),
                // A backup: a less preferred priority is not used.
                (20, 50, 9003, "c.svc.test."),
            ],
        )
        .await;
    server.set_a("a.svc.test.", &[1]).await;
    server.set_a("b.svc.test.", &[2, 4]).await;
    server.set_a("c.svc.test.", &[3]).await;
    let mut source = source(&server, DnsQuery::srv("_http._tcp.svc.test.").unwrap());

    let (inserted, _) = changes(&mut source, 3).await;
    assert_eq!(
        inserted,
        [
            endpoint(1, 9001, 30),
            endpoint(2, 9002, 10),
            endpoint(4, 9002, 10)
        ]
        .into()
    );

    // A target moves to another port: that endpoint is replaced.
    server
        .set_srv(
            "_http._tcp.svc.test.",
            &[(10, 30, 9001, "a.svc.test."), (10, 10, 9005, "b.svc.test.")],
        )
        .await;
    let (inserted, removed) = changes(&mut source, 4).await;
    assert_eq!(
        inserted,
        [endpoint(2, 9005, 10), endpoint(4, 9005, 10)].into()
    );
    assert_eq!(
        removed,
        [endpoint(2, 9002, 10), endpoint(4, 9002, 10)].into()
    );
}

/// While the server misbehaves the source keeps asking and yields no change at all; then it
/// answers again, with a different set, and the change comes through.
async fn keeps_the_last_good_set_while(server: &DnsServer, misbehave: impl AsyncFnOnce()) {
    server.set_a("api.svc.test.", &[1, 2]).await;
    let mut source = source(server, DnsQuery::host("api.svc.test.", 80).unwrap());
    changes(&mut source, 2).await;

    misbehave().await;
    tokio::select! {
        change = source.next() => panic!("the set changed while DNS misbehaved: {change:?}"),
        // Three more queries: at least two resolutions went wrong, and were retried.
        () = server.queries_to_come(3) => {}
    }
    assert_eq!(
        source.endpoints(),
        &[endpoint(1, 80, 1), endpoint(2, 80, 1)].into()
    );

    server.behave(DnsBehaviour::Answer);
    server.set_a("api.svc.test.", &[2]).await;
    let (_, removed) = changes(&mut source, 1).await;
    assert_eq!(removed, [endpoint(1, 80, 1)].into());
}

#[tokio::test]
async fn a_failing_server_keeps_the_last_good_set() {
    let server = DnsServer::start().await;
    keeps_the_last_good_set_while(&server, async || server.behave(DnsBehaviour::ServFail)).await;
}

#[tokio::test]
async fn a_silent_server_keeps_the_last_good_set() {
    let server = DnsServer::start().await;
    keeps_the_last_good_set_while(&server, async || server.behave(DnsBehaviour::Silent)).await;
}

#[tokio::test]
async fn an_empty_answer_keeps_the_last_good_set() {
    let server = DnsServer::start().await;
    keeps_the_last_good_set_while(&server, async || server.set_a("api.svc.test.", &[]).await).await;
}

#[test]
fn bad_settings_name_their_field() {
    assert_eq!(DnsQuery::host("", 80).unwrap_err().field(), "name");
    assert_eq!(DnsQuery::srv("a..b").unwrap_err().field(), "name");
    let field =
        |b: palisade_balance::discover::DnsConfigBuilder| b.build().unwrap_err().field().to_owned();
    assert_eq!(
        field(DnsConfig::builder().min_interval(Duration::ZERO)),
        "min_interval"
    );
    assert_eq!(
        field(
            DnsConfig::builder()
                .min_interval(Duration::from_secs(10))
                .max_interval(Duration::from_secs(1))
        ),
        "max_interval"
    );
}

#[tokio::test]
async fn a_balancer_follows_dns() {
    use palisade_balance::{Balance, BalanceConfig};
    use tower::{Service, ServiceExt};

    let server = DnsServer::start().await;
    server.set_a("api.svc.test.", &[1]).await;
    let discover = DnsDiscover::new(
        "test",
        server.resolver(),
        DnsQuery::host("api.svc.test.", 80).unwrap(),
        config(),
        |e: &DnsEndpoint| {
            let addr = e.addr;
            tower::service_fn(move |()| async move { Ok::<_, std::convert::Infallible>(addr) })
        },
    );
    let mut balance =
        Balance::with_config(discover, BalanceConfig::builder("test").build().unwrap());
    let first = balance.ready().await.unwrap().call(()).await.unwrap();
    assert_eq!(first, endpoint(1, 80, 1).addr);

    // The record moves: once the TTL has passed, requests go to the new address.
    server.set_a("api.svc.test.", &[7]).await;
    tokio::time::timeout(PATIENCE, async {
        while balance.ready().await.unwrap().call(()).await.unwrap() != endpoint(7, 80, 1).addr {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the balancer follows the record within its TTL");
}
