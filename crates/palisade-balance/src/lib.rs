//! Discovery and failure-aware load balancing for Tower services.
//!
//! A client that finds its endpoints by itself, keeps up as they come and go, and sends
//! each request where it will be served best. This crate is being built in steps; what is
//! here today is **discovery**: sources that yield tower's [`Change`](tower::discover::Change)
//! (`Insert` / `Remove`), so they plug into tower's `Balance` now and into palisade's
//! failure-aware balancer when it lands.
//!
//! - [`discover::static_list`]: a fixed set of endpoints.
//! - [`discover::WatchDiscover`]: endpoints pushed by the application through a
//!   `tokio::sync::watch` channel — from Consul, etcd, a config file, anything. Each new set
//!   is compared with the last and turned into the changes between them; an empty set is
//!   taken for a glitch of the source, not an order to drop every endpoint, and the last
//!   good set is kept (logged and counted).
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
//! let mut discover = WatchDiscover::new(addresses, |addr: &&str| format!("client for {addr}"));
//! assert!(matches!(discover.next().await, Some(Ok(Change::Insert("10.0.0.1:80", _)))));
//! assert!(matches!(discover.next().await, Some(Ok(Change::Insert("10.0.0.2:80", _)))));
//!
//! publish.send(BTreeSet::from(["10.0.0.2:80"])).unwrap();
//! assert!(matches!(discover.next().await, Some(Ok(Change::Remove("10.0.0.1:80")))));
//! # }
//! ```

pub mod discover;
pub mod metrics;
