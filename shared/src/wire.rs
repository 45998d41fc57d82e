//! The JSON shapes of API.md that both the origin and the edge speak: the authorize request
//! and the decision object. Parsing a request validates it into a [`Question`].

use alloc::string::String;

use serde::{Deserialize, Serialize};

use crate::cache::CacheEntry;
use crate::decide::{Decision, Question};
use crate::error::ParseError;
use crate::model::{AccessMethod, DenyReason, Role};
use crate::time::Timestamp;

/// The largest accepted body, in bytes (API.md: 64 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The most questions in one batch (API.md).
pub const MAX_BATCH_CHECKS: usize = 100;

/// One question as sent to `POST /v1/authorize` (and inside a batch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeRequest {
    /// The principal, `null` for anonymous. Ignored when the caller authenticates with an
    /// end-user JWT (the principal is then the token's `sub`).
    #[serde(default)]
    pub user_id: Option<String>,
    /// `generation`, `project` or `team`.
    pub resource_type: String,
    /// The resource's UUID.
    pub resource_id: String,
    /// One of the six operations.
    pub operation: String,
    /// The answer must be computed at or after this revision.
    #[serde(default)]
    pub min_revision: Option<u64>,
}

impl AuthorizeRequest {
    /// Validates into a question.
    pub fn question(&self) -> Result<Question, ParseError> {
        Question::parse(
            self.user_id.as_deref(),
            &self.resource_type,
            &self.resource_id,
            &self.operation,
        )
    }
}

/// Which tier answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The origin's in-process cache.
    L1,
    /// Redis.
    L2,
    /// Postgres.
    Db,
    /// Workers KV at the edge.
    Edge,
}

impl Source {
    /// The wire word (as serde writes it).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::L1 => "l1",
            Self::L2 => "l2",
            Self::Db => "db",
            Self::Edge => "edge",
        }
    }
}

/// Appends `value` in decimal, without a formatter (the response paths of the L1 hit write
/// their numbers with it).
pub fn push_decimal(out: &mut String, value: u64) {
    // The largest power of ten not above the value (10^19 at most: no overflow).
    let mut divisor = 1u64;
    while value / divisor >= 10 {
        divisor *= 10;
    }
    loop {
        out.push(char::from(b'0' + (value / divisor % 10) as u8));
        if divisor == 1 {
            break;
        }
        divisor /= 10;
    }
}

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

    /// The cache entry an edge stores for this answer received at `now`: it lives `ttl_ms`.
    pub fn to_entry(&self, now: Timestamp) -> CacheEntry {
        CacheEntry {
            decision: self.decision(),
            computed_at: now,
            expires_at: now.plus_millis(self.ttl_ms),
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
