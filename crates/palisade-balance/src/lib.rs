//! Discovery and failure-aware load balancing for Tower services.
//!
//! A client that finds its endpoints by itself, keeps up as they come and go, and sends
//! each request where it will be served best — and not to the endpoints that fail fast,
//! which least-loaded balancers (tower's P2C with peak-EWMA among them) reward with more
//! traffic: an endpoint that answers every request with an instant 503 looks like the
//! fastest of all.
//!
//! - **Discovery** ([`discover`]): [`discover::static_list`]; [`discover::WatchDiscover`]
//!   for endpoints pushed by the application through a `tokio::sync::watch` channel (from
//!   Consul, etcd, a config file...), each new set diffed into tower's
//!   [`Change`](tower::discover::Change)s; and, with the feature `dns`,
//!   `discover::DnsDiscover`: A/AAAA or SRV records through hickory-resolver, resolved
//!   again as their TTL runs out, SRV weights and ports included. An empty set, a failed
//!   or an empty resolution is taken for a glitch and the last good set is kept. All are
//!   tower `Discover`s; keys carry weights through [`discover::Weighted`].
//! - **The balancer** ([`Balance`]): power of two choices over the ready endpoints by a
//!   peak-EWMA load that charges a failure (by a palisade-core classifier) a penalty latency
//!   instead of its real, short one; the choice remembered by key, so a discovery change
//!   between `poll_ready` and `call` cannot misroute the call (tower #856); and, when no
//!   endpoint is ready, a typed [`NoReadyEndpoints`] after a bounded wait instead of
//!   pending forever.
//! - **Ejection**: each endpoint behind a palisade circuit breaker in gate mode, so failures
//!   in a row take it out of the rotation (`Pending`, never `Err`) until a probe restores
//!   it; at most half of the endpoints at once, beyond which ejections are undone (panic
//!   mode).
//!
//! - **Server hints**: `Retry-After` and `grpc-retry-pushback-ms` (read by the classifier)
//!   hold an endpoint off for as long as it asked, capped.
//!
//! - **HTTP endpoints** (feature `http`): [`http::HttpEndpoint`], one shared hyper-util
//!   client pointed at each discovered address.
//!
//! - **gRPC endpoints** (feature `grpc`): [`grpc::grpc_endpoints`], a lazily connecting
//!   tonic `Channel` per discovered address.
//!
//! - **The load** ([`LoadMetric`]): the failure-aware peak-EWMA by default, or the requests
//!   in flight, either divided by the endpoint's weight.
//!
//! # Example
//!
//! ```
//! use std::collections::BTreeSet;
//! use palisade_balance::discover::WatchDiscover;
//! use tokio::sync::watch;
//! use tokio_stream::StreamExt;
//! use tower::discover::Change;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let (publish, addresses) = watch::channel(BTreeSet::from(["10.0.0.1:80", "10.0.0.2:80"]));
//! // Make the service for an address (a hyper client bound to it, a tonic Channel...).
//! let mut discover = WatchDiscover::new("orders", addresses, |addr: &&str| format!("client for {addr}"));
//! assert!(matches!(discover.next().await, Some(Ok(Change::Insert("10.0.0.1:80", _)))));
//! assert!(matches!(discover.next().await, Some(Ok(Change::Insert("10.0.0.2:80", _)))));
//!
//! publish.send(BTreeSet::from(["10.0.0.2:80"])).unwrap();
//! assert!(matches!(discover.next().await, Some(Ok(Change::Remove("10.0.0.1:80")))));
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod balance;
mod config;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub mod de;
mod error;
mod future;
mod load;

pub mod discover;
#[cfg(feature = "grpc")]
pub mod grpc;
#[cfg(feature = "http")]
pub mod http;
pub mod metrics;

pub use crate::balance::Balance;
pub use crate::config::{BalanceConfig, BalanceConfigBuilder};
pub use crate::error::NoReadyEndpoints;
pub use crate::future::ResponseFuture;
pub use crate::load::LoadMetric;
