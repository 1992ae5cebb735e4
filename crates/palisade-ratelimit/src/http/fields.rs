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

use std::fmt::Write;

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

    /// The two header values, or none when no policy applied. One policy (the common case)
    /// costs one allocation: its `RateLimit-Policy` value was made with the limiter.
    pub(crate) fn into_values(self) -> Option<(HeaderValue, HeaderValue)> {
        let (live, verdict) = self.first?;
        let mut state = String::with_capacity(32 + live.policy.name.len());
        write_state(&mut state, live, &verdict);
        if self.more.is_empty() {
            return Some((
                live.policy_value.clone(),
                HeaderValue::try_from(state).ok()?,
            ));
        }
        let mut policy = String::from(&*live.policy_item);
        for (live, verdict) in &self.more {
            policy.push_str(", ");
            policy.push_str(&live.policy_item);
            state.push_str(", ");
            write_state(&mut state, live, verdict);
        }
        // Policy names are validated to be header-safe; numbers are digits.
        Some((
            HeaderValue::try_from(policy).ok()?,
            HeaderValue::try_from(state).ok()?,
        ))
    }
}

/// `"name";r=42;t=18`, with `t` in whole seconds rounded up: a client told 0 would come
/// back before the quota did.
fn write_state(out: &mut String, live: &Live, verdict: &Verdict) {
    let reset = verdict.reset();
    let secs = reset.as_secs() + u64::from(reset.subsec_nanos() > 0);
    let _ = write!(
        out,
        "\"{}\";r={};t={secs}",
        live.policy.name,
        verdict.remaining()
    );
}
