//! Registration in etcd (feature `etcd`): the service-registry pattern of Eureka and
//! Consul, on the etcd a Kubernetes-era fleet already runs.
//!
//! An instance registers its service, address and metadata ([`Member`]) under
//! `/palisade/services/<service>/<id>`, on a **lease** with a TTL, and keeps the lease alive
//! with heartbeats at a third of the TTL ([`EtcdRegistry::register`]). A process that dies —
//! `kill -9`, a lost node — stops heart-beating, and etcd deletes its key when the lease
//! runs out: no one has to clean up after it. A process that leaves on purpose marks itself
//! draining first, revokes its lease when its grace period is over, and finishes its
//! requests in flight ([`Registered::follow`] does the first two, in step with a
//! [`Drain`](crate::drain::Drain)), so discovery stops sending it new requests before it
//! stops serving them. An etcd outage is ridden out: heartbeats resume when etcd is back, and
//! a lease that expired meanwhile is granted again with the key put back.
//!
//! Clients find the instances with palisade-balance's `EtcdDiscover` (feature `etcd` there),
//! which lists and watches the same prefix.
//!
//! ```no_run
//! # async fn run(drain: palisade_registry::Drain) -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use palisade_registry::etcd::{EtcdRegistry, Instance};
//!
//! let client = etcd_client::Client::connect(["http://127.0.0.1:2379"], None).await?;
//! let registry = EtcdRegistry::new(client);
//! let registered = registry
//!     .register(
//!         Instance::new("orders", "10.0.0.7:8080".parse()?)
//!             .zone("eu-west-1a")
//!             .ttl(Duration::from_secs(10)),
//!     )
//!     .await?;
//! // Draining when the drain starts, gone when it is over.
//! registered.follow(&drain).await??;
//! # Ok(()) }
//! ```

mod error;
mod member;
mod registration;

/// The etcd client this crate is built with, re-exported so that a client made for
/// [`EtcdRegistry::new`] is of the same version.
pub use etcd_client;

pub use self::error::RegistryError;
pub use self::member::{DEFAULT_PREFIX, Member, service_prefix};
pub use self::registration::{EtcdRegistry, Instance, Registered};
