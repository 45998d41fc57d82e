//! The decider: answers questions from L1 (moka, in process), then Redis, then Postgres, and
//! writes what it computed back to both caches.
//!
//! A cached entry is served only when the core says it is servable (logical expiry,
//! `min_revision`) and the invalidation oracle says no change it depends on is newer. While
//! the change listener is disconnected nothing is known about changes, so caches are bypassed
//! and Postgres answers; if Postgres fails too, an entry still within its TTL may answer as
//! `AUTHZ_SERVE_STALE_ON_ERROR` allows (API.md: cached answers go on while Postgres is down;
//! see `config::StaleOnError` for the bound that implies), else the answer is 503. Concurrent misses
//! for one key coalesce into one Postgres query (moka's per-key compute).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use authz_core::cache::{CacheEntry, CacheKey, TtlPolicy, servable};
use authz_core::pieces::{compose, resource_dependencies};
use authz_core::wire::{Check, Source};
use authz_core::{Question, Resource, Timestamp, UserId, decide};
use moka::Expiry;
use moka::future::Cache;
use moka::ops::compute::{CompResult, Op};

use crate::cache::pieces::KnownPieces;
use crate::cache::{PieceCache, RedisTier};
use crate::config::StaleOnError;
use crate::db::facts::{self, FactsError, Pieces};
use crate::db::{Pools, Workload};
use crate::error::AppError;
use crate::invalidation::Invalidation;

/// The current instant from the system clock, in the core's representation.
pub fn now() -> Timestamp {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX)
        });
    Timestamp::from_micros(micros)
}

/// An L1 value: the entry, the tier it was first obtained from, and whether a refresh-ahead
/// of it was already queued (at most one per entry).
#[derive(Debug)]
pub struct Cached {
    entry: Arc<CacheEntry>,
    source: Source,
    refreshing: AtomicBool,
}

impl Cached {
    fn new(entry: Arc<CacheEntry>, source: Source) -> Arc<Self> {
        Arc::new(Self {
            entry,
            source,
            refreshing: AtomicBool::new(false),
        })
    }
}

/// Questions whose L1 entry is about to expire, for the refresh-ahead task.
pub type RefreshQueue = tokio::sync::mpsc::Receiver<Question>;

/// Refresh-ahead requests waiting at most; beyond, entries simply expire.
const REFRESH_QUEUE: usize = 4_096;
/// Refreshes running at once: they share the decision pool with misses.
const REFRESH_CONCURRENCY: usize = 2;

/// L1 entries leave moka at their logical expiry (freshness is still checked on every read).
struct EntryExpiry;

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
            l1_enabled: l1_capacity > 0,
            stale_on_error: StaleOnError::All,
            refresh_percent: 0,
            refresh_queue: None,
        }
    }

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
    fn refresh_if_due(&self, question: &Question, cached: &Cached, now: Timestamp) {
        let Some(queue) = &self.refresh_queue else {
            return;
        };
        let entry = &cached.entry;
        let lifetime = entry.expires_at.as_micros() - entry.computed_at.as_micros();
        let left = entry.expires_at.as_micros() - now.as_micros();
        let due = i128::from(left) * 100 <= i128::from(lifetime) * i128::from(self.refresh_percent);
        if !due || cached.refreshing.swap(true, Ordering::Relaxed) {
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
    pub async fn cached(&self, question: &Question, min_revision: Option<u64>) -> Option<Answer> {
        if !self.l1_enabled || !self.invalidation.is_connected() {
            return None;
        }
        let cached = self.l1.get(&CacheKey::new(question)).await?;
        let now = now();
        if !self.usable(&cached.entry, now, min_revision) {
            return None;
        }
        self.refresh_if_due(question, &cached, now);
        Some(Answer {
            entry: Arc::clone(&cached.entry),
            source: Source::L1,
        })
    }

    /// Answers one question.
    pub async fn decide(
        &self,
        question: Question,
        min_revision: Option<u64>,
    ) -> Result<Answer, AppError> {
        let key = CacheKey::new(&question);
        let connected = self.invalidation.is_connected();
        if !self.l1_enabled {
            return self
                .decide_without_l1(&key, question, min_revision, connected)
                .await;
        }
        if let Some(answer) = self.cached(&question, min_revision).await {
            return Ok(answer);
        }
        let l2_key = key.as_str().to_owned();
        let outcome = self
            .l1
            .entry(key)
            .and_try_compute_with(|existing| async move {
                let now = now();
                if connected {
                    if let Some(existing) = &existing
                        && self.usable(&existing.value().entry, now, min_revision)
                    {
                        return Ok(Op::Nop);
                    }
                    if let Some(entry) = self.l2_get(&l2_key, now, min_revision).await {
                        return Ok(Op::Put(Cached::new(Arc::new(entry), Source::L2)));
                    }
                }
                match self.compute(&[question], min_revision).await {
                    Ok(mut entries) => {
                        let (entry, source) = entries.pop().ok_or(FactsError::Count {
                            expected: 1,
                            got: 0,
                        })?;
                        self.l2_put(vec![(l2_key.clone(), Arc::clone(&entry))]);
                        Ok(Op::Put(Cached::new(entry, source)))
                    }
                    Err(error) => {
                        // Postgres cannot answer: a cached entry may, within its TTL.
                        let fallback = existing
                            .map(|existing| Arc::clone(&existing.value().entry))
                            .filter(|entry| self.usable_on_error(entry, now, min_revision));
                        match fallback {
                            Some(entry) => Ok(Op::Put(Cached::new(entry, Source::L1))),
                            None => match self
                                .l2_get(&l2_key, now, min_revision)
                                .await
                                .filter(|entry| self.usable_on_error(entry, now, min_revision))
                            {
                                Some(entry) => {
                                    Ok(Op::Put(Cached::new(Arc::new(entry), Source::L2)))
                                }
                                None => Err(error),
                            },
                        }
                    }
                }
            })
            .await
            .map_err(|error| AppError::Unavailable(error.to_string()))?;
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

    /// The path without L1 (and so without coalescing): Redis, then Postgres.
    async fn decide_without_l1(
        &self,
        key: &CacheKey,
        question: Question,
        min_revision: Option<u64>,
        connected: bool,
    ) -> Result<Answer, AppError> {
        let now = now();
        if connected && let Some(entry) = self.l2_get(key.as_str(), now, min_revision).await {
            return Ok(Answer {
                entry: Arc::new(entry),
                source: Source::L2,
            });
        }
        match self.compute(&[question], min_revision).await {
            Ok(mut entries) => {
                let (entry, source) = entries
                    .pop()
                    .ok_or_else(|| AppError::Unavailable("no facts row".to_owned()))?;
                self.l2_put(vec![(key.as_str().to_owned(), Arc::clone(&entry))]);
                Ok(Answer { entry, source })
            }
            Err(error) => match self
                .l2_get(key.as_str(), now, min_revision)
                .await
                .filter(|entry| self.usable_on_error(entry, now, min_revision))
            {
                Some(entry) => Ok(Answer {
                    entry: Arc::new(entry),
                    source: Source::L2,
                }),
                None => Err(AppError::Unavailable(error.to_string())),
            },
        }
    }

    /// Answers questions in order: L1, then one Redis `MGET` for the misses, then one Postgres
    /// statement for what is left.
    pub async fn decide_batch(&self, questions: &[Check]) -> Result<Vec<Answer>, AppError> {
        let connected = self.invalidation.is_connected();
        let keys: Vec<CacheKey> = questions
            .iter()
            .map(|check| CacheKey::new(&check.question))
            .collect();
        let mut answers: Vec<Option<Answer>> = vec![None; questions.len()];
        let now = now();
        if connected {
            for (index, key) in keys.iter().enumerate() {
                if let Some(cached) = self.l1.get(key).await
                    && self.usable(&cached.entry, now, questions[index].min_revision)
                {
                    answers[index] = Some(Answer {
                        entry: Arc::clone(&cached.entry),
                        source: Source::L1,
                    });
                }
            }
            if let Some(l2) = &self.l2 {
                let misses: Vec<usize> = (0..questions.len())
                    .filter(|i| answers[*i].is_none())
                    .collect();
                let names: Vec<String> = misses
                    .iter()
                    .map(|i| keys[*i].as_str().to_owned())
                    .collect();
                for (index, value) in misses.into_iter().zip(l2.mget(&names).await) {
                    if let Some(entry) = value.and_then(|text| CacheEntry::decode(&text).ok())
                        && self.usable(&entry, now, questions[index].min_revision)
                    {
                        let entry = Arc::new(entry);
                        self.l1_put(&keys[index], &entry, Source::L2).await;
                        answers[index] = Some(Answer {
                            entry,
                            source: Source::L2,
                        });
                    }
                }
            }
        }
        let misses: Vec<usize> = (0..questions.len())
            .filter(|i| answers[*i].is_none())
            .collect();
        if !misses.is_empty() {
            let asked: Vec<Question> = misses.iter().map(|i| questions[*i].question).collect();
            let min_revision = misses
                .iter()
                .filter_map(|i| questions[*i].min_revision)
                .max();
            match self.compute(&asked, min_revision).await {
                Ok(entries) => {
                    let mut writes = Vec::with_capacity(entries.len());
                    for (index, (entry, source)) in misses.into_iter().zip(entries) {
                        self.l1_put(&keys[index], &entry, source).await;
                        writes.push((keys[index].as_str().to_owned(), Arc::clone(&entry)));
                        answers[index] = Some(Answer { entry, source });
                    }
                    self.l2_put(writes);
                }
                Err(error) => {
                    // Postgres cannot answer: L1 entries within their TTL may.
                    for index in misses {
                        match self.l1.get(&keys[index]).await {
                            Some(cached)
                                if self.usable_on_error(
                                    &cached.entry,
                                    now,
                                    questions[index].min_revision,
                                ) =>
                            {
                                answers[index] = Some(Answer {
                                    entry: Arc::clone(&cached.entry),
                                    source: Source::L1,
                                });
                            }
                            _ => return Err(AppError::Unavailable(error.to_string())),
                        }
                    }
                }
            }
        }
        answers
            .into_iter()
            .map(|answer| {
                answer.ok_or_else(|| AppError::Unavailable("unanswered check".to_owned()))
            })
            .collect()
    }

    async fn l1_put(&self, key: &CacheKey, entry: &Arc<CacheEntry>, source: Source) {
        if !self.l1_enabled {
            return;
        }
        self.l1
            .insert(key.clone(), Cached::new(Arc::clone(entry), source))
            .await;
    }

    async fn l2_get(
        &self,
        key: &str,
        now: Timestamp,
        min_revision: Option<u64>,
    ) -> Option<CacheEntry> {
        let text = self.l2.as_ref()?.get(key).await?;
        CacheEntry::decode(&text)
            .ok()
            .filter(|entry| self.usable(entry, now, min_revision))
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

    /// Decides `questions` from their facts: pieces cached in Redis when fresh, the rest read
    /// from Postgres in one statement. A replica answers only when its revision satisfies
    /// `min_revision` and no change known to this process is newer than what it read;
    /// otherwise the primary does. Each entry says whether Postgres was needed.
    async fn compute(
        &self,
        questions: &[Question],
        min_revision: Option<u64>,
    ) -> Result<Vec<(Arc<CacheEntry>, Source)>, FactsError> {
        let mut users: Vec<UserId> = questions
            .iter()
            .filter_map(|q| q.principal.user_id())
            .collect();
        users.sort_unstable();
        users.dedup();
        let mut resources: Vec<Resource> = questions.iter().map(|q| q.resource).collect();
        resources.sort_unstable();
        resources.dedup();

        let mut known = if self.invalidation.is_connected() {
            self.pieces.get(&users, &resources, min_revision).await
        } else {
            KnownPieces::default()
        };
        let missing_users: Vec<UserId> = users
            .iter()
            .copied()
            .filter(|user| !known.users.contains_key(user))
            .collect();
        let missing_resources: Vec<Resource> = resources
            .iter()
            .copied()
            .filter(|resource| !known.resources.contains_key(resource))
            .collect();
        let mut read_now = std::collections::HashSet::new();
        if !missing_users.is_empty() || !missing_resources.is_empty() {
            let loaded = self
                .load_pieces(&missing_users, &missing_resources, min_revision)
                .await?;
            self.pieces.put(&loaded);
            for (user, piece) in loaded.users {
                read_now.insert(*user.as_uuid());
                known.users.insert(user, (loaded.revision, piece));
            }
            for (resource, piece) in loaded.resources {
                read_now.insert(resource.id());
                known.resources.insert(resource, (loaded.revision, piece));
            }
        }

        let now = now();
        Ok(questions
            .iter()
            .map(|question| {
                let user = question
                    .principal
                    .user_id()
                    .and_then(|user| known.users.get(&user));
                let resource = known.resources.get(&question.resource);
                let revision = [user.map(|(r, _)| *r), resource.map(|(r, _)| *r)]
                    .into_iter()
                    .flatten()
                    .min()
                    .unwrap_or(0);
                let facts = compose(
                    question,
                    revision,
                    user.and_then(|(_, piece)| piece.as_ref()),
                    resource.and_then(|(_, piece)| piece.as_ref()),
                );
                let decision = decide(question, &facts, now);
                let entry = CacheEntry::new(decision, now, &self.ttl, facts.dependencies(question));
                let from_db = question
                    .principal
                    .user_id()
                    .is_some_and(|u| read_now.contains(u.as_uuid()))
                    || read_now.contains(&question.resource.id());
                (
                    Arc::new(entry),
                    if from_db { Source::Db } else { Source::L2 },
                )
            })
            .collect())
    }

    /// Reads pieces from the replica when it proves fresh enough, else from the primary.
    async fn load_pieces(
        &self,
        users: &[UserId],
        resources: &[Resource],
        min_revision: Option<u64>,
    ) -> Result<Pieces, FactsError> {
        if self.pools.has_replica() {
            self.facts_queries.fetch_add(1, Ordering::Relaxed);
            let pool = self.pools.named(Workload::AuthorizationReplica);
            if let Ok(pieces) = facts::load(pool, users, resources).await {
                let revision = pieces.revision;
                let fresh = min_revision.is_none_or(|min| revision >= min)
                    && pieces
                        .users
                        .keys()
                        .all(|user| self.invalidation.is_fresh_at(revision, &[*user.as_uuid()]))
                    && pieces.resources.iter().all(|(resource, piece)| {
                        self.invalidation
                            .is_fresh_at(revision, &resource_dependencies(resource, piece.as_ref()))
                    });
                if fresh {
                    return Ok(pieces);
                }
                metrics::counter!("authz_replica_stale_total").increment(1);
            }
        }
        self.facts_queries.fetch_add(1, Ordering::Relaxed);
        facts::load(
            self.pools.named(Workload::AuthorizationPrimary),
            users,
            resources,
        )
        .await
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
