//! `cargo +nightly fuzz run forwarded`: `X-Forwarded-For` and `Forwarded` take any bytes a
//! header may hold; reading the client address from them never panics, and the address is
//! always the peer or one written in the header — never one the parser made up.
#![no_main]

use std::net::IpAddr;

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use palisade_ratelimit::http::{ForwardedHeader, TrustedProxies};

/// Every address written in `text`: runs of address characters, bare, in brackets, or with
/// a port.
fn written(text: &str) -> Vec<IpAddr> {
    text.split(|c: char| !(c.is_ascii_hexdigit() || ":.[]".contains(c)))
        .flat_map(|token| {
            let unbracketed = token.trim_start_matches('[').split(']').next().unwrap_or("");
            let without_port = token.rsplit_once(':').map_or(token, |(host, _)| host);
            [token, unbracketed, without_port]
        })
        .filter_map(|candidate| candidate.parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
        .collect()
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(bytes) else {
        return;
    };
    let peer: IpAddr = "10.0.0.2".parse().unwrap();
    for header in [ForwardedHeader::XForwardedFor, ForwardedHeader::Forwarded] {
        let proxies = TrustedProxies::new(["10.0.0.0/8", "::1"]).unwrap().header(header);
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.clone());
        headers.insert("forwarded", value.clone());
        let client = proxies.client_ip(peer, &headers);
        if client != peer {
            let text = String::from_utf8_lossy(bytes);
            assert!(written(&text).contains(&client), "{client} from {text:?}");
        }
    }
});
