//! Where endpoints come from: sources that yield tower's [`Change`] as endpoints come and
//! go, which makes each of them a [`tower::discover::Discover`].

mod static_list;
mod watch;

pub use tower::discover::Change;

pub use self::static_list::{StaticDiscover, static_list};
pub use self::watch::WatchDiscover;
