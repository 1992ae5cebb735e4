//! What a registration says about an instance, as stored in etcd: [`Member`], and where
//! it is stored.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Where registrations go unless told: `/palisade/services/<service>/<instance id>`.
pub const DEFAULT_PREFIX: &str = "/palisade/services";

/// One instance of a service, as it registers itself and as discovery reads it: the value
/// under `<prefix>/<service>/<id>`, in JSON —
/// `{"addr":"10.0.0.7:8080","weight":1,"zone":"eu-west-1a","metadata":{},"draining":false}`.
///
/// Only `addr` is required when reading; the others default (weight 1, no zone, no
/// metadata, serving), so that other tools can register instances with a one-line value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Member {
    /// Where the instance takes requests.
    pub addr: SocketAddr,
    /// Its weight among the service's instances (a balancer divides its load by it).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub weight: u32,
    /// Its zone, for zone-aware routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Anything else: version, build, shard.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Whether it is draining: registered still, but to be sent no new requests.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub draining: bool,
}

fn one() -> u32 {
    1
}

fn is_one(weight: &u32) -> bool {
    *weight == 1
}

impl Member {
    /// A serving member at `addr`, weight 1, no zone, no metadata.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            weight: 1,
            zone: None,
            metadata: BTreeMap::new(),
            draining: false,
        }
    }

    /// The value stored in etcd.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a member serializes")
    }

    /// A member from a value read in etcd; `None` for a value that is not one (anyone with
    /// write access to the prefix can put anything there).
    pub fn decode(value: &[u8]) -> Option<Self> {
        serde_json::from_slice(value).ok()
    }
}

/// The key prefix of `service`'s members under `prefix`, with its trailing `/`.
pub fn service_prefix(prefix: &str, service: &str) -> String {
    format!("{}/{service}/", prefix.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_round_trips_and_reads_from_a_short_value() {
        let mut member = Member::new("10.0.0.7:8080".parse().unwrap());
        assert_eq!(member.encode(), br#"{"addr":"10.0.0.7:8080"}"#);
        member.weight = 3;
        member.zone = Some("eu-west-1a".into());
        member.metadata.insert("version".into(), "1.4.2".into());
        member.draining = true;
        assert_eq!(Member::decode(&member.encode()), Some(member));

        let short = Member::decode(br#"{"addr": "[::1]:80"}"#).unwrap();
        assert_eq!((short.weight, short.draining), (1, false));
        for bad in [
            &b"10.0.0.7:8080"[..],
            b"{}",
            br#"{"addr": "nowhere"}"#,
            b"\xff",
        ] {
            assert_eq!(Member::decode(bad), None);
        }
    }

    #[test]
    fn prefixes_join_with_one_slash() {
        assert_eq!(
            service_prefix("/palisade/services", "orders"),
            "/palisade/services/orders/"
        );
        assert_eq!(service_prefix("/apps/", "orders"), "/apps/orders/");
    }
}
