//! L1, the in-process decision cache: its values ([`Cached`]), their expiry in moka, and
//! refresh-ahead (an L1 hit in the last stretch of its entry's life queues one background
//! recomputation, so hot keys do not miss once per TTL).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use authz_core::cache::{CacheEntry, CacheKey};
use authz_core::wire::Source;
use authz_core::{Question, Timestamp};
use moka::Expiry;

use super::Decider;
use crate::clock::now;

/// An L1 value: the entry, the tier it was first obtained from, and whether a refresh-ahead
/// of it was already queued (at most one per entry).
#[derive(Debug)]
pub struct Cached {
    pub(super) entry: Arc<CacheEntry>,
    pub(super) source: Source,
    refreshing: AtomicBool,
}

impl Cached {
    pub(super) fn new(entry: Arc<CacheEntry>, source: Source) -> Arc<Self> {
        Arc::new(Self {
            entry,
            source,
            refreshing: AtomicBool::new(false),
        })
    }
}

/// Questions whose L1 entry is about to expire, for the refresh-ahead task.
pub type RefreshQueue = tokio::sync::mpsc::Receiver<Question>;

/// Refresh-ahead requests waiting at most; when the queue is full, an entry is not refreshed
/// and expires at the end of its TTL.
pub(super) const REFRESH_QUEUE: usize = 4_096;
/// Refreshes running at once: they share the decision pool with misses.
const REFRESH_CONCURRENCY: usize = 2;

/// L1 entries leave moka at their logical expiry (freshness is still checked on every read).
pub(super) struct EntryExpiry;

impl EntryExpiry {
    fn remaining(value: &Cached) -> Option<Duration> {
        Some(Duration::from_millis(value.entry.ttl_ms_at(now())))
    }
}

impl Expiry<CacheKey, Arc<Cached>> for EntryExpiry {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &Arc<Cached>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Self::remaining(value)
    }

    fn expire_after_update(
        &self,
        _key: &CacheKey,
        value: &Arc<Cached>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Self::remaining(value)
    }
}

/// Whether `entry`, at `now`, is in the last `percent` % of its lifetime.
fn refresh_due(entry: &CacheEntry, now: Timestamp, percent: u64) -> bool {
    let lifetime = entry.expires_at.as_micros() - entry.computed_at.as_micros();
    let left = entry.expires_at.as_micros() - now.as_micros();
    i128::from(left) * 100 <= i128::from(lifetime) * i128::from(percent)
}

impl Decider {
    /// Turns refresh-ahead on: an L1 hit on an entry in the last `percent` % of its lifetime
    /// queues one background recomputation of it, so that a question asked more often than
    /// its TTL keeps being answered from L1 instead of missing once a TTL. The entry being
    /// served is still servable and fresh (the hit path checks it as always); the refresh
    /// goes through the same facts path and freshness checks as a miss. Returns the queue
    /// for [`refresh_forever`]; `percent` 0 leaves it off.
    pub fn with_refresh_ahead(mut self, percent: u8) -> (Self, Option<RefreshQueue>) {
        if percent == 0 || !self.l1_enabled {
            return (self, None);
        }
        let (sender, receiver) = tokio::sync::mpsc::channel(REFRESH_QUEUE);
        self.refresh_percent = u64::from(percent.min(90));
        self.refresh_queue = Some(sender);
        (self, Some(receiver))
    }

    /// Queues a refresh of `question` when `cached` is in its last stretch and none is queued.
    pub(super) fn refresh_if_due(&self, question: &Question, cached: &Cached, now: Timestamp) {
        let Some(queue) = &self.refresh_queue else {
            return;
        };
        if !refresh_due(&cached.entry, now, self.refresh_percent)
            || cached.refreshing.swap(true, Ordering::Relaxed)
        {
            return;
        }
        let outcome = match queue.try_send(*question) {
            Ok(()) => "queued",
            Err(_) => "dropped",
        };
        metrics::counter!("authz_refresh_ahead_total", "outcome" => outcome).increment(1);
    }

    /// Recomputes `question` from the facts and stores the result in L1 and Redis. A failure
    /// leaves the current entry to expire as it would have.
    pub async fn refresh(&self, question: Question) {
        let key = CacheKey::new(&question);
        let outcome = match self.compute(&[question], None).await {
            Ok(mut entries) => match entries.pop() {
                Some((entry, source)) => {
                    self.l2_put(vec![(key.as_str().to_owned(), Arc::clone(&entry))]);
                    self.l1_put(&key, &entry, source).await;
                    "refreshed"
                }
                None => "failed",
            },
            Err(_) => "failed",
        };
        metrics::counter!("authz_refresh_ahead_total", "outcome" => outcome).increment(1);
    }
}

/// Runs the refreshes queued by L1 hits, a few at a time, until the queue closes.
pub async fn refresh_forever(decider: Arc<Decider>, mut queue: RefreshQueue) {
    let limit = Arc::new(tokio::sync::Semaphore::new(REFRESH_CONCURRENCY));
    while let Some(question) = queue.recv().await {
        let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
            return;
        };
        let decider = Arc::clone(&decider);
        tokio::spawn(async move {
            decider.refresh(question).await;
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use authz_core::{Decision, DenyReason};

    use super::*;

    #[test]
    fn refresh_is_due_in_the_last_stretch_only() {
        let entry = CacheEntry {
            decision: Decision::deny(DenyReason::NoRelationship, 1, None),
            computed_at: Timestamp::from_micros(0),
            expires_at: Timestamp::from_micros(1_000),
            dependencies: Vec::new(),
        };
        let at = Timestamp::from_micros;
        assert!(!refresh_due(&entry, at(0), 25));
        assert!(!refresh_due(&entry, at(749), 25));
        assert!(refresh_due(&entry, at(750), 25));
        assert!(refresh_due(&entry, at(2_000), 25));
        assert!(!refresh_due(&entry, at(999), 0));
    }
}
