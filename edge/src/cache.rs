//! The edge's cache tiers in front of the origin: Workers KV (shared by every isolate of a
//! colo, eventually consistent) and an optional small in-memory map per isolate.
//!
//! Both store `authz_core::cache::CacheEntry` and judge it with the core's `servable`: an entry
//! is never served at or after its logical expiry (the TTL, folded with any share expiry) nor
//! below a caller's `min_revision`. A value that does not decode (garbage, another format
//! version) is a miss, never an error. This module must not decide anything itself.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use authz_core::Timestamp;
use authz_core::cache::{CacheEntry, CacheKey, refresh_due, replaces, servable};
use authz_core::wire::WireDecision;
use worker::KvStore;

use crate::clock::now;

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

/// A raw KV value as an entry: anything that does not decode (garbage, another format
/// version) is `None`, a miss.
pub fn decode_value(value: Option<&str>) -> Option<CacheEntry> {
    CacheEntry::decode(value?).ok()
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
    /// The keys this isolate is refreshing in the background (refresh-ahead, once per key).
    static REFRESHING: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
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

/// Keeps `entry` under `key` in the in-memory tier of at most `capacity` entries (`0` = off),
/// unless the tier holds a newer answer for the key ([`replaces`]): an answer that arrives late
/// never puts back what a newer one replaced. When full, expired entries go first, then
/// everything: a crude but bounded policy, enough for a tier whose entries live seconds.
pub fn memory_put(key: &CacheKey, entry: &CacheEntry, now: Timestamp, capacity: usize) {
    if capacity == 0 || now >= entry.expires_at {
        return;
    }
    MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        if !replaces(entry, memory.get(key.as_str()), now) {
            return;
        }
        if memory.len() >= capacity && !memory.contains_key(key.as_str()) {
            memory.retain(|_, cached| now < cached.expires_at);
            if memory.len() >= capacity {
                memory.clear();
            }
        }
        memory.insert(key.as_str().to_owned(), entry.clone());
    });
}

/// An origin answer to a question sent at `sent`, received by `answered`: the entry it makes
/// (living from the sending, `WireDecision::to_entry`), kept in the memory tier, and the answer
/// for the caller, whose `ttl_ms` is what is left of that entry. KV is the caller's
/// ([`store`], after the response).
pub fn keep_answer(
    key: &CacheKey,
    decision: WireDecision,
    sent: Timestamp,
    answered: Timestamp,
    memory_capacity: usize,
) -> (WireDecision, CacheEntry) {
    let entry = decision.to_entry(sent);
    memory_put(key, &entry, answered, memory_capacity);
    let ttl_ms = entry.ttl_ms_at(answered);
    (WireDecision { ttl_ms, ..decision }, entry)
}

/// The KV value under `key`, decoded; an error or anything that does not decode is `None`.
async fn kv_entry(kv: &KvStore, key: &CacheKey) -> Option<CacheEntry> {
    match kv.get(key.as_str()).text().await {
        Ok(value) => decode_value(value.as_deref()),
        Err(error) => {
            worker::console_warn!("kv get {key}: {error}");
            None
        }
    }
}

/// Both tiers: memory (when on), then KV, whose value is judged when its read has finished,
/// not when it started. A KV error is logged and counts as a miss.
pub async fn lookup(
    kv: &KvStore,
    key: &CacheKey,
    min_revision: Option<u64>,
    memory_capacity: usize,
) -> Lookup {
    let in_memory = if memory_capacity > 0 {
        memory_get(key, now(), min_revision)
    } else {
        Lookup::Miss
    };
    if let Lookup::Hit(_) = in_memory {
        return in_memory;
    }
    let from_kv = kv_entry(kv, key).await;
    let read = now();
    match (
        from_kv.map_or(Lookup::Miss, |entry| judge(entry, read, min_revision)),
        in_memory,
    ) {
        (Lookup::Hit(entry), _) => {
            memory_put(key, &entry, read, memory_capacity);
            Lookup::Hit(entry)
        }
        (Lookup::Miss, Lookup::Bypass) => Lookup::Bypass,
        (from_kv, _) => from_kv,
    }
}

/// Writes `entry` to KV (run it after the response, through `ctx.wait_until`), unless KV
/// already holds a newer answer ([`replaces`]): the value is read first. KV has no
/// compare-and-set, so two writes racing between one's read and its put can still end with the
/// older one (edge/README.md says what is guaranteed). Errors are logged: a lost write only
/// costs a later miss.
pub async fn store(kv: KvStore, key: CacheKey, entry: CacheEntry) {
    let existing = kv_entry(&kv, &key).await;
    let now = now();
    let ttl_ms = entry.ttl_ms_at(now);
    if ttl_ms == 0 || !replaces(&entry, existing.as_ref(), now) {
        return;
    }
    // As bytes: `put` with a `String` goes through serde_wasm_bindgen (and links float
    // formatting); KV stores the same bytes, and `get().text()` reads them back as text.
    let put = match kv.put_bytes(key.as_str(), entry.encode().as_bytes()) {
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

/// Claims `key` for a background refresh; `None` when this isolate is already refreshing it.
/// The claim ends when the returned guard is dropped.
pub fn claim_refresh(key: &CacheKey) -> Option<RefreshClaim> {
    REFRESHING.with(|refreshing| {
        refreshing
            .borrow_mut()
            .insert(key.as_str().to_owned())
            .then(|| RefreshClaim(key.as_str().to_owned()))
    })
}

/// A key being refreshed (see [`claim_refresh`]).
#[derive(Debug)]
pub struct RefreshClaim(String);

impl Drop for RefreshClaim {
    fn drop(&mut self) {
        REFRESHING.with(|refreshing| refreshing.borrow_mut().remove(&self.0));
    }
}

/// Whether another isolate has refreshed `key` in KV already: then its entry (fresh, not yet
/// due) is taken into memory and the origin is not asked.
pub async fn refreshed_elsewhere(kv: &KvStore, key: &CacheKey, memory_capacity: usize) -> bool {
    let Some(entry) = kv_entry(kv, key).await else {
        return false;
    };
    let now = now();
    if servable(&entry, now, None) && !refresh_due(&entry, now) {
        memory_put(key, &entry, now, memory_capacity);
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A raw KV value judged at `now`, as `lookup` judges it.
    fn judge_value(value: Option<&str>, now: Timestamp, min_revision: Option<u64>) -> Lookup {
        decode_value(value).map_or(Lookup::Miss, |entry| judge(entry, now, min_revision))
    }
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

    #[test]
    fn memory_tier_never_puts_back_an_older_answer() {
        let key = key(42);
        memory_put(&key, &entry(11, 1_000), NOW, 16);
        memory_put(&key, &entry(10, 30_000), NOW, 16);
        assert_eq!(memory_get(&key, NOW, None), Lookup::Hit(entry(11, 1_000)));
        memory_put(&key, &entry(11, 2_000), NOW, 16);
        assert_eq!(
            memory_get(&key, NOW, None),
            Lookup::Hit(entry(11, 2_000)),
            "the same revision, living longer"
        );
        memory_put(&key, &entry(10, 30_000), NOW.plus_millis(2_000), 16);
        assert_eq!(
            memory_get(&key, NOW.plus_millis(2_000), None),
            Lookup::Hit(entry(10, 30_000)),
            "an expired newer entry is no obstacle"
        );
    }

    #[test]
    fn a_refresh_is_claimed_once_per_key() {
        let first = claim_refresh(&key(50)).expect("free");
        assert!(claim_refresh(&key(50)).is_none(), "already refreshing");
        assert!(claim_refresh(&key(51)).is_some(), "another key");
        drop(first);
        assert!(claim_refresh(&key(50)).is_some(), "free again");
    }
}
