//! Endpoints from DNS, through hickory-resolver: the addresses of a host name (A and AAAA)
//! or the targets of a service (SRV, with their ports and weights), resolved again as the
//! answer's TTL runs out.
//!
//! DNS is the discovery every platform has, and the one that hiccups: a resolver times
//! out, a server answers SERVFAIL for a moment, a zone is reloaded half-written and says
//! the name has no records. None of these empties the balancer — the last good set is
//! kept, with a warning and `palisade_balance_discovery_kept_total{source="dns"}` — while
//! an answer that really lists fewer addresses removes the ones gone (their requests in
//! flight finish, since the balancer's futures own their endpoint's service).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_core::Stream;
use hickory_resolver::TokioResolver;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::{Name, RData, Record};
use palisade_core::ConfigError;
use tokio::time::Sleep;
use tower::discover::Change;

use super::Weighted;

pub use hickory_resolver;

/// One address a DNS answer gave, with the weight its SRV record asked for (1 for A and
/// AAAA answers; the sum when several SRV records point at the same address).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsEndpoint {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The share of traffic it asks for, beside the others.
    pub weight: u32,
}

impl Weighted for DnsEndpoint {
    fn weight(&self) -> u32 {
        self.weight
    }
}

impl fmt::Debug for DnsEndpoint {
    // Endpoints are labelled in metrics and logs by their Debug form: the address is what
    // an operator looks for.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.weight == 1 {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{} (weight {})", self.addr, self.weight)
        }
    }
}

/// What to ask DNS.
#[derive(Debug, Clone)]
pub struct DnsQuery(Query);

#[derive(Debug, Clone)]
enum Query {
    Host { name: Name, port: u16 },
    Srv { name: Name },
}

impl DnsQuery {
    /// The A and AAAA records of `name`, each address with `port`.
    pub fn host(name: &str, port: u16) -> Result<Self, ConfigError> {
        Ok(Self(Query::Host {
            name: parse_name(name)?,
            port,
        }))
    }

    /// The SRV records of `name` (`_http._tcp.api.example.com`): the targets of the most
    /// preferred priority, with their ports and weights. Targets of less preferred
    /// priorities are backups that this source does not use — ejection and panic mode
    /// already handle endpoints that fail.
    pub fn srv(name: &str) -> Result<Self, ConfigError> {
        Ok(Self(Query::Srv {
            name: parse_name(name)?,
        }))
    }
}

fn parse_name(name: &str) -> Result<Name, ConfigError> {
    if name.is_empty() {
        return Err(ConfigError::new("name", "must not be empty"));
    }
    Name::from_utf8(name)
        .map_err(|error| ConfigError::new("name", format!("is not a DNS name: {error}")))
}

/// How often to resolve again; made with [`DnsConfig::builder`].
#[derive(Debug, Clone)]
pub struct DnsConfig {
    min_interval: Duration,
    max_interval: Duration,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            min_interval: Duration::from_secs(5),
            max_interval: Duration::from_secs(60),
        }
    }
}

impl DnsConfig {
    /// A builder that starts from the defaults.
    ///
    /// | setting | default | from |
    /// |---|---|---|
    /// | [`min_interval`](DnsConfigBuilder::min_interval) | 5 s | Envoy's `dns_min_refresh_rate` |
    /// | [`max_interval`](DnsConfigBuilder::max_interval) | 60 s | a long TTL should not hide a change for hours |
    pub fn builder() -> DnsConfigBuilder {
        DnsConfigBuilder {
            config: Self::default(),
        }
    }
}

/// Builds a [`DnsConfig`].
#[derive(Debug, Clone)]
pub struct DnsConfigBuilder {
    config: DnsConfig,
}

impl DnsConfigBuilder {
    /// The shortest wait between two resolutions, however short the TTL, and the wait
    /// after a failed or empty one.
    pub fn min_interval(mut self, interval: Duration) -> Self {
        self.config.min_interval = interval;
        self
    }

    /// The longest wait between two resolutions, however long the TTL. (When it is shorter
    /// than the TTL, the resolver's own cache may answer until the TTL passes.)
    pub fn max_interval(mut self, interval: Duration) -> Self {
        self.config.max_interval = interval;
        self
    }

    /// Checks the settings.
    pub fn build(self) -> Result<DnsConfig, ConfigError> {
        let c = &self.config;
        if c.min_interval.is_zero() {
            return Err(ConfigError::new("min_interval", "must be longer than zero"));
        }
        if c.max_interval < c.min_interval {
            return Err(ConfigError::new(
                "max_interval",
                "must not be shorter than min_interval",
            ));
        }
        Ok(self.config)
    }
}

/// What one resolution found, and for how long it holds.
struct Answer {
    endpoints: BTreeSet<DnsEndpoint>,
    ttl: Duration,
}

type Resolution = Pin<Box<dyn Future<Output = Result<Answer, NetError>> + Send>>;

enum Next {
    Resolving(Resolution),
    Waiting(Pin<Box<Sleep>>),
}

/// Endpoints from DNS, as tower [`Change`]s: a [`tower::discover::Discover`] for
/// [`Balance`](crate::Balance), keyed by [`DnsEndpoint`], whose weights the balancer uses.
///
/// The first resolution starts when the stream is first polled; each next one when the
/// answer's smallest TTL has passed, kept within `min_interval` and `max_interval`. A
/// failed resolution, or one that finds no address, keeps the endpoints as they are and is
/// tried again after `min_interval`.
///
/// ```no_run
/// use palisade_balance::discover::{DnsConfig, DnsDiscover, DnsQuery};
/// use palisade_balance::discover::dns::hickory_resolver::TokioResolver;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // With the `system-config` feature, the resolver /etc/resolv.conf describes.
/// let resolver = TokioResolver::builder_tokio()?.build()?;
/// let discover = DnsDiscover::new(
///     "orders",
///     resolver,
///     DnsQuery::srv("_http._tcp.orders.internal")?,
///     DnsConfig::default(),
///     |endpoint: &palisade_balance::discover::DnsEndpoint| endpoint.addr, // make a client here
/// );
/// # let _ = discover; Ok(()) }
/// ```
pub struct DnsDiscover<M, S> {
    name: Arc<str>,
    kept: metrics::Counter,
    resolver: TokioResolver,
    query: DnsQuery,
    config: DnsConfig,
    make: M,
    current: BTreeSet<DnsEndpoint>,
    changes: VecDeque<Change<DnsEndpoint, S>>,
    next: Next,
}

impl<M, S> std::fmt::Debug for DnsDiscover<M, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsDiscover")
            .field("name", &self.name)
            .field("query", &self.query)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl<M, S> DnsDiscover<M, S>
where
    M: FnMut(&DnsEndpoint) -> S,
{
    /// Resolves `query` with `resolver`, making each new endpoint's service with `make`;
    /// `name` (the balancer's, usually) labels its metrics and events.
    pub fn new(
        name: impl Into<Arc<str>>,
        resolver: TokioResolver,
        query: DnsQuery,
        config: DnsConfig,
        make: M,
    ) -> Self {
        // The future does nothing until the stream is first polled.
        let first = Next::Resolving(Box::pin(resolve(resolver.clone(), query.0.clone())));
        let name = name.into();
        Self {
            kept: crate::metrics::discovery_kept(&name, "dns"),
            name,
            resolver,
            query,
            config,
            make,
            current: BTreeSet::new(),
            changes: VecDeque::new(),
            next: first,
        }
    }

    /// The endpoints of the last good answer.
    pub fn endpoints(&self) -> &BTreeSet<DnsEndpoint> {
        &self.current
    }

    /// Takes in an answer, and says how long to wait before the next resolution.
    fn apply(&mut self, result: Result<Answer, NetError>) -> Duration {
        let answer = match result {
            Ok(answer) if !answer.endpoints.is_empty() => answer,
            Ok(_) => return self.keep("the answer had no usable address"),
            Err(error) if error.is_no_records_found() => {
                return self.keep("the name has no records");
            }
            Err(error) => {
                tracing::warn!(discovery = %self.name, query = ?self.query.0, %error, "DNS resolution failed");
                return self.keep("resolution failed");
            }
        };
        for gone in self.current.difference(&answer.endpoints) {
            self.changes.push_back(Change::Remove(*gone));
        }
        for new in answer.endpoints.difference(&self.current) {
            let service = (self.make)(new);
            self.changes.push_back(Change::Insert(*new, service));
        }
        self.current = answer.endpoints;
        answer
            .ttl
            .clamp(self.config.min_interval, self.config.max_interval)
    }

    fn keep(&self, why: &'static str) -> Duration {
        tracing::warn!(
            discovery = %self.name,
            query = ?self.query.0,
            endpoints = self.current.len(),
            why,
            "DNS gave no endpoints; keeping the last good set"
        );
        self.kept.increment(1);
        self.config.min_interval
    }

    fn resolve(&self) -> Resolution {
        Box::pin(resolve(self.resolver.clone(), self.query.0.clone()))
    }
}

impl<M, S> Unpin for DnsDiscover<M, S> {}

impl<M, S> Stream for DnsDiscover<M, S>
where
    M: FnMut(&DnsEndpoint) -> S,
{
    type Item = Result<Change<DnsEndpoint, S>, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(change) = this.changes.pop_front() {
                return Poll::Ready(Some(Ok(change)));
            }
            match &mut this.next {
                Next::Resolving(resolution) => {
                    let result = ready!(resolution.as_mut().poll(cx));
                    let wait = this.apply(result);
                    this.next = Next::Waiting(Box::pin(tokio::time::sleep(wait)));
                }
                Next::Waiting(sleep) => {
                    ready!(sleep.as_mut().poll(cx));
                    this.next = Next::Resolving(this.resolve());
                }
            }
        }
    }
}

/// One resolution of `query`.
async fn resolve(resolver: TokioResolver, query: Query) -> Result<Answer, NetError> {
    match query {
        Query::Host { name, port } => {
            let lookup = resolver.lookup_ip(name).await?;
            let ttl = smallest_ttl(lookup.as_lookup().answers());
            let endpoints = lookup
                .iter()
                .map(|ip| DnsEndpoint {
                    addr: SocketAddr::new(ip, port),
                    weight: 1,
                })
                .collect();
            Ok(Answer { endpoints, ttl })
        }
        Query::Srv { name } => resolve_srv(&resolver, name).await,
    }
}

async fn resolve_srv(resolver: &TokioResolver, name: Name) -> Result<Answer, NetError> {
    let lookup = resolver.srv_lookup(name).await?;
    let mut ttl = smallest_ttl(lookup.answers());
    let records: Vec<_> = lookup
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            // RFC 2782: a target of "." means the service is not offered there.
            RData::SRV(srv) if !srv.target.is_root() => Some(srv),
            _ => None,
        })
        .collect();
    let Some(preferred) = records.iter().map(|srv| srv.priority).min() else {
        return Ok(Answer {
            endpoints: BTreeSet::new(),
            ttl,
        });
    };

    let mut weights: BTreeMap<SocketAddr, u32> = BTreeMap::new();
    let mut last_error = None;
    for srv in records.iter().filter(|srv| srv.priority == preferred) {
        // Servers usually send the targets' addresses along; ask only for those they did not.
        let mut addresses = addresses_in(lookup.additionals(), &srv.target);
        if addresses.is_empty() {
            match resolver.lookup_ip(srv.target.clone()).await {
                Ok(ips) => {
                    ttl = ttl.min(smallest_ttl(ips.as_lookup().answers()));
                    addresses = ips.iter().collect();
                }
                Err(error) => {
                    tracing::warn!(target = %srv.target, %error, "could not resolve an SRV target");
                    last_error = Some(error);
                    continue;
                }
            }
        } else {
            ttl = ttl.min(smallest_ttl(lookup.additionals()));
        }
        for ip in addresses {
            *weights.entry(SocketAddr::new(ip, srv.port)).or_default() += u32::from(srv.weight);
        }
    }
    if weights.is_empty()
        && let Some(error) = last_error
    {
        return Err(error);
    }
    let endpoints = weights
        .into_iter()
        .map(|(addr, weight)| DnsEndpoint { addr, weight })
        .collect();
    Ok(Answer { endpoints, ttl })
}

/// The A and AAAA addresses of `target` among `records`.
fn addresses_in(records: &[Record], target: &Name) -> Vec<IpAddr> {
    records
        .iter()
        .filter(|record| record.name == *target)
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .collect()
}

fn smallest_ttl(records: &[Record]) -> Duration {
    let seconds = records.iter().map(|record| record.ttl).min().unwrap_or(0);
    Duration::from_secs(u64::from(seconds))
}
