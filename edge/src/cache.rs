//! The edge's cache tiers in front of the origin: Workers KV (shared by every isolate of a
//! colo, eventually consistent) and an optional small in-memory map per isolate.
//!
//! Both store `authz_core::cache::CacheEntry` and judge it with the core's `servable`: an entry
//! is never served at or after its logical expiry (the TTL, folded with any share expiry) nor
//! below a caller's `min_revision`. A value that does not decode (garbage, another format
//! version) is a miss, never an error. This module must not decide anything itself.

use std::cell::RefCell;
use std::collections::HashMap;

use authz_core::Timestamp;
use authz_core::cache::{CacheEntry, CacheKey, servable};
use worker::KvStore;

/// KV's smallest `expirationTtl`, in seconds.
pub const KV_MIN_EXPIRATION_TTL_SECONDS: u64 = 60;

/// What the tiers hold for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A servable entry: answer with it.
    Hit(CacheEntry),
    /// An unexpired entry computed below the caller's `min_revision`: ask the origin.
    Bypass,
    /// Nothing usable (absent, expired, undecodable): ask the origin.
    Miss,
}

impl Lookup {
    /// The value of the `X-Authz-Cache` header for this outcome.
    pub const fn header(&self) -> &'static str {
        match self {
            Self::Hit(_) => "hit",
            Self::Bypass => "bypass",
            Self::Miss => "miss",
        }
    }
}

/// Judges a decoded entry at `now` for a caller demanding `min_revision`.
pub fn judge(entry: CacheEntry, now: Timestamp, min_revision: Option<u64>) -> Lookup {
    if servable(&entry, now, min_revision) {
        Lookup::Hit(entry)
    } else if now < entry.expires_at {
        Lookup::Bypass
    } else {
        Lookup::Miss
    }
}

/// Judges a raw KV value: anything that does not decode is a miss.
pub fn judge_value(value: Option<&str>, now: Timestamp, min_revision: Option<u64>) -> Lookup {
    match value.map(CacheEntry::decode) {
        Some(Ok(entry)) => judge(entry, now, min_revision),
        Some(Err(_)) | None => Lookup::Miss,
    }
}

/// KV's `expirationTtl` for an entry living `ttl_ms`: whole seconds rounded up, at least
/// KV's minimum of 60 s. KV may keep the value longer than the entry is fresh; freshness is the
/// entry's own `expires_at`, which every read checks.
pub fn kv_expiration_ttl_seconds(ttl_ms: u64) -> u64 {
    ttl_ms.div_ceil(1_000).max(KV_MIN_EXPIRATION_TTL_SECONDS)
}

thread_local! {
    /// The per-isolate tier. Workers run one request at a time per thread, so a `RefCell` is
    /// enough; the map never holds more than the configured number of entries.
    static MEMORY: RefCell<HashMap<String, CacheEntry>> = RefCell::new(HashMap::new());
}

/// Looks `key` up in the in-memory tier. Expired entries are dropped on the way.
pub fn memory_get(key: &CacheKey, now: Timestamp, min_revision: Option<u64>) -> Lookup {
    MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        let Some(entry) = memory.get(key.as_str()) else {
            return Lookup::Miss;
        };
        let lookup = judge(entry.clone(), now, min_revision);
        if lookup == Lookup::Miss {
            memory.remove(key.as_str());
        }
        lookup
    })
}

/// Keeps `entry` under `key` in the in-memory tier of at most `capacity` entries (`0` = off).
/// When full, expired entries go first, then everything: a crude but bounded policy, enough for
/// a tier whose entries live seconds.
pub fn memory_put(key: &CacheKey, entry: &CacheEntry, now: Timestamp, capacity: usize) {
    if capacity == 0 || now >= entry.expires_at {
        return;
    }
    MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        if memory.len() >= capacity && !memory.contains_key(key.as_str()) {
            memory.retain(|_, cached| now < cached.expires_at);
            if memory.len() >= capacity {
                memory.clear();
            }
        }
        memory.insert(key.as_str().to_owned(), entry.clone());
    });
}

/// Both tiers: memory (when on), then KV. A KV error is logged and counts as a miss.
pub async fn lookup(
    kv: &KvStore,
    key: &CacheKey,
    now: Timestamp,
    min_revision: Option<u64>,
    memory_capacity: usize,
) -> Lookup {
    let in_memory = if memory_capacity > 0 {
        memory_get(key, now, min_revision)
    } else {
        Lookup::Miss
    };
    if let Lookup::Hit(_) = in_memory {
        return in_memory;
    }
    let value = match kv.get(key.as_str()).text().await {
        Ok(value) => value,
        Err(error) => {
            worker::console_warn!("kv get {key}: {error}");
            None
        }
    };
    match (judge_value(value.as_deref(), now, min_revision), in_memory) {
        (Lookup::Hit(entry), _) => {
            memory_put(key, &entry, now, memory_capacity);
            Lookup::Hit(entry)
        }
        (Lookup::Miss, Lookup::Bypass) => Lookup::Bypass,
        (from_kv, _) => from_kv,
    }
}

/// Writes `entry` to KV (run it after the response, through `ctx.wait_until`). Errors are
/// logged: a lost write only costs a later miss.
pub async fn store(kv: KvStore, key: CacheKey, entry: CacheEntry, now: Timestamp) {
    let ttl_ms = entry.ttl_ms_at(now);
    if ttl_ms == 0 {
        return;
    }
    let put = match kv.put(key.as_str(), entry.encode()) {
        Ok(put) => put.expiration_ttl(kv_expiration_ttl_seconds(ttl_ms)),
        Err(error) => {
            worker::console_warn!("kv put {key}: {error}");
            return;
        }
    };
    if let Err(error) = put.execute().await {
        worker::console_warn!("kv put {key}: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use authz_core::decide::Decision;
    use authz_core::{AccessMethod, DenyReason, Principal, Question, Resource, Role};

    const NOW: Timestamp = Timestamp(1_780_000_000_000_000);

    fn entry(revision: u64, expires_in_ms: u64) -> CacheEntry {
        CacheEntry {
            decision: Decision {
                granted: true,
                access_method: Some(AccessMethod::DirectOwner),
                effective_role: Some(Role::Owner),
                reason: None,
                revision,
                valid_until: None,
                changes_at: None,
            },
            computed_at: NOW,
            expires_at: NOW.plus_millis(expires_in_ms),
            dependencies: Vec::new(),
        }
    }

    fn key(n: u8) -> CacheKey {
        let id = format!("d0000000-0000-4000-8000-0000000000{n:02}");
        CacheKey::new(&Question {
            principal: Principal::Anonymous,
            resource: Resource::parse("generation", &id).unwrap(),
            operation: authz_core::Operation::Read,
        })
    }

    #[test]
    fn judging_values() {
        let fresh = entry(10, 30_000);
        let encoded = fresh.encode();
        assert_eq!(
            judge_value(Some(&encoded), NOW, None),
            Lookup::Hit(fresh.clone())
        );
        assert_eq!(
            judge_value(Some(&encoded), NOW, Some(10)),
            Lookup::Hit(fresh)
        );
        assert_eq!(judge_value(Some(&encoded), NOW, Some(11)), Lookup::Bypass);
        assert_eq!(
            judge_value(Some(&encoded), NOW.plus_millis(30_000), None),
            Lookup::Miss
        );
        assert_eq!(
            judge_value(Some(&encoded), NOW.plus_millis(30_000), Some(11)),
            Lookup::Miss
        );
        for garbage in [
            "",
            "garbage",
            "e0;1;direct_owner;owner;-;1;1;2;-;",
            "e1;1",
            "\u{0}\u{ff}",
        ] {
            assert_eq!(
                judge_value(Some(garbage), NOW, None),
                Lookup::Miss,
                "{garbage:?}"
            );
        }
        assert_eq!(judge_value(None, NOW, None), Lookup::Miss);
        let deny = CacheEntry::new(
            Decision::deny(DenyReason::NoRelationship, 3, None),
            NOW,
            &authz_core::TtlPolicy::default(),
            Vec::new(),
        );
        assert_eq!(
            judge_value(Some(&deny.encode()), NOW, None),
            Lookup::Hit(deny)
        );
    }

    #[test]
    fn kv_ttl_is_at_least_a_minute_and_rounds_up() {
        for (ttl_ms, seconds) in [
            (1, 60),
            (30_000, 60),
            (60_000, 60),
            (60_001, 61),
            (3_600_000, 3_600),
        ] {
            assert_eq!(kv_expiration_ttl_seconds(ttl_ms), seconds, "{ttl_ms}");
        }
    }

    #[test]
    fn memory_tier_is_bounded_and_judged() {
        memory_put(&key(1), &entry(5, 1_000), NOW, 2);
        assert!(matches!(memory_get(&key(1), NOW, Some(5)), Lookup::Hit(_)));
        assert_eq!(memory_get(&key(1), NOW, Some(6)), Lookup::Bypass);
        assert_eq!(
            memory_get(&key(1), NOW.plus_millis(1_000), None),
            Lookup::Miss
        );
        assert_eq!(
            memory_get(&key(1), NOW, None),
            Lookup::Miss,
            "the expired entry was dropped"
        );
        memory_put(&key(2), &entry(5, 1_000), NOW, 0);
        assert_eq!(
            memory_get(&key(2), NOW, None),
            Lookup::Miss,
            "capacity 0 is off"
        );
        for n in 3..10 {
            memory_put(&key(n), &entry(5, 1_000), NOW, 2);
        }
        MEMORY.with(|memory| assert!(memory.borrow().len() <= 2));
    }
}
