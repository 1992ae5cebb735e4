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
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering::SeqCst};
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::{Time, TokioRuntimeProvider};
use hickory_resolver::proto::op::{Header, HeaderCounts, Metadata, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, SOA, SRV};
use hickory_resolver::proto::rr::{LowerName, Name, RData, Record, RecordType, RrKey};
use hickory_resolver::{Resolver, TokioResolver};
use hickory_server::Server;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, MessageResponseBuilder, ZoneType};
use palisade_balance::discover::{Change, DnsConfig, DnsDiscover, DnsEndpoint, DnsQuery};
use tokio::sync::watch;
use tokio_stream::StreamExt;

const ZONE: &str = "svc.test.";
const TTL: u32 = 1;
/// Bounds every wait; reached only when something is broken.
const PATIENCE: Duration = Duration::from_secs(20);

/// How the server treats queries.
const ANSWER: u8 = 0;
const SERVFAIL: u8 = 1;
const SILENT: u8 = 2;

/// hickory's server with one in-memory zone, whose records the test edits while it runs.
struct DnsServer {
    zone: Arc<InMemoryZoneHandler<TokioRuntimeProvider>>,
    behaviour: Arc<AtomicU8>,
    queries: watch::Receiver<u64>,
    addr: SocketAddr,
    _server: Server<Switch>,
}

/// Answers from the catalog, or fails, or says nothing, as the test sets it.
struct Switch {
    catalog: Catalog,
    behaviour: Arc<AtomicU8>,
    queries: watch::Sender<u64>,
}

#[async_trait::async_trait]
impl RequestHandler for Switch {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        self.queries.send_modify(|n| *n += 1);
        match self.behaviour.load(SeqCst) {
            ANSWER => self.catalog.handle_request::<R, T>(request, response).await,
            SERVFAIL => {
                let failure = MessageResponseBuilder::from_message_request(request)
                    .error_msg(&request.metadata, ResponseCode::ServFail);
                response
                    .send_response(failure)
                    .await
                    .expect("the test server can answer")
            }
            _ => ResponseInfo::from(Header {
                metadata: Metadata::response_from_request(&request.metadata),
                counts: HeaderCounts::default(),
            }),
        }
    }
}

fn name(text: &str) -> Name {
    Name::from_str(text).expect("a valid name")
}

impl DnsServer {
    async fn start() -> Self {
        let origin = name(ZONE);
        let zone = Arc::new(InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
            origin.clone(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
        ));
        let soa = SOA::new(
            name("ns.svc.test."),
            name("admin.svc.test."),
            1,
            60,
            60,
            60,
            TTL,
        );
        zone.upsert(Record::from_rdata(origin.clone(), TTL, RData::SOA(soa)), 1)
            .await;
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin), vec![zone.clone()]);
        let behaviour = Arc::new(AtomicU8::new(ANSWER));
        let (count, queries) = watch::channel(0);
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback UDP port");
        let addr = socket.local_addr().expect("a bound socket has an address");
        let mut server = Server::new(Switch {
            catalog,
            behaviour: behaviour.clone(),
            queries: count,
        });
        server.register_socket(socket);
        Self {
            zone,
            behaviour,
            queries,
            addr,
            _server: server,
        }
    }

    /// A resolver that asks only this server, quickly gives up, and caches nothing, so
    /// that every resolution the source makes reaches the server.
    fn resolver(&self) -> TokioResolver {
        let mut udp = ConnectionConfig::udp();
        udp.port = self.addr.port();
        let mut server = NameServerConfig::udp(self.addr.ip());
        server.connections = vec![udp];
        let mut builder = Resolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![server]),
            TokioRuntimeProvider::default(),
        );
        let options = builder.options_mut();
        options.timeout = Duration::from_millis(200);
        options.attempts = 1;
        options.cache_size = 0;
        builder.build().expect("a resolver for the test server")
    }

    async fn set(&self, host: &str, record_type: RecordType, records: Vec<RData>) {
        let host = name(host);
        self.zone
            .records_mut()
            .await
            .remove(&RrKey::new(LowerName::new(&host), record_type));
        for data in records {
            self.zone
                .upsert(Record::from_rdata(host.clone(), TTL, data), 1)
                .await;
        }
    }

    async fn set_a(&self, host: &str, last_octets: &[u8]) {
        let records = last_octets
            .iter()
            .map(|&octet| RData::A(A(Ipv4Addr::new(127, 0, 0, octet))))
            .collect();
        self.set(host, RecordType::A, records).await;
    }

    /// Waits until the server has seen `more` queries beyond those it has seen so far.
    async fn queries_to_come(&self, more: u64) {
        let mut queries = self.queries.clone();
        let target = *queries.borrow_and_update() + more;
        tokio::time::timeout(PATIENCE, queries.wait_for(|&n| n >= target))
            .await
            .expect("the source keeps asking")
            .expect("the server is up");
    }
}

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
    DnsDiscover::new(server.resolver(), query, config(), |e: &DnsEndpoint| e.addr)
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
    let srv = |priority, weight, port, target: &str| {
        RData::SRV(SRV::new(priority, weight, port, name(target)))
    };
    server
        .set(
            "_http._tcp.svc.test.",
            RecordType::SRV,
            vec![
                srv(10, 30, 9001, "a.svc.test."),
                srv(10, 10, 9002, "b.svc.test."),
                // A backup: a less preferred priority is not used.
                srv(20, 50, 9003, "c.svc.test."),
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
        .set(
            "_http._tcp.svc.test.",
            RecordType::SRV,
            vec![
                srv(10, 30, 9001, "a.svc.test."),
                srv(10, 10, 9005, "b.svc.test."),
            ],
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

    server.behaviour.store(ANSWER, SeqCst);
    server.set_a("api.svc.test.", &[2]).await;
    let (_, removed) = changes(&mut source, 1).await;
    assert_eq!(removed, [endpoint(1, 80, 1)].into());
}

#[tokio::test]
async fn a_failing_server_keeps_the_last_good_set() {
    let server = DnsServer::start().await;
    keeps_the_last_good_set_while(&server, async || server.behaviour.store(SERVFAIL, SeqCst)).await;
}

#[tokio::test]
async fn a_silent_server_keeps_the_last_good_set() {
    let server = DnsServer::start().await;
    keeps_the_last_good_set_while(&server, async || server.behaviour.store(SILENT, SeqCst)).await;
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
    let field = |b: palisade_balance::discover::DnsConfigBuilder| b.build().unwrap_err().field();
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
        server.resolver(),
        DnsQuery::host("api.svc.test.", 80).unwrap(),
        config(),
        |e: &DnsEndpoint| {
            let addr = e.addr;
            tower::service_fn(move |()| async move { Ok::<_, std::convert::Infallible>(addr) })
        },
    );
    let mut balance = Balance::new(discover, BalanceConfig::builder().build().unwrap());
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
