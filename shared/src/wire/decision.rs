//! API.md's decision object, as the origin writes it and the edge reads and stores it.

use alloc::string::String;

use serde::{Deserialize, Serialize};

use super::{Source, push_decimal};
use crate::cache::CacheEntry;
use crate::decide::Decision;
use crate::model::{AccessMethod, DenyReason, Role};
use crate::time::Timestamp;

/// API.md's decision object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireDecision {
    /// Whether the operation is allowed.
    pub granted: bool,
    /// The method, on a grant.
    pub access_method: Option<AccessMethod>,
    /// The role, on a grant.
    pub effective_role: Option<Role>,
    /// The reason, on a deny.
    pub reason: Option<DenyReason>,
    /// The data revision it was computed at.
    pub revision: u64,
    /// The share expiry a grant rests on, else null.
    pub valid_until: Option<Timestamp>,
    /// How long a client may reuse the answer, in milliseconds.
    pub ttl_ms: u64,
    /// Which tier answered (diagnosis only).
    pub source: Source,
}

impl WireDecision {
    /// The wire object of a cached entry, answered at `now` by `source`.
    pub fn from_entry(entry: &CacheEntry, now: Timestamp, source: Source) -> Self {
        let Decision {
            granted,
            access_method,
            effective_role,
            reason,
            revision,
            valid_until,
            ..
        } = entry.decision;
        Self {
            granted,
            access_method,
            effective_role,
            reason,
            revision,
            valid_until,
            ttl_ms: entry.ttl_ms_at(now),
            source,
        }
    }

    /// The JSON text of this object, exactly as `serde_json` writes it (same keys in the same
    /// order, no whitespace), without a serializer: every value is a bool, an integer, a word
    /// of a closed vocabulary or a timestamp, none of which needs escaping. The origin answers
    /// every L1 hit with it. A test checks it against `serde_json::to_string` on every
    /// combination of the vocabularies.
    pub fn to_json(&self) -> String {
        fn word(out: &mut String, value: Option<&str>) {
            match value {
                Some(text) => {
                    out.push('"');
                    out.push_str(text);
                    out.push('"');
                }
                None => out.push_str("null"),
            }
        }
        let mut out = String::with_capacity(192);
        out.push_str(if self.granted {
            "{\"granted\":true,\"access_method\":"
        } else {
            "{\"granted\":false,\"access_method\":"
        });
        word(&mut out, self.access_method.map(AccessMethod::as_str));
        out.push_str(",\"effective_role\":");
        word(&mut out, self.effective_role.map(Role::as_str));
        out.push_str(",\"reason\":");
        word(&mut out, self.reason.map(DenyReason::as_str));
        out.push_str(",\"revision\":");
        push_decimal(&mut out, self.revision);
        out.push_str(",\"valid_until\":");
        match self.valid_until {
            Some(at) => {
                use core::fmt::Write as _;
                // Timestamp's Display is its RFC 3339 text, which serializes unescaped.
                let _ = write!(out, "\"{at}\"");
            }
            None => out.push_str("null"),
        }
        out.push_str(",\"ttl_ms\":");
        push_decimal(&mut out, self.ttl_ms);
        out.push_str(",\"source\":");
        word(&mut out, Some(self.source.as_str()));
        out.push('}');
        out
    }

    /// The decision this wire object carries.
    pub const fn decision(&self) -> Decision {
        Decision {
            granted: self.granted,
            access_method: self.access_method,
            effective_role: self.effective_role,
            reason: self.reason,
            revision: self.revision,
            valid_until: self.valid_until,
            changes_at: None,
        }
    }

    /// The cache entry an edge stores for this answer to a question it sent at `sent_at`: it
    /// lives `ttl_ms` from the sending, not from the receipt (the answer's transit and the
    /// origin's own time are never added to its life), and never to or past `valid_until`,
    /// judged by the receiver's clock.
    pub fn to_entry(&self, sent_at: Timestamp) -> CacheEntry {
        let mut expires_at = sent_at.plus_millis(self.ttl_ms);
        if let Some(valid_until) = self.valid_until {
            expires_at = expires_at.min(valid_until);
        }
        CacheEntry {
            decision: self.decision(),
            computed_at: sent_at,
            expires_at: expires_at.max(sent_at),
            dependencies: alloc::vec::Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_json_writes_what_serde_writes() {
        let sources = [Source::L1, Source::L2, Source::Db, Source::Edge];
        let times = [
            None,
            Some(Timestamp::from_micros(0)),
            Some(Timestamp::from_micros(1_795_000_000_123_456)),
            Some(Timestamp::from_micros(1_795_000_000_000_000)),
        ];
        let numbers = [0, 1, 9, 10, 99, 30_000, 1_234_567_890, u64::MAX];
        let methods = core::iter::once(None).chain(AccessMethod::ALL.iter().copied().map(Some));
        let mut compared = 0;
        for access_method in methods {
            let roles = core::iter::once(None).chain(Role::ALL.iter().copied().map(Some));
            for effective_role in roles {
                let reasons =
                    core::iter::once(None).chain(DenyReason::ALL.iter().copied().map(Some));
                for reason in reasons {
                    for (index, source) in sources.iter().enumerate() {
                        for valid_until in times {
                            for granted in [false, true] {
                                let decision = WireDecision {
                                    granted,
                                    access_method,
                                    effective_role,
                                    reason,
                                    revision: numbers[(index + compared) % numbers.len()],
                                    valid_until,
                                    ttl_ms: numbers[compared % numbers.len()],
                                    source: *source,
                                };
                                assert_eq!(
                                    decision.to_json(),
                                    serde_json::to_string(&decision).expect("serde"),
                                    "{decision:?}"
                                );
                                compared += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(compared > 1_000, "{compared}");
    }
}
