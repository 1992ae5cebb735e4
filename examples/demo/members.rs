//! The fleet's membership: how backends join and leave, and how the gateway finds them.
//!
//! In process (the default), a `watch` channel holds the set of backends that serve, and the
//! gateway's balancer follows it through `WatchDiscover`. With `--etcd URL` (built with
//! `--features etcd`), each backend registers itself in etcd under a lease with heartbeats,
//! and the gateway discovers them there with `EtcdDiscover`, as separate processes would.
//! Either way a backend leaves through its drain: out of the set when the drain starts,
//! gone when it is over.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;

use futures_core::Stream;
use palisade::balance::discover::{Change, WatchDiscover};
use palisade::prelude::*;
use tokio::sync::watch;

/// The stream of changes the gateway's balancer follows: backends by address.
pub(crate) type Discovery<S> =
    Pin<Box<dyn Stream<Item = Result<Change<SocketAddr, S>, Infallible>> + Send>>;

/// Where the fleet's members are kept.
#[derive(Clone)]
pub(crate) enum Members {
    InProcess(watch::Sender<BTreeSet<SocketAddr>>),
    #[cfg(feature = "etcd")]
    /// Boxed: the client is some kilobytes.
    Etcd(Box<palisade::registry::etcd::etcd_client::Client>),
}

/// The service name the backends register under in etcd.
#[cfg(feature = "etcd")]
const SERVICE: &str = "palisade-demo";

impl Members {
    /// Membership on `etcd` (its client URL), or in this process.
    pub(crate) async fn new(etcd: Option<&str>) -> Result<Self, Box<dyn std::error::Error>> {
        match etcd {
            None => Ok(Self::InProcess(watch::Sender::new(BTreeSet::new()))),
            #[cfg(feature = "etcd")]
            Some(url) => {
                let client = palisade::registry::etcd::etcd_client::Client::connect([url], None);
                Ok(Self::Etcd(Box::new(client.await?)))
            }
            #[cfg(not(feature = "etcd"))]
            Some(_) => Err(
                "this demo was built without etcd: cargo run --example demo --features etcd -- --etcd URL"
                    .into(),
            ),
        }
    }

    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Self::InProcess(_) => "in process",
            #[cfg(feature = "etcd")]
            Self::Etcd(_) => "in etcd (registered under leases, discovered by watch)",
        }
    }

    /// The backend at `addr` joins, and leaves through `drain`: out of the set when the
    /// drain starts, deregistered when it is over.
    pub(crate) async fn join(
        &self,
        name: &str,
        addr: SocketAddr,
        drain: &Drain,
    ) -> Result<(), Box<dyn std::error::Error>> {
        match self {
            Self::InProcess(members) => {
                members.send_modify(|set| {
                    set.insert(addr);
                });
                let (members, drain) = (members.clone(), drain.clone());
                tokio::spawn(async move {
                    drain.started().await;
                    members.send_modify(|set| {
                        set.remove(&addr);
                    });
                });
            }
            #[cfg(feature = "etcd")]
            Self::Etcd(client) => {
                use palisade::registry::etcd::{EtcdRegistry, Instance};
                let registered = EtcdRegistry::new((**client).clone())
                    .register(Instance::new(SERVICE, addr).id(name))
                    .await?;
                registered.follow(drain);
            }
        }
        #[cfg(not(feature = "etcd"))]
        let _ = name;
        Ok(())
    }

    /// The changes the gateway follows, each backend's service made by `make`.
    pub(crate) fn discovery<S, M>(&self, make: M) -> Discovery<S>
    where
        S: Send + 'static,
        M: Fn(SocketAddr) -> S + Send + 'static,
    {
        match self {
            Self::InProcess(members) => Box::pin(WatchDiscover::new(
                "fleet",
                members.subscribe(),
                move |addr: &SocketAddr| make(*addr),
            )),
            #[cfg(feature = "etcd")]
            Self::Etcd(client) => {
                use palisade::balance::discover::{EtcdConfig, EtcdDiscover, EtcdEndpoint};
                use tokio_stream::StreamExt;
                let discover = EtcdDiscover::new(
                    SERVICE,
                    (**client).clone(),
                    EtcdConfig::default(),
                    move |e: &EtcdEndpoint| make(e.addr),
                );
                // Keyed by address, as the in-process set is.
                Box::pin(discover.map(|change| {
                    change.map(|change| match change {
                        Change::Insert(member, service) => Change::Insert(member.addr, service),
                        Change::Remove(member) => Change::Remove(member.addr),
                    })
                }))
            }
        }
    }
}
