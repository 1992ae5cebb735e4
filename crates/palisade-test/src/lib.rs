//! Scripted, fault-injecting backends for palisade's tests and benchmarks.
//!
//! A [`Backend`] is a `tower::Service` that behaves as its [`Script`] says, phase by phase
//! in tokio time: "healthy for 10 s, failing for 30 s, then healthy". Each [`Behaviour`]
//! sets a latency distribution, an error rate, whether errors come at once (a fast failure)
//! or after the latency, whether calls hang, and what `poll_ready` says. [`Stats`] count
//! what reached the backend, so a test can assert on what a layer let through.
//!
//! Randomness is a seeded, lock-free sequence indexed by call number: the same script and
//! the same order of calls give the same latencies and failures.
//!
//! [`redis::RedisServer`] runs a real `redis-server` on a free port, for tests of what keeps
//! state in Redis; a test can kill it and start it again. [`redis_cluster::RedisCluster`] runs
//! a whole Redis Cluster (three primaries, three replicas) whose nodes a test can pause, kill,
//! fail over and restart. [`etcd::Etcd`] runs a single-member etcd, killed and restarted
//! with its data. With the feature `dns`,
//! [`dns::DnsServer`] runs hickory's DNS server in-process, with records a test can edit.
//!
//! ```
//! use std::time::Duration;
//! use palisade_test::{Backend, Behaviour, Script};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let backend = Backend::new(
//!     Script::new()
//!         .then(Duration::from_secs(10), Behaviour::healthy(Duration::from_millis(5)))
//!         .then(Duration::from_secs(30), Behaviour::failing())
//!         .forever(Behaviour::healthy(Duration::from_millis(5))),
//! );
//! assert!(backend.clone().oneshot(()).await.is_ok());
//! tokio::time::advance(Duration::from_secs(10)).await;
//! assert!(backend.clone().oneshot(()).await.is_err());
//! assert_eq!(backend.stats().calls(), 2);
//! assert_eq!(backend.stats().failures(), 1);
//! # }
//! ```

mod backend;
mod behaviour;
#[cfg(feature = "dns")]
pub mod dns;
pub mod etcd;
mod http;
mod peers;
pub mod redis;
pub mod redis_cluster;
mod stats;

pub use crate::backend::{Backend, BackendError, Reply};
pub use crate::behaviour::{Behaviour, Latency, Readiness, Script};
pub use crate::http::HttpBackend;
pub use crate::peers::TowerRetryPolicy;
pub use crate::stats::Stats;
