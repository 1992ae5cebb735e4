//! `cargo +nightly fuzz run ratelimit_field`: a `429`'s `RateLimit` field, which palisade's
//! clients read as a hint, takes any bytes a header may hold; reading it never panics, and
//! a wait it reads is one the field wrote (a `t` of an exhausted policy).
#![no_main]

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use palisade_core::hint::parse_ratelimit;

fuzz_target!(|bytes: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(bytes) else {
        return;
    };
    if let Some(wait) = parse_ratelimit(&value) {
        let text = String::from_utf8_lossy(bytes);
        assert!(text.contains(&wait.as_secs().to_string()), "{wait:?} from {text:?}");
    }
});
