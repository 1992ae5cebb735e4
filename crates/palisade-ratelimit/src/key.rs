//! [`Key`]: whom a limit counts.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

/// Whom a request counts against: each key of a policy has its own quota.
///
/// Made by a policy's [`KeySource`](crate::http::KeySource) in HTTP mode, or by the key function
/// of the generic layer. An address and a number are kept inline; a text key (a header's
/// value, a tenant id) is copied, so that a key never holds on to a request's buffers.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Key {
    /// One quota for every request.
    Global,
    /// The request had none of what the key is made from (no such header, no peer address):
    /// every such request shares this one quota, so that leaving a header out is no way
    /// around the limit.
    Absent,
    /// A client address.
    Ip(IpAddr),
    /// A number (a tenant or an account id).
    Number(u64),
    /// Bytes (a header's value, an API key).
    Text(Box<[u8]>),
}

impl Key {
    /// A text key, from anything that is bytes.
    pub fn text(bytes: impl AsRef<[u8]>) -> Self {
        Key::Text(bytes.as_ref().into())
    }
}

/// One write to the hasher for an address or a number (a derived `Hash` makes four for an
/// address: the two tags, the length, the bytes), which is most of what keyed hashing costs.
/// Keys of different kinds may hash alike; `Eq` tells them apart.
impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Key::Global => state.write_u8(0),
            Key::Absent => state.write_u8(1),
            Key::Ip(IpAddr::V4(ip)) => state.write_u32(ip.to_bits()),
            Key::Ip(IpAddr::V6(ip)) => state.write_u128(ip.to_bits()),
            Key::Number(n) => state.write_u64(*n),
            Key::Text(bytes) => state.write(bytes),
        }
    }
}

impl From<IpAddr> for Key {
    fn from(ip: IpAddr) -> Self {
        Key::Ip(ip)
    }
}

impl From<u64> for Key {
    fn from(n: u64) -> Self {
        Key::Number(n)
    }
}

impl From<&str> for Key {
    fn from(s: &str) -> Self {
        Key::text(s)
    }
}

impl From<String> for Key {
    fn from(s: String) -> Self {
        Key::Text(s.into_bytes().into_boxed_slice())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Global => f.write_str("Global"),
            Key::Absent => f.write_str("Absent"),
            Key::Ip(ip) => write!(f, "Ip({ip})"),
            Key::Number(n) => write!(f, "Number({n})"),
            Key::Text(bytes) => write!(f, "Text({:?})", String::from_utf8_lossy(bytes)),
        }
    }
}
