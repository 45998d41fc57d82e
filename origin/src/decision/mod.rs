//! The decider: answers checks from L1 (moka, in process), then Redis, then the facts
//! (`compute`: pieces from Redis or Postgres), and writes what it computed back to both caches.
//! Single checks and batches take one path (`Decider::behind_l1` for everything behind L1)
//! and one fallback (`Decider::fallback`).
//!
//! A cached entry is served only when the core says it is servable (logical expiry,
//! `min_revision`) and the invalidation oracle says no change it depends on is newer. While
//! the change listener is disconnected nothing is known about changes, so caches are bypassed
//! and Postgres answers; if Postgres fails too, an entry still within its TTL may answer as
//! `AUTHZ_SERVE_STALE_ON_ERROR` allows (API.md: cached answers go on while Postgres is down;
//! see `config::StaleOnError` for the bound that implies), else the answer is 503. Concurrent
//! misses for one key coalesce into one Postgres query (moka's per-key compute).

mod compute;
mod l1;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use authz_core::cache::{CacheEntry, CacheKey, TtlPolicy, servable};
use authz_core::wire::{Check, Source};
use authz_core::{Question, Timestamp};
use moka::future::Cache;
use moka::ops::compute::{CompResult, Op};

use crate::cache::{PieceCache, RedisTier};
use crate::clock::now;
use crate::config::StaleOnError;
use crate::db::Pools;
use crate::error::AppError;
use crate::invalidation::Invalidation;

use l1::{Cached, EntryExpiry};
pub use l1::{RefreshQueue, refresh_forever};

/// The replica's reads, counted by outcome (relaxed atomics).
#[derive(Debug, Default)]
pub(crate) struct ReplicaCounts {
    pub(crate) used: AtomicU64,
    pub(crate) stale: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) skipped: AtomicU64,
}

/// A copy of the replica's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ReplicaReads {
    /// Reads whose answer was used: fresh enough for the question.
    pub used: u64,
    /// Reads thrown away: below `min_revision` or older than a change the process knows of.
    pub stale: u64,
    /// Reads that failed (the replica down or too slow): the primary answered.
    pub failed: u64,
    /// Misses that did not ask the replica because the change listener was disconnected.
    pub skipped: u64,
}

/// One answer and the tier that gave it.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The decision with its lifetime.
    pub entry: Arc<CacheEntry>,
    /// Who answered.
    pub source: Source,
}

/// The decider shared by every request of one origin process.
pub struct Decider {
    pools: Pools,
    l1: Cache<CacheKey, Arc<Cached>>,
    l2: Option<Arc<RedisTier>>,
    pieces: PieceCache,
    invalidation: Arc<Invalidation>,
    ttl: TtlPolicy,
    facts_queries: AtomicU64,
    replica: ReplicaCounts,
    l1_enabled: bool,
    stale_on_error: StaleOnError,
    refresh_percent: u64,
    refresh_queue: Option<tokio::sync::mpsc::Sender<Question>>,
}

impl std::fmt::Debug for Decider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decider")
            .field("l1_entries", &self.l1.entry_count())
            .field("l2", &self.l2)
            .finish_non_exhaustive()
    }
}

impl Decider {
    /// A decider over `pools`, with an L1 of `l1_capacity` decisions (0 turns L1 off, for
    /// measuring the tiers behind it) and an optional Redis tier.
    pub fn new(
        pools: Pools,
        l1_capacity: u64,
        l2: Option<Arc<RedisTier>>,
        pieces: PieceCache,
        invalidation: Arc<Invalidation>,
        ttl: TtlPolicy,
    ) -> Self {
        Self {
            pools,
            l1: Cache::builder()
                .max_capacity(l1_capacity)
                .expire_after(EntryExpiry)
                .build(),
            l2,
            pieces,
            invalidation,
            ttl,
            facts_queries: AtomicU64::new(0),
            replica: ReplicaCounts::default(),
            l1_enabled: l1_capacity > 0,
            stale_on_error: StaleOnError::All,
            refresh_percent: 0,
            refresh_queue: None,
        }
    }

    /// What caches may answer when Postgres cannot (default: grants and denies within TTL).
    #[must_use]
    pub const fn with_stale_on_error(mut self, policy: StaleOnError) -> Self {
        self.stale_on_error = policy;
        self
    }

    /// Whether a cache may answer with `entry` now that Postgres could not.
    fn usable_on_error(
        &self,
        entry: &CacheEntry,
        now: Timestamp,
        min_revision: Option<u64>,
    ) -> bool {
        let allowed = match self.stale_on_error {
            StaleOnError::All => true,
            StaleOnError::Denies => !entry.decision.granted,
            StaleOnError::None => false,
        };
        allowed && self.usable(entry, now, min_revision)
    }

    /// Facts statements sent to Postgres since start (one per miss, or per batch of misses).
    pub fn facts_queries(&self) -> u64 {
        self.facts_queries.load(Ordering::Relaxed)
    }

    /// How the replica's reads went since start.
    pub fn replica_reads(&self) -> ReplicaReads {
        ReplicaReads {
            used: self.replica.used.load(Ordering::Relaxed),
            stale: self.replica.stale.load(Ordering::Relaxed),
            failed: self.replica.failed.load(Ordering::Relaxed),
            skipped: self.replica.skipped.load(Ordering::Relaxed),
        }
    }

    /// Decisions held in L1 (approximate).
    pub fn l1_entries(&self) -> u64 {
        self.l1.entry_count()
    }

    /// The pools.
    pub const fn pools(&self) -> &Pools {
        &self.pools
    }

    /// The Redis decision tier, if configured.
    pub fn l2(&self) -> Option<&Arc<RedisTier>> {
        self.l2.as_ref()
    }

    /// Whether a cache may answer with `entry` now.
    fn usable(&self, entry: &CacheEntry, now: Timestamp, min_revision: Option<u64>) -> bool {
        servable(entry, now, min_revision) && self.invalidation.is_fresh(entry)
    }

    /// The L1 answer to `question`, when L1 holds a servable, fresh entry: the whole hit path,
    /// with nothing to wait for (callers skip the request deadline's timer for it).
    pub async fn cached(&self, check: &Check) -> Option<Answer> {
        if !self.l1_enabled || !self.invalidation.is_connected() {
            return None;
        }
        let cached = self.l1.get(&CacheKey::new(&check.question)).await?;
        let now = now();
        if !self.usable(&cached.entry, now, check.min_revision) {
            return None;
        }
        self.refresh_if_due(&check.question, &cached, now);
        Some(Answer {
            entry: Arc::clone(&cached.entry),
            source: Source::L1,
        })
    }

    /// Answers one check: L1, else (coalesced with concurrent misses of the same key) the
    /// tiers behind it.
    pub async fn decide(&self, check: Check) -> Result<Answer, AppError> {
        let key = CacheKey::new(&check.question);
        if !self.l1_enabled {
            return self
                .behind_l1(&[check], &[key], &[None])
                .await?
                .pop()
                .ok_or_else(unanswered);
        }
        if let Some(answer) = self.cached(&check).await {
            return Ok(answer);
        }
        let connected = self.invalidation.is_connected();
        let outcome = self
            .l1
            .entry(key.clone())
            .and_try_compute_with(|existing| async move {
                let stale = existing.map(|existing| Arc::clone(&existing.value().entry));
                if connected
                    && stale
                        .as_ref()
                        .is_some_and(|entry| self.usable(entry, now(), check.min_revision))
                {
                    return Ok(Op::Nop);
                }
                let answer = self
                    .behind_l1(&[check], &[key], &[stale])
                    .await?
                    .pop()
                    .ok_or_else(unanswered)?;
                Ok::<_, AppError>(Op::Put(Cached::new(answer.entry, answer.source)))
            })
            .await?;
        match outcome {
            CompResult::Inserted(entry) | CompResult::ReplacedWith(entry) => {
                let cached = entry.into_value();
                Ok(Answer {
                    entry: Arc::clone(&cached.entry),
                    source: cached.source,
                })
            }
            CompResult::Unchanged(entry) => Ok(Answer {
                entry: Arc::clone(&entry.into_value().entry),
                source: Source::L1,
            }),
            CompResult::StillNone(_) | CompResult::Removed(_) => Err(AppError::Unavailable(
                "the decision cache lost an entry it was computing".to_owned(),
            )),
        }
    }

    /// Answers checks in order, every answer judged at the returned instant, which is the one
    /// the caller must render them at: the cached answers of a batch are looked up first and
    /// the misses computed after, so an answer from a cache that ended meanwhile (a TTL, a
    /// share's expiry), and any grant whose share has expired, is asked again (up to
    /// [`BATCH_ROUNDS`] rounds, else 503): none is sent back at or after its end.
    pub async fn decide_batch(
        &self,
        checks: &[Check],
    ) -> Result<(Vec<Answer>, Timestamp), AppError> {
        let mut answers = self.decide_batch_once(checks).await?;
        for _ in 0..BATCH_ROUNDS {
            let at = now();
            let ended: Vec<usize> = (0..answers.len())
                .filter(|index| answers.get(*index).is_some_and(|answer| ended(answer, at)))
                .collect();
            if ended.is_empty() {
                return Ok((answers, at));
            }
            let again: Vec<Check> = ended.iter().map(|index| checks[*index]).collect();
            for (index, answer) in ended.into_iter().zip(self.decide_batch_once(&again).await?) {
                answers[index] = answer;
            }
        }
        Err(AppError::Unavailable(
            "batch answers kept ending before they could be sent".to_owned(),
        ))
    }

    /// One pass of [`Self::decide_batch`]: L1, then `behind_l1` for the misses (one Redis
    /// `MGET`, one Postgres statement), whose answers L1 then keeps.
    async fn decide_batch_once(&self, checks: &[Check]) -> Result<Vec<Answer>, AppError> {
        let keys: Vec<CacheKey> = checks
            .iter()
            .map(|check| CacheKey::new(&check.question))
            .collect();
        let mut answers: Vec<Option<Answer>> = vec![None; checks.len()];
        let mut stale: Vec<Option<Arc<CacheEntry>>> = vec![None; checks.len()];
        if self.l1_enabled {
            let connected = self.invalidation.is_connected();
            let now = now();
            for (index, (key, check)) in keys.iter().zip(checks).enumerate() {
                let Some(cached) = self.l1.get(key).await else {
                    continue;
                };
                if connected && self.usable(&cached.entry, now, check.min_revision) {
                    answers[index] = Some(Answer {
                        entry: Arc::clone(&cached.entry),
                        source: Source::L1,
                    });
                } else {
                    stale[index] = Some(Arc::clone(&cached.entry));
                }
            }
        }
        let misses: Vec<usize> = (0..checks.len())
            .filter(|index| answers[*index].is_none())
            .collect();
        if !misses.is_empty() {
            let missed = |index: &usize| checks[*index];
            let asked: Vec<Check> = misses.iter().map(missed).collect();
            let asked_keys: Vec<CacheKey> = misses.iter().map(|i| keys[*i].clone()).collect();
            let asked_stale: Vec<_> = misses.iter().map(|i| stale[*i].take()).collect();
            let found = self.behind_l1(&asked, &asked_keys, &asked_stale).await?;
            for (index, answer) in misses.into_iter().zip(found) {
                if answer.source != Source::L1 {
                    self.l1_put(&keys[index], &answer.entry, answer.source)
                        .await;
                }
                answers[index] = Some(answer);
            }
        }
        answers
            .into_iter()
            .map(|answer| answer.ok_or_else(unanswered))
            .collect()
    }

    /// Everything behind L1, for `checks` that L1 did not answer (`keys` theirs, `stale` the
    /// L1 entry each had, if any, for the fallback): Redis (while the listener is connected),
    /// then the facts; when Postgres cannot answer, [`Self::fallback`] for each, and 503 when
    /// any has none. Writes what it computed to Redis; L1 is the caller's.
    async fn behind_l1(
        &self,
        checks: &[Check],
        keys: &[CacheKey],
        stale: &[Option<Arc<CacheEntry>>],
    ) -> Result<Vec<Answer>, AppError> {
        let now = now();
        let mut answers: Vec<Option<Answer>> = vec![None; checks.len()];
        if self.invalidation.is_connected() {
            for (index, entry) in self.l2_get_many(keys, now, checks).await {
                answers[index] = Some(Answer {
                    entry: Arc::new(entry),
                    source: Source::L2,
                });
            }
        }
        let misses: Vec<usize> = (0..checks.len())
            .filter(|index| answers[*index].is_none())
            .collect();
        if !misses.is_empty() {
            let asked: Vec<Question> = misses.iter().map(|i| checks[*i].question).collect();
            let min_revision = misses.iter().filter_map(|i| checks[*i].min_revision).max();
            match self.compute(&asked, min_revision).await {
                Ok(entries) => {
                    let mut writes = Vec::with_capacity(entries.len());
                    for (index, (entry, source)) in misses.into_iter().zip(entries) {
                        writes.push((keys[index].as_str().to_owned(), Arc::clone(&entry)));
                        answers[index] = Some(Answer { entry, source });
                    }
                    self.l2_put(writes);
                }
                Err(error) => {
                    for index in misses {
                        let check = &checks[index];
                        let fallback = self
                            .fallback(stale[index].as_ref(), &keys[index], now, check.min_revision)
                            .await;
                        answers[index] =
                            Some(fallback.ok_or_else(|| AppError::Unavailable(error.to_string()))?);
                    }
                }
            }
        }
        answers
            .into_iter()
            .map(|answer| answer.ok_or_else(unanswered))
            .collect()
    }

    /// The answer a cache may give when Postgres could not: the check's L1 entry (`stale`),
    /// else its Redis entry, when `AUTHZ_SERVE_STALE_ON_ERROR` allows it and it is servable.
    async fn fallback(
        &self,
        stale: Option<&Arc<CacheEntry>>,
        key: &CacheKey,
        now: Timestamp,
        min_revision: Option<u64>,
    ) -> Option<Answer> {
        if let Some(entry) = stale.filter(|entry| self.usable_on_error(entry, now, min_revision)) {
            return Some(Answer {
                entry: Arc::clone(entry),
                source: Source::L1,
            });
        }
        let text = self.l2.as_ref()?.get(key.as_str()).await?;
        CacheEntry::decode(&text)
            .ok()
            .filter(|entry| self.usable_on_error(entry, now, min_revision))
            .map(|entry| Answer {
                entry: Arc::new(entry),
                source: Source::L2,
            })
    }

    async fn l1_put(&self, key: &CacheKey, entry: &Arc<CacheEntry>, source: Source) {
        if !self.l1_enabled {
            return;
        }
        self.l1
            .insert(key.clone(), Cached::new(Arc::clone(entry), source))
            .await;
    }

    /// The servable Redis entries of `keys` (one `GET`, or one `MGET` for several), by index.
    async fn l2_get_many(
        &self,
        keys: &[CacheKey],
        now: Timestamp,
        checks: &[Check],
    ) -> Vec<(usize, CacheEntry)> {
        let Some(l2) = &self.l2 else {
            return Vec::new();
        };
        let values = match keys {
            [key] => vec![l2.get(key.as_str()).await],
            _ => {
                let names: Vec<String> = keys.iter().map(|key| key.as_str().to_owned()).collect();
                l2.mget(&names).await
            }
        };
        values
            .into_iter()
            .enumerate()
            .filter_map(|(index, value)| {
                let entry = CacheEntry::decode(&value?).ok()?;
                let min_revision = checks.get(index)?.min_revision;
                self.usable(&entry, now, min_revision)
                    .then_some((index, entry))
            })
            .collect()
    }

    /// Writes entries to Redis in the background: the answer never waits on it.
    fn l2_put(&self, entries: Vec<(String, Arc<CacheEntry>)>) {
        let Some(l2) = self.l2.clone() else {
            return;
        };
        let now = now();
        let items: Vec<_> = entries
            .into_iter()
            .map(|(key, entry)| (key, entry.encode(), entry.ttl_ms_at(now)))
            .collect();
        tokio::spawn(async move { l2.set_many(items).await });
    }
}

/// How many times [`Decider::decide_batch`] asks again for answers that ended meanwhile.
pub const BATCH_ROUNDS: usize = 3;

/// Whether `answer` may no longer be sent at `at`: a cached one at or past its end, or a grant
/// at or past the share expiry it rests on (a fresh computation's entry ends no earlier).
fn ended(answer: &Answer, at: Timestamp) -> bool {
    let decision = &answer.entry.decision;
    (answer.source != Source::Db && at >= answer.entry.expires_at)
        || (decision.granted && decision.valid_until.is_some_and(|until| at >= until))
}

/// The error of a check left without an answer (the tiers answer every check they are given).
fn unanswered() -> AppError {
    AppError::Unavailable("unanswered check".to_owned())
}
