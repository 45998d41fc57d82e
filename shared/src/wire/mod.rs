//! The wire formats of API.md that both the origin and the edge speak, with their one
//! parser: the authorize query and bodies ([`request`], into [`Check`]s), the decision object
//! ([`WireDecision`]) and the error every parser returns ([`WireError`]).
//!
//! Both services call these parsers and map a [`WireError`] to their JSON error response; no
//! service parses a wire format itself.

mod decision;
mod error;
pub mod request;

use alloc::string::String;

use serde::{Deserialize, Serialize};

use crate::error::ParseError;
use crate::question::Question;

pub use decision::WireDecision;
pub use error::WireError;
pub use request::{Check, PrincipalSource};

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
