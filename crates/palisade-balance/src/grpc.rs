//! Ready-made endpoints for gRPC: a tonic `Channel` per discovered address.
//!
//! A `Channel` to one address is the endpoint service; [`grpc_endpoints`] makes them for a
//! [`WatchDiscover`](crate::discover::WatchDiscover) or a static list. The channels connect
//! lazily, on their first call, and reconnect by themselves; the balancer sees a channel
//! that cannot connect as failing calls, penalises it, and ejects it.
//!
//! ```no_run
//! use std::collections::BTreeSet;
//! use std::net::SocketAddr;
//! use palisade_balance::{Balance, BalanceConfig, discover::WatchDiscover, grpc::grpc_endpoints};
//! use palisade_core::HttpClassifier;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (_publish, addresses) = tokio::sync::watch::channel(BTreeSet::from([
//!     "10.0.0.1:50051".parse::<SocketAddr>()?,
//!     "10.0.0.2:50051".parse()?,
//! ]));
//! let balance = Balance::<_, http::Request<tonic::body::Body>, _>::with_classifier(
//!     WatchDiscover::new("inventory", addresses, grpc_endpoints()),
//!     BalanceConfig::builder("orders").build()?,
//!     // Reads grpc-status: UNAVAILABLE and the other failure codes count as failures.
//!     HttpClassifier::default(),
//! );
//! // let client = OrdersClient::new(balance);
//! # let _ = balance; Ok(()) }
//! ```

use std::net::SocketAddr;

use tonic::transport::{Channel, Endpoint};

/// A `make` function for discovery: a lazily connecting `Channel` per address.
pub fn grpc_endpoints() -> impl FnMut(&SocketAddr) -> Channel {
    |addr| {
        Endpoint::from_shared(format!("http://{addr}"))
            .expect("a socket address makes a valid URI")
            .connect_lazy()
    }
}
