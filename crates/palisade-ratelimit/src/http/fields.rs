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

/// The two fields for the policies that applied to a request, built as they are checked.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    policy: String,
    state: String,
}

impl Fields {
    /// Notes `live`'s verdict.
    pub(crate) fn push(&mut self, live: &Live, verdict: &Verdict) {
        if !self.policy.is_empty() {
            self.policy.push_str(", ");
            self.state.push_str(", ");
        }
        self.policy.push_str(&live.policy_item);
        // Whole seconds, rounded up: a client told 0 would come back before the quota did.
        let secs = verdict.reset.as_secs() + u64::from(verdict.reset.subsec_nanos() > 0);
        let _ = write!(
            self.state,
            "\"{}\";r={};t={secs}",
            live.policy.name, verdict.remaining
        );
    }

    /// The two header values, or none when no policy applied.
    pub(crate) fn into_values(self) -> Option<(HeaderValue, HeaderValue)> {
        if self.policy.is_empty() {
            return None;
        }
        // Policy names are validated to be header-safe; numbers are digits.
        Some((
            HeaderValue::try_from(self.policy).ok()?,
            HeaderValue::try_from(self.state).ok()?,
        ))
    }
}
