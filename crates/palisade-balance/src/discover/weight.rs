//! Endpoint weights: how much of the traffic an endpoint should take beside the others.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The weight of the endpoint a discovery key names; the balancer divides the endpoint's
/// load by it, so an endpoint of weight 2 looks half as loaded as one of weight 1 with the
/// same latency and requests in flight (Linkerd weighs its endpoints the same way).
///
/// Keys that carry no weight take the provided method's 1, so for a key type of your own
/// `impl Weighted for MyKey {}` is enough. DNS SRV records give their endpoints a weight
/// ([`DnsEndpoint`](crate::discover::DnsEndpoint), feature `dns`). A weight of 0 is
/// chosen with very small probability when others are not, as RFC 2782 asks.
pub trait Weighted {
    /// This endpoint's weight; 1 unless the key says otherwise.
    fn weight(&self) -> u32 {
        1
    }
}

macro_rules! unweighted {
    ($($key:ty),* $(,)?) => { $(impl Weighted for $key {})* };
}

unweighted!(
    str, String, SocketAddr, IpAddr, u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128,
    isize, char,
);

#[cfg(feature = "http")]
impl Weighted for http::Uri {}

impl<K: Weighted + ?Sized> Weighted for &K {
    fn weight(&self) -> u32 {
        (**self).weight()
    }
}

impl<K: Weighted + ?Sized> Weighted for Arc<K> {
    fn weight(&self) -> u32 {
        (**self).weight()
    }
}

impl<K: Weighted + ?Sized> Weighted for Box<K> {
    fn weight(&self) -> u32 {
        (**self).weight()
    }
}
