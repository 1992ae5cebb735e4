//! hickory's DNS server, in-process on a loopback UDP port, for tests of DNS discovery: the
//! test edits the zone's records while it runs, and can make the server fail or go silent.
//!
//! ```no_run
//! use palisade_test::dns::{DnsBehaviour, DnsServer};
//!
//! # #[tokio::main] async fn main() {
//! let server = DnsServer::start().await;
//! server.set_a("api.svc.test.", &[1, 2]).await; // 127.0.0.1 and 127.0.0.2
//! let resolver = server.resolver(); // asks only this server, caches nothing
//! server.behave(DnsBehaviour::ServFail); // every query fails from now on
//! # let _ = resolver; }
//! ```

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
use tokio::sync::watch;

/// The zone the server is authoritative for.
pub const ZONE: &str = "svc.test.";
/// The TTL of every record: short, so that changes show up within a second.
pub const TTL: u32 = 1;
/// Bounds every wait; reached only when something is broken.
const PATIENCE: Duration = Duration::from_secs(20);

/// How the server treats queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum DnsBehaviour {
    /// Answers from the zone.
    Answer = 0,
    /// Answers every query with SERVFAIL.
    ServFail = 1,
    /// Sends nothing back: the resolver times out.
    Silent = 2,
}

/// hickory's server with one in-memory zone, [`ZONE`], whose records the test edits while it
/// runs. The server stops when this is dropped.
pub struct DnsServer {
    zone: Arc<InMemoryZoneHandler<TokioRuntimeProvider>>,
    behaviour: Arc<AtomicU8>,
    queries: watch::Receiver<u64>,
    addr: SocketAddr,
    _server: Server<Switch>,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
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
            0 => self.catalog.handle_request::<R, T>(request, response).await,
            1 => {
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

/// A DNS name.
///
/// # Panics
///
/// If `text` is not a valid name.
pub fn name(text: &str) -> Name {
    Name::from_str(text).expect("a valid name")
}

impl DnsServer {
    /// Starts the server on a free loopback UDP port, with an empty zone.
    ///
    /// # Panics
    ///
    /// If no loopback UDP port can be bound.
    pub async fn start() -> Self {
        let origin = name(ZONE);
        let zone = Arc::new(InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
            origin.clone(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
        ));
        let soa = SOA::new(
            name(&format!("ns.{ZONE}")),
            name(&format!("admin.{ZONE}")),
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
        let behaviour = Arc::new(AtomicU8::new(DnsBehaviour::Answer as u8));
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

    /// Where the server listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A resolver that asks only this server, quickly gives up, and caches nothing, so that
    /// every resolution reaches the server.
    ///
    /// # Panics
    ///
    /// If hickory cannot build the resolver.
    pub fn resolver(&self) -> TokioResolver {
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

    /// From now on, treats queries as `behaviour` says.
    pub fn behave(&self, behaviour: DnsBehaviour) {
        self.behaviour.store(behaviour as u8, SeqCst);
    }

    /// Replaces the records of `record_type` at `host` with `records`.
    pub async fn set(&self, host: &str, record_type: RecordType, records: Vec<RData>) {
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

    /// Points `host` at 127.0.0.N for each N of `last_octets`.
    pub async fn set_a(&self, host: &str, last_octets: &[u8]) {
        let records = last_octets
            .iter()
            .map(|&octet| RData::A(A(Ipv4Addr::new(127, 0, 0, octet))))
            .collect();
        self.set(host, RecordType::A, records).await;
    }

    /// Replaces the SRV records of `service` with one per `(priority, weight, port, target)`.
    pub async fn set_srv(&self, service: &str, targets: &[(u16, u16, u16, &str)]) {
        let records = targets
            .iter()
            .map(|&(priority, weight, port, target)| {
                RData::SRV(SRV::new(priority, weight, port, name(target)))
            })
            .collect();
        self.set(service, RecordType::SRV, records).await;
    }

    /// Waits until the server has seen `more` queries beyond those it has seen so far.
    ///
    /// # Panics
    ///
    /// If they do not come within 20 s.
    pub async fn queries_to_come(&self, more: u64) {
        let mut queries = self.queries.clone();
        let target = *queries.borrow_and_update() + more;
        tokio::time::timeout(PATIENCE, queries.wait_for(|&n| n >= target))
            .await
            .expect("the resolver keeps asking")
            .expect("the server is up");
    }
}
