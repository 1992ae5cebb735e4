//! `cargo +nightly fuzz run timeout`: the timeout headers' parsers take any bytes a header
//! may hold, and never panic; what they accept, written back, reads the same or longer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_deadline::timeout::{grpc_timeout_value, parse_grpc_timeout, parse_millis};

fuzz_target!(|bytes: &[u8]| {
    let Ok(value) = http::HeaderValue::from_bytes(bytes) else {
        return;
    };
    if let Ok(timeout) = parse_grpc_timeout(&value) {
        let again = parse_grpc_timeout(&grpc_timeout_value(timeout)).expect("written, it reads");
        assert!(again >= timeout);
    }
    let _ = parse_millis(&value);
});
