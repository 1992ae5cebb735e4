//! Active health checks: each endpoint probed on a timer, out of the rotation after failing
//! probes in a row, back after passing ones — before traffic finds out, and for endpoints
//! that get no traffic at all.
//!
//! Passive ejection (the balancer's breakers) learns an endpoint is broken from the
//! requests it fails; an endpoint that has just joined, or gets little traffic, or fails in
//! a way requests do not see yet (a dependency down, a disk filling), is only found by
//! asking it. A [`Probe`] asks — [`HttpProbe`] GETs a path, [`GrpcHealthProbe`] calls
//! `grpc.health.v1.Health/Check` (or follows its `Watch` stream), [`probe_fn`] runs any
//! check of your own — and
//! [`HealthCheck`] says when, as Envoy's health checker does:
//!
//! - every `interval`, plus up to a `jitter` share of it, so that probes of many endpoints
//!   spread out instead of arriving in step; every `unhealthy_interval` while an endpoint is
//!   out, so that it comes back soon after it recovers;
//! - `unhealthy_threshold` failures in a row take an endpoint out, `healthy_threshold`
//!   passes in a row bring it back; a probe that takes longer than `timeout` failed;
//! - a new endpoint waits for its first passing probe before it gets traffic (one pass is
//!   enough then), unless [`start_ready`](HealthCheck::start_ready) says otherwise;
//! - at most `max_concurrent` probes in flight per balancer, so that a thousand endpoints
//!   discovered at once do not make a thousand probes at once.
//!
//! **One endpoint state, both signals**: a failing endpoint's breaker — the one passive
//! ejection trips — is forced open, so an endpoint out for either reason is an *ejected*
//! endpoint, counted against `max_ejected_share`: when more endpoints fail their checks than
//! the cap allows, the balancer keeps using them (panic mode) rather than pile every request
//! on the few left, and decides again at each failing probe. A passing probe after failing
//! ones closes the breaker, whatever opened it.
//!
//! # Example
//!
//! Two endpoints, the second one faster, so it gets the requests; then its check starts
//! failing (its database is gone, say, though it still answers). Three failures in a row
//! later it is out, and every request goes to the first:
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
//! use std::time::Duration;
//!
//! use palisade_balance::health::{HealthCheck, probe_fn};
//! use palisade_balance::{Balance, BalanceConfig, discover::static_list};
//! use tower::{BoxError, Service, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let endpoint = |name: &'static str, latency: u64| {
//!     service_fn(move |_: ()| async move {
//!         tokio::time::sleep(Duration::from_millis(latency)).await;
//!         Ok::<_, BoxError>(name)
//!     })
//! };
//! let endpoints = static_list([("a", endpoint("a", 50)), ("b", endpoint("b", 5))]);
//! let config = BalanceConfig::builder("orders")
//!     .health_check(HealthCheck::new(Duration::from_secs(5)).unhealthy_threshold(3))
//!     .build()?;
//!
//! // The check: in a real service, a GET of /healthz (`HttpProbe`) or grpc.health.v1.
//! let b_healthy = Arc::new(AtomicBool::new(true));
//! let healthy = b_healthy.clone();
//! let probe = probe_fn(move |endpoint: &&str| {
//!     let up = *endpoint == "a" || healthy.load(SeqCst);
//!     async move { if up { Ok(()) } else { Err(BoxError::from("503")) } }
//! });
//! let mut balance = Balance::with_config(endpoints, config).probe(probe);
//!
//! // Each joins after its first passing probe; the first answers show which is faster,
//! // and from then on it serves.
//! tokio::time::sleep(Duration::from_secs(1)).await;
//! for _ in 0..5 {
//!     balance.ready().await?.call(()).await?;
//! }
//! for _ in 0..20 {
//!     assert_eq!(balance.ready().await?.call(()).await?, "b");
//! }
//!
//! b_healthy.store(false, SeqCst);
//! tokio::time::sleep(Duration::from_secs(20)).await; // three probes, 5 s apart
//! for _ in 0..20 {
//!     assert_eq!(balance.ready().await?.call(()).await?, "a");
//! }
//! # Ok(())
//! # }
//! ```

mod probe;
mod prober;
mod settings;

#[cfg(feature = "grpc")]
mod grpc;
#[cfg(feature = "http")]
mod http;

#[cfg(feature = "grpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
pub use self::grpc::GrpcHealthProbe;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use self::http::HttpProbe;
pub use self::probe::{Check, CheckFuture, Probe, ProbeFn, probe_fn};
pub(crate) use self::prober::{Prober, Watch};
pub use self::settings::HealthCheck;
