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
//!   tower `Discover`s; keys carry weights through [`discover::Weighted`]. With the feature
//!   `etcd`, `discover::EtcdDiscover` follows members registered in etcd; with
//!   `kubernetes`, `discover::KubernetesDiscover` a Service's EndpointSlices.
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
//! - **Active health checks** ([`health`]): each endpoint probed on a timer — an HTTP GET,
//!   `grpc.health.v1`, or a check of your own — out after failures in a row and back after
//!   passes, through the same breaker and the same cap as passive ejection.
//!
//! - **Slow start** ([`SlowStart`]): a new or returning endpoint's share ramps up over a
//!   window instead of arriving whole.
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
//! Two endpoints: one answers in 10 ms, the other is broken and fails every request at once.
//! A least-loaded balancer that only looks at latency would find the broken one the fastest
//! and send it the most; here a failure costs as much as a 1 s answer, so after failing once
//! it is left alone, and the requests go where they are answered:
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
//! use std::time::Duration;
//!
//! use palisade_balance::{Balance, discover::static_list};
//! use tower::{BoxError, Service, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! // An endpoint, healthy or broken, and the requests it gets.
//! let endpoint = |broken: bool| {
//!     let calls = Arc::new(AtomicUsize::new(0));
//!     let counted = calls.clone();
//!     let service = service_fn(move |order: u32| {
//!         counted.fetch_add(1, SeqCst);
//!         async move {
//!             if broken {
//!                 return Err(BoxError::from("503 Service Unavailable"));
//!             }
//!             tokio::time::sleep(Duration::from_millis(10)).await;
//!             Ok(order)
//!         }
//!     });
//!     (service, calls)
//! };
//! let (healthy, healthy_calls) = endpoint(false);
//! let (broken, broken_calls) = endpoint(true);
//! let endpoints = static_list([("10.0.0.1:80", healthy), ("10.0.0.2:80", broken)]);
//! let mut balance = Balance::new(endpoints, "orders");
//!
//! let mut answered = 0;
//! for order in 0..50 {
//!     if balance.ready().await?.call(order).await.is_ok() {
//!         answered += 1;
//!     }
//! }
//! assert!(broken_calls.load(SeqCst) <= 1, "the broken endpoint is left alone");
//! assert!(answered >= 49);
//! assert_eq!(healthy_calls.load(SeqCst), answered);
//! # Ok(())
//! # }
//! ```
//!
//! Endpoints that come and go are followed through a [`discover`] source instead of the
//! static list: see the example there.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod balance;
mod config;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub mod de;
mod endpoint;
mod error;
mod future;
mod load;

pub mod discover;
#[cfg(feature = "grpc")]
pub mod grpc;
pub mod health;
#[cfg(feature = "http")]
pub mod http;
pub mod metrics;
pub mod slow_start;

pub use crate::balance::Balance;
pub use crate::config::{BalanceConfig, BalanceConfigBuilder};
pub use crate::error::NoReadyEndpoints;
pub use crate::future::ResponseFuture;
pub use crate::load::LoadMetric;
pub use crate::slow_start::SlowStart;
