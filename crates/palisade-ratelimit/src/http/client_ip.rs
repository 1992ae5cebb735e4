//! The client's address behind proxies: trusted only as far as the proxies are.
//!
//! Each proxy appends the address it received the request from to `X-Forwarded-For` (or a
//! `for=` element to `Forwarded`, RFC 7239). Everything left of what the nearest proxy wrote
//! came from the client and may be invented: a key read from the left of the list is a key
//! the client chooses. So the list is read right to left, starting from the connection's
//! peer: while the address is a trusted proxy, the next one to the left is what that proxy
//! saw; the first address that is not a trusted proxy is the client. A peer that is not a
//! trusted proxy is the client itself, and the headers are not read at all. A hop that
//! cannot be read (`unknown`, an obfuscated name, garbage) ends the walk at the proxy that
//! wrote it: its address is the key, so that a malformed value can never buy a fresh one.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use http::HeaderMap;
use http::header::{FORWARDED, HeaderName};
use ipnet::IpNet;
use palisade_core::ConfigError;

/// The header the trusted proxies write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For` (nginx, HAProxy, AWS and Google load balancers, Envoy).
    XForwardedFor,
    /// `Forwarded` (RFC 7239), its `for=` parameters.
    Forwarded,
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The proxies whose forwarding headers are believed, and which header they write.
///
/// Only the header named here is read: a proxy that writes `X-Forwarded-For` passes a
/// client's `Forwarded` on untouched, so reading both would let the client choose.
///
/// ```
/// use std::net::IpAddr;
/// use http::HeaderMap;
/// use palisade_ratelimit::http::TrustedProxies;
///
/// let proxies = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
/// let mut headers = HeaderMap::new();
/// // The client claims to be 1.1.1.1; the load balancer (10.0.0.2) saw 203.0.113.9.
/// headers.insert("x-forwarded-for", "1.1.1.1, 203.0.113.9".parse().unwrap());
/// let peer: IpAddr = "10.0.0.2".parse().unwrap();
/// assert_eq!(proxies.client_ip(peer, &headers), "203.0.113.9".parse::<IpAddr>().unwrap());
/// // A client that connects directly is its own address, whatever it sends.
/// let direct: IpAddr = "198.51.100.7".parse().unwrap();
/// assert_eq!(proxies.client_ip(direct, &headers), direct);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Arc<[IpNet]>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    /// Proxies at these addresses or networks (`"10.0.0.0/8"`, `"192.0.2.1"`, `"::1"`),
    /// writing `X-Forwarded-For`.
    pub fn new<I>(networks: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let networks = networks
            .into_iter()
            .enumerate()
            .map(|(i, text)| parse_network(text.as_ref(), i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            networks: networks.into(),
            header: ForwardedHeader::XForwardedFor,
        })
    }

    /// The proxies write `header` rather than `X-Forwarded-For`.
    pub fn header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// Whether `ip` is one of the proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.networks.iter().any(|net| net.contains(&ip))
    }

    /// The client's address, for a request that came from `peer` with `headers`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut nearest = peer.to_canonical();
        if !self.trusts(nearest) {
            return nearest;
        }
        let name = match self.header {
            ForwardedHeader::XForwardedFor => &X_FORWARDED_FOR,
            ForwardedHeader::Forwarded => &FORWARDED,
        };
        // Lines in order, each read right to left: the last line is the nearest proxy's.
        for line in headers.get_all(name).iter().rev() {
            let Ok(line) = line.to_str() else {
                return nearest;
            };
            for hop in line.rsplit(',') {
                let hop = match self.header {
                    ForwardedHeader::XForwardedFor => parse_node(hop.trim()),
                    ForwardedHeader::Forwarded => forwarded_for(hop).and_then(parse_node),
                };
                match hop {
                    Some(ip) if self.trusts(ip) => nearest = ip,
                    Some(ip) => return ip,
                    None => return nearest,
                }
            }
        }
        nearest
    }
}

fn parse_network(text: &str, index: usize) -> Result<IpNet, ConfigError> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            ConfigError::new(
                format!("trusted_proxies[{index}]"),
                format!("`{text}` is neither an address nor a network (`10.0.0.0/8`)"),
            )
        })
}

/// The `for=` value of one `Forwarded` element, unquoted.
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("for") {
            return None;
        }
        let value = value.trim();
        Some(
            value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value),
        )
    })
}

/// An address from a forwarding hop: `192.0.2.1`, `192.0.2.1:8080`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:8080`. `None` for anything else (`unknown`,
/// `_hidden`, garbage).
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return v6
            .parse::<Ipv6Addr>()
            .ok()
            .map(|ip| IpAddr::V6(ip).to_canonical());
    }
    let (v4, port) = node.split_once(':')?;
    if !is_port(port) {
        return None;
    }
    v4.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port(port: &str) -> bool {
    !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(name: &str, lines: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for line in lines {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                line.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn the_first_untrusted_hop_from_the_right_is_the_client() {
        let proxies = TrustedProxies::new(["10.0.0.0/8", "192.0.2.1"]).unwrap();
        let h = headers(
            "x-forwarded-for",
            &["6.6.6.6, 203.0.113.9, 10.1.1.1", "192.0.2.1"],
        );
        assert_eq!(proxies.client_ip(ip("10.0.0.2"), &h), ip("203.0.113.9"));
    }

    #[test]
    fn a_peer_that_is_no_proxy_is_the_client_whatever_it_claims() {
        let proxies = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
        let h = headers("x-forwarded-for", &["10.9.9.9"]);
        assert_eq!(
            proxies.client_ip(ip("198.51.100.7"), &h),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn a_hop_that_cannot_be_read_ends_at_the_proxy_that_wrote_it() {
        let proxies = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
        for bad in [
            "unknown",
            "_hidden",
            "1.2.3.4.5",
            "[::1",
            "1.2.3.4:99999x",
            "",
        ] {
            let h = headers("x-forwarded-for", &[&format!("6.6.6.6, {bad}, 10.0.0.3")]);
            assert_eq!(
                proxies.client_ip(ip("10.0.0.2"), &h),
                ip("10.0.0.3"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn all_hops_trusted_gives_the_leftmost() {
        let proxies = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
        let h = headers("x-forwarded-for", &["10.0.0.9, 10.0.0.8"]);
        assert_eq!(proxies.client_ip(ip("10.0.0.2"), &h), ip("10.0.0.9"));
        assert_eq!(
            proxies.client_ip(ip("10.0.0.2"), &HeaderMap::new()),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn forwarded_elements_with_ports_quotes_and_v6() {
        let proxies = TrustedProxies::new(["10.0.0.0/8", "2001:db8:cafe::/48"])
            .unwrap()
            .header(ForwardedHeader::Forwarded);
        let h = headers(
            "forwarded",
            &[r#"for=6.6.6.6, for="[2001:db8::17]:4711";proto=https, For="[2001:db8:cafe::1]""#],
        );
        assert_eq!(proxies.client_ip(ip("10.0.0.2"), &h), ip("2001:db8::17"));
        let h = headers("forwarded", &["proto=https;for=203.0.113.5:80"]);
        assert_eq!(proxies.client_ip(ip("10.0.0.2"), &h), ip("203.0.113.5"));
        // X-Forwarded-For is not read when the proxies write Forwarded.
        let h = headers("x-forwarded-for", &["203.0.113.5"]);
        assert_eq!(proxies.client_ip(ip("10.0.0.2"), &h), ip("10.0.0.2"));
    }

    #[test]
    fn v4_mapped_peers_are_their_v4_address() {
        let proxies = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
        let h = headers("x-forwarded-for", &["203.0.113.9"]);
        assert_eq!(
            proxies.client_ip(ip("::ffff:10.0.0.2"), &h),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn bad_networks_are_named() {
        let err = TrustedProxies::new(["10.0.0.0/8", "ten"]).unwrap_err();
        assert_eq!(err.field(), "trusted_proxies[1]");
    }

    proptest! {
        /// Whatever a client puts in the header, it cannot be keyed as a trusted proxy's
        /// client other than what the nearest proxy wrote, and nothing panics.
        #[test]
        fn a_client_cannot_choose_its_key(claimed in "[ -~]{0,80}", real in any::<[u8; 4]>()) {
            let proxies = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
            let real = IpAddr::from(real);
            prop_assume!(!proxies.trusts(real));
            let Ok(value) = http::HeaderValue::from_str(&format!("{claimed}, {real}")) else {
                return Ok(());
            };
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-for", value);
            prop_assert_eq!(proxies.client_ip(ip("10.0.0.2"), &h), real);
        }
    }
}
