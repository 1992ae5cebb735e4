//! `cargo +nightly fuzz run member`: a member's record in etcd is whatever anyone with write
//! access to the prefix put there, and every client's discovery reads it; reading it never
//! panics, and a record that reads writes back as one that reads the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_registry::etcd::Member;

fuzz_target!(|bytes: &[u8]| {
    if let Some(member) = Member::decode(bytes) {
        assert_eq!(Member::decode(&member.encode()), Some(member));
    }
});
