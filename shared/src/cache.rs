//! The cache key, the cache entry and the TTL policy shared by every tier (L1, Redis, KV).
//!
//! One format everywhere means an entry written by the origin can be judged by the edge with
//! the same rule: [`servable`]. An entry is never served at or after its `expires_at`, which is
//! the lesser of the TTL and any share expiry the decision rests on, nor below a caller's
//! `min_revision`. Decoding garbage or an older format is an error that callers treat as a miss.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write as _};

use crate::decide::Decision;
use crate::model::{AccessMethod, DenyReason, Operation, Principal, Role};
use crate::question::{Question, Resource};
use crate::time::Timestamp;

/// The key format's version, the key's first field. Bump it when the key layout changes.
pub const KEY_FORMAT: &str = "a1";
/// The entry format's version, the entry's first field. Bump it when the entry layout changes:
/// entries of any other version decode as an error, so a rollout starts from an empty cache.
pub const ENTRY_FORMAT: &str = "e1";

/// A cache key: `a1/<principal>/<type><resource>/<operation>`.
///
/// Collision-free by construction: the principal is either `-` (anonymous) or exactly 32 hex
/// digits, the type and operation are single letters from fixed tables, the resource is
/// exactly 32 hex digits and `/` occurs in no field. At most 71 bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CacheKey(String);

impl CacheKey {
    /// The key of `question`.
    pub fn new(question: &Question) -> Self {
        let mut key = String::with_capacity(72);
        let mut buffer = uuid::Uuid::encode_buffer();
        key.push_str(KEY_FORMAT);
        key.push('/');
        match question.principal {
            Principal::Anonymous => key.push('-'),
            Principal::User(user) => {
                key.push_str(user.as_uuid().simple().encode_lower(&mut buffer))
            }
        }
        key.push('/');
        key.push(match question.resource {
            Resource::Generation(_) => 'g',
            Resource::Project(_) => 'p',
            Resource::Team(_) => 't',
        });
        key.push_str(question.resource.id().simple().encode_lower(&mut buffer));
        key.push('/');
        key.push(match question.operation {
            Operation::Read => 'r',
            Operation::Download => 'd',
            Operation::Write => 'w',
            Operation::Delete => 'x',
            Operation::Share => 's',
            Operation::Admin => 'a',
        });
        Self(key)
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How long each kind of decision may be cached. Defaults: grants 30 s, denies 10 s,
/// not-found denies (`user_not_found`, `resource_not_found`) 5 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlPolicy {
    /// TTL of a grant, in milliseconds.
    pub grant_ttl_ms: u64,
    /// TTL of a deny other than not-found, in milliseconds.
    pub deny_ttl_ms: u64,
    /// TTL of a `user_not_found` or `resource_not_found` deny, in milliseconds.
    pub not_found_ttl_ms: u64,
}

impl Default for TtlPolicy {
    fn default() -> Self {
        Self {
            grant_ttl_ms: 30_000,
            deny_ttl_ms: 10_000,
            not_found_ttl_ms: 5_000,
        }
    }
}

impl TtlPolicy {
    /// The TTL that applies to `decision`, in milliseconds.
    pub const fn ttl_ms(&self, decision: &Decision) -> u64 {
        match decision.reason {
            None => self.grant_ttl_ms,
            Some(DenyReason::UserNotFound | DenyReason::ResourceNotFound) => self.not_found_ttl_ms,
            Some(_) => self.deny_ttl_ms,
        }
    }
}

/// A decision as cached, with its logical lifetime and what it depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The decision (its `changes_at` is folded into `expires_at` and not stored).
    pub decision: Decision,
    /// When it was computed.
    pub computed_at: Timestamp,
    /// The first instant it may no longer be served.
    pub expires_at: Timestamp,
    /// Ids whose change invalidates it (see `Facts::dependencies`); empty where a tier does
    /// not track them (the edge relies on the TTL and `min_revision`).
    pub dependencies: Vec<uuid::Uuid>,
}

impl CacheEntry {
    /// An entry for `decision` computed at `now`, living for the policy's TTL but never past
    /// the share expiry it rests on nor past the next instant the facts could answer otherwise.
    pub fn new(
        decision: Decision,
        now: Timestamp,
        policy: &TtlPolicy,
        dependencies: Vec<uuid::Uuid>,
    ) -> Self {
        let mut expires_at = now.plus_millis(policy.ttl_ms(&decision));
        for limit in [decision.valid_until, decision.changes_at]
            .into_iter()
            .flatten()
        {
            expires_at = expires_at.min(limit);
        }
        Self {
            decision: Decision {
                changes_at: None,
                ..decision
            },
            computed_at: now,
            expires_at,
            dependencies,
        }
    }

    /// Milliseconds left before `expires_at`, 0 when past.
    pub fn ttl_ms_at(&self, now: Timestamp) -> u64 {
        let micros = self.expires_at.as_micros().saturating_sub(now.as_micros());
        u64::try_from(micros / 1_000).unwrap_or(0)
    }

    /// Encodes to the text format:
    /// `e1;<granted 0|1>;<method|->;<role|->;<reason|->;<revision>;<computed_at µs>;<expires_at µs>;<valid_until µs|->;<dep,dep,...>`
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(96 + self.dependencies.len() * 33);
        let decision = &self.decision;
        let word = |value: Option<&'static str>| value.unwrap_or("-");
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "{ENTRY_FORMAT};{};{};{};{};{};{};{};",
            u8::from(decision.granted),
            word(decision.access_method.map(AccessMethod::as_str)),
            word(decision.effective_role.map(Role::as_str)),
            word(decision.reason.map(DenyReason::as_str)),
            decision.revision,
            self.computed_at.as_micros(),
            self.expires_at.as_micros(),
        );
        match decision.valid_until {
            Some(valid_until) => {
                let _ = write!(out, "{}", valid_until.as_micros());
            }
            None => out.push('-'),
        }
        out.push(';');
        let mut buffer = uuid::Uuid::encode_buffer();
        for (index, id) in self.dependencies.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            out.push_str(id.simple().encode_lower(&mut buffer));
        }
        out
    }

    /// Decodes the text format. Anything else (garbage, another format version, an
    /// inconsistent decision) is an error, which callers treat as a cache miss.
    pub fn decode(input: &str) -> Result<Self, EntryError> {
        let mut fields = input.split(';');
        let mut next = || fields.next().ok_or(EntryError::Malformed);
        if next()? != ENTRY_FORMAT {
            return Err(EntryError::UnknownFormat);
        }
        let granted = match next()? {
            "1" => true,
            "0" => false,
            _ => return Err(EntryError::Malformed),
        };
        let access_method = optional(next()?, |text| AccessMethod::parse(text, "").ok())?;
        let effective_role = optional(next()?, |text| Role::parse(text, "").ok())?;
        let reason = optional(next()?, |text| DenyReason::parse(text, "").ok())?;
        let revision = next()?.parse::<u64>().map_err(|_| EntryError::Malformed)?;
        let computed_at = micros(next()?)?;
        let expires_at = micros(next()?)?;
        let valid_until = optional(next()?, |text| text.parse::<i64>().ok().map(Timestamp))?;
        let dependencies_field = next()?;
        if fields.next().is_some() {
            return Err(EntryError::Malformed);
        }
        let dependencies = if dependencies_field.is_empty() {
            Vec::new()
        } else {
            dependencies_field
                .split(',')
                .map(|text| {
                    (text.len() == 32)
                        .then(|| uuid::Uuid::try_parse(text).ok())
                        .flatten()
                        .ok_or(EntryError::Malformed)
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        // A grant has a method and a role and no reason; a deny the reverse.
        let consistent = if granted {
            access_method.is_some() && effective_role.is_some() && reason.is_none()
        } else {
            access_method.is_none()
                && effective_role.is_none()
                && reason.is_some()
                && valid_until.is_none()
        };
        if !consistent || expires_at < computed_at {
            return Err(EntryError::Malformed);
        }
        Ok(Self {
            decision: Decision {
                granted,
                access_method,
                effective_role,
                reason,
                revision,
                valid_until,
                changes_at: None,
            },
            computed_at,
            expires_at,
            dependencies,
        })
    }
}

fn optional<T>(text: &str, parse: impl Fn(&str) -> Option<T>) -> Result<Option<T>, EntryError> {
    if text == "-" {
        Ok(None)
    } else {
        parse(text).map(Some).ok_or(EntryError::Malformed)
    }
}

fn micros(text: &str) -> Result<Timestamp, EntryError> {
    text.parse::<i64>()
        .map(Timestamp)
        .map_err(|_| EntryError::Malformed)
}

/// Why a cached value could not be decoded; either way it is a miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryError {
    /// Another format version (older or newer) or not an entry at all.
    UnknownFormat,
    /// The right version, but fields missing, extra or invalid.
    Malformed,
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnknownFormat => "cache entry of an unknown format version",
            Self::Malformed => "malformed cache entry",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for EntryError {}

/// Whether a cache may answer with `entry` at `now` for a caller demanding `min_revision`:
/// strictly before its expiry, and computed at or after the demanded revision.
pub fn servable(entry: &CacheEntry, now: Timestamp, min_revision: Option<u64>) -> bool {
    now < entry.expires_at && min_revision.is_none_or(|min| entry.decision.revision >= min)
}

/// Whether a tier holding `existing` at `now` should replace it with `incoming`: an older
/// answer must never put back what a newer one replaced (a slow plain request's grant at
/// revision 10 arriving after a `min_revision=11` request stored the deny at 11). The higher
/// revision wins; at the same revision (the same data) the later expiry; an expired or absent
/// entry is always replaced.
pub fn replaces(incoming: &CacheEntry, existing: Option<&CacheEntry>, now: Timestamp) -> bool {
    let Some(existing) = existing.filter(|existing| now < existing.expires_at) else {
        return true;
    };
    match incoming.decision.revision.cmp(&existing.decision.revision) {
        core::cmp::Ordering::Greater => true,
        core::cmp::Ordering::Less => false,
        core::cmp::Ordering::Equal => incoming.expires_at > existing.expires_at,
    }
}

/// Whether a hit on `entry` at `now` should refresh it in the background (refresh-ahead): in
/// the second half of its life, unless its end is the share expiry it rests on, which no
/// refresh can move (the share's own change is a write, seen through the revision).
pub fn refresh_due(entry: &CacheEntry, now: Timestamp) -> bool {
    if entry.decision.valid_until == Some(entry.expires_at) {
        return false;
    }
    let life = entry
        .expires_at
        .as_micros()
        .saturating_sub(entry.computed_at.as_micros());
    let age = now
        .as_micros()
        .saturating_sub(entry.computed_at.as_micros());
    now < entry.expires_at && age.saturating_mul(2) >= life
}
