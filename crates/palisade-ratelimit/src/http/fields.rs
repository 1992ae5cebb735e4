//! The IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers): `RateLimit-Policy`
//! says the quotas, `RateLimit` where the client stands.
//!
//! ```text
//! RateLimit-Policy: "per-client";q=100;w=60
//! RateLimit: "per-client";r=42;t=18
//! ```
//!
//! `q` requests every `w` seconds; `r` requests left now, `t` seconds until the quota is
//! whole again. Both are lists: one item for each policy that applied to the request.

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

use crate::gcra::Verdict;
use crate::limiter::Live;

/// `RateLimit-Policy`.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The two fields for the policies that applied to a request, noted as they are checked.
#[derive(Debug, Default)]
pub(crate) struct Fields<'a> {
    first: Option<(&'a Live, Verdict)>,
    more: Vec<(&'a Live, Verdict)>,
}

impl<'a> Fields<'a> {
    /// Notes `live`'s verdict.
    pub(crate) fn push(&mut self, live: &'a Live, verdict: &Verdict) {
        match self.first {
            None => self.first = Some((live, *verdict)),
            Some(_) => self.more.push((live, *verdict)),
        }
    }

    /// Forgets what was noted.
    pub(crate) fn clear(&mut self) {
        self.first = None;
        self.more.clear();
    }

    /// The two header values, or none when no policy applied. One policy (the common case,
    /// on every admitted response by default) costs one allocation of the exact size: its
    /// `RateLimit-Policy` value was made with the limiter, and its `RateLimit` value is
    /// written without `fmt` into the buffer it is sent from.
    pub(crate) fn into_values(self) -> Option<(HeaderValue, HeaderValue)> {
        let (live, verdict) = self.first?;
        let mut state = Vec::new();
        push_state(&mut state, live, &verdict);
        if self.more.is_empty() {
            return Some((live.policy_value.clone(), header_value(state)?));
        }
        let mut policy = Vec::from(live.policy_item.as_bytes());
        for (live, verdict) in &self.more {
            policy.extend_from_slice(b", ");
            policy.extend_from_slice(live.policy_item.as_bytes());
            state.extend_from_slice(b", ");
            push_state(&mut state, live, verdict);
        }
        Some((header_value(policy)?, header_value(state)?))
    }
}

/// Appends one policy's item of `RateLimit`, `"name";r=42;t=18`, growing `out` by exactly
/// its length. `t` is in whole seconds rounded up: a client told 0 would come back before
/// the quota did.
fn push_state(out: &mut Vec<u8>, live: &Live, verdict: &Verdict) {
    let reset = verdict.reset();
    let secs = reset.as_secs() + u64::from(reset.subsec_nanos() > 0);
    let (mut remaining, mut reset) = (itoa::Buffer::new(), itoa::Buffer::new());
    let remaining = remaining.format(verdict.remaining()).as_bytes();
    let reset = reset.format(secs).as_bytes();
    out.reserve_exact(live.state_prefix.len() + remaining.len() + b";t=".len() + reset.len());
    out.extend_from_slice(&live.state_prefix);
    out.extend_from_slice(remaining);
    out.extend_from_slice(b";t=");
    out.extend_from_slice(reset);
}

/// A header value sent from `bytes` as they are: a buffer filled to its capacity becomes
/// `Bytes` without another allocation. Policy names are validated to be header-safe and
/// numbers are digits, so this does not fail.
fn header_value(bytes: Vec<u8>) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(Bytes::from(bytes)).ok()
}
