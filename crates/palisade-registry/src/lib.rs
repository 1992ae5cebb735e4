//! An instance's own membership in its fleet: how it leaves without failing a request.
//!
//! palisade's other crates protect the calls an instance makes and takes; this one is
//! about the instance itself. Its first part is the **drain** ([`drain`]): on shutdown,
//! readiness fails first, requests are still served through a grace period while the
//! balancers and registries in front take the instance out (each answered with
//! `Connection: close`, so that keep-alive clients move), then new requests are refused
//! with `503` + `Retry-After` (gRPC `UNAVAILABLE`) without running, and the ones in flight
//! finish, bounded — the order Kubernetes' endpoint controllers, Envoy's drain and
//! Eureka's `DOWN`-then-cancel all assume, and that a bare `with_graceful_shutdown` skips
//! (it stops accepting at once, while the balancers still send).
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use palisade_registry::drain::{Drain, DrainConfig};
//!
//! let drain = Drain::new(
//!     DrainConfig::builder("orders")
//!         .grace(Duration::from_secs(5))    // for the endpoints to be updated
//!         .timeout(Duration::from_secs(25)) // under terminationGracePeriodSeconds
//!         .build()
//!         .unwrap(),
//! );
//! let app: Router = Router::new()
//!     .route("/orders", get(|| async { "orders" }))
//!     .route_service("/healthz", drain.readiness())
//!     .layer(drain.layer());
//! ```
//!
//! Its second part (feature `etcd`) is **registration** ([`etcd`]): the instance's address
//! and metadata under a lease in etcd, kept alive by heartbeats, marked draining and
//! revoked in step with the drain; clients find the instances with palisade-balance's
//! `EtcdDiscover`.
//!
//! # Metrics
//!
//! See [`metrics`]: whether the instance drains, its requests in flight, and the requests
//! refused.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub mod de;
pub mod drain;
mod error;
#[cfg(feature = "etcd")]
#[cfg_attr(docsrs, doc(cfg(feature = "etcd")))]
pub mod etcd;
pub mod metrics;

pub use crate::drain::{Drain, DrainConfig, DrainConfigBuilder, DrainLayer, Draining, Phase};
