//! Where endpoints come from: sources that yield tower's [`Change`] as endpoints come and
//! go, which makes each of them a [`tower::discover::Discover`].

#[cfg(feature = "dns")]
pub mod dns;
mod static_list;
mod watch;
mod weight;

pub use tower::discover::Change;

#[cfg(feature = "dns")]
pub use self::dns::{DnsConfig, DnsConfigBuilder, DnsDiscover, DnsEndpoint, DnsQuery};
pub use self::static_list::{StaticDiscover, static_list};
pub use self::watch::WatchDiscover;
pub use self::weight::Weighted;
