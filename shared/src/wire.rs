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
