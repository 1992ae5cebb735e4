//! The `Idempotency-Key` parser on arbitrary bytes: it never panics, and whatever it
//! accepts is a key of 1 to 255 printable ASCII characters that reads back the same when
//! written as an sf-string.
//!
//! `cargo +nightly fuzz run key` from crates/palisade-idempotency.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_idempotency::key::{MAX_KEY_LEN, parse_key, to_sf_string};

fuzz_target!(|value: &[u8]| {
    if let Ok(key) = parse_key(value) {
        assert!((1..=MAX_KEY_LEN).contains(&key.len()));
        assert!(key.bytes().all(|b| (0x20..=0x7e).contains(&b)));
        assert_eq!(parse_key(to_sf_string(&key).as_bytes()).as_deref(), Ok(key.as_str()));
    }
});
