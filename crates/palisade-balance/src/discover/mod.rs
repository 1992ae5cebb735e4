//! Where endpoints come from: sources that yield tower's [`Change`] as endpoints come and
//! go, which makes each of them a [`tower::discover::Discover`].
//!
//! # Example
//!
//! Endpoints the application learns of (from Consul, etcd, a config file...) and publishes
//! on a `tokio::sync::watch` channel: [`WatchDiscover`] turns each new set into the changes
//! from the last, and a [`Balance`](crate::Balance) over it follows them.
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

#[cfg(feature = "dns")]
pub mod dns;
#[cfg(feature = "etcd")]
#[cfg_attr(docsrs, doc(cfg(feature = "etcd")))]
pub mod etcd;
#[cfg(any(feature = "etcd", feature = "kubernetes"))]
mod follow;
#[cfg(feature = "kubernetes")]
#[cfg_attr(docsrs, doc(cfg(feature = "kubernetes")))]
pub mod kubernetes;
mod static_list;
mod watch;
mod weight;

pub use tower::discover::Change;

#[cfg(feature = "dns")]
pub use self::dns::{DnsConfig, DnsConfigBuilder, DnsDiscover, DnsEndpoint, DnsQuery};
#[cfg(feature = "etcd")]
pub use self::etcd::{EtcdConfig, EtcdConfigBuilder, EtcdDiscover, EtcdEndpoint};
#[cfg(feature = "kubernetes")]
pub use self::kubernetes::{
    K8sEndpoint, KubernetesConfig, KubernetesConfigBuilder, KubernetesDiscover,
};
pub use self::static_list::{StaticDiscover, static_list};
pub use self::watch::WatchDiscover;
pub use self::weight::Weighted;
