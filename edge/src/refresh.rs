//! Refresh-ahead: a hit in the second half of its entry's life (`authz_core::cache::refresh_due`)
//! asks the origin again in the background (`ctx.wait_until`, after the response), once per key
//! per isolate, so that a key asked often never expires and a plain request's staleness stays
//! within the short TTL the origin hands out.
//!
//! A refresh first reads KV: another isolate may have refreshed the key already, and then its
//! entry is taken instead of asking the origin. It asks with `min_revision` set to the revision
//! of the entry it refreshes, so that the answer is never older than what is held (a tier keeps
//! the newer answer, `authz_core::cache::replaces`, and would refuse an older one). Refreshes
//! are not rate limited: the service asks, not the caller. A failed refresh is logged; the entry
//! it meant to refresh simply ends at its expiry.

use authz_core::cache::{CacheEntry, CacheKey};
use futures_util::future::join_all;
use worker::KvStore;

use crate::bindings::OriginConfig;
use crate::cache::{self, RefreshClaim};
use crate::clock::now;
use crate::origin;
use crate::request::Check;

/// One key to refresh: its check, the entry that was hit, and this isolate's claim on the key.
#[derive(Debug)]
pub struct Due {
    /// The key.
    pub key: CacheKey,
    /// The question (its `min_revision` is replaced by the entry's revision).
    pub check: Check,
    /// The entry that was hit.
    pub entry: CacheEntry,
    /// Held until the refresh ends.
    pub claim: RefreshClaim,
}

impl Due {
    /// A refresh of `entry` under `key`, or `None` when this isolate is refreshing it already.
    pub fn claim(key: &CacheKey, check: Check, entry: &CacheEntry) -> Option<Self> {
        Some(Self {
            key: key.clone(),
            check,
            entry: entry.clone(),
            claim: cache::claim_refresh(key)?,
        })
    }
}

/// Refreshes `due` (one origin call for all of them), writing what comes back to both tiers.
pub async fn refresh(origin: OriginConfig, kv: KvStore, due: Vec<Due>, memory_capacity: usize) {
    let elsewhere = join_all(
        due.iter()
            .map(|item| cache::refreshed_elsewhere(&kv, &item.key, memory_capacity)),
    )
    .await;
    let asked: Vec<Due> = due
        .into_iter()
        .zip(elsewhere)
        .filter(|(_, done)| !done)
        .map(|(item, _)| item)
        .collect();
    if asked.is_empty() {
        return;
    }
    let checks: Vec<Check> = asked
        .iter()
        .map(|item| Check {
            min_revision: Some(item.entry.decision.revision),
            ..item.check
        })
        .collect();
    let sent = now();
    let answers = match checks.as_slice() {
        [check] => origin::authorize(&origin, check)
            .await
            .map(|decision| vec![decision]),
        _ => origin::authorize_batch(&origin, &checks).await,
    };
    let decisions = match answers {
        Ok(decisions) => decisions,
        Err(error) => {
            worker::console_warn!("refresh-ahead of {} keys: {error:?}", asked.len());
            return;
        }
    };
    let answered = now();
    let writes = asked.into_iter().zip(decisions).map(|(item, decision)| {
        let (_, entry) = cache::keep_answer(&item.key, decision, sent, answered, memory_capacity);
        let kv = kv.clone();
        async move {
            cache::store(kv, item.key, entry).await;
            drop(item.claim);
        }
    });
    join_all(writes.collect::<Vec<_>>()).await;
}
