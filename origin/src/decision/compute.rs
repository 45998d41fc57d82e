//! The decider's last tier: a question's facts from its pieces (cached in Redis when fresh,
//! else read from Postgres in one statement, from the replica when it proves fresh enough),
//! then the core's `decide`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use authz_core::cache::CacheEntry;
use authz_core::pieces::{compose, resource_dependencies};
use authz_core::wire::Source;
use authz_core::{Question, Resource, UserId, decide};

use super::Decider;
use crate::cache::pieces::KnownPieces;
use crate::clock::now;
use crate::db::Workload;
use crate::db::facts::{self, FactsError, Freshness, Pieces};

impl Decider {
    /// Decides `questions` from their facts: pieces cached in Redis when fresh, the rest read
    /// from Postgres in one statement. A replica answers only when its revision satisfies
    /// `min_revision` and no change known to this process is newer than what it read;
    /// otherwise the primary does. Each entry says whether Postgres was needed.
    pub(super) async fn compute(
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
        // A question with a piece to read has all its pieces read, in one snapshot: a decision
        // is labelled with the oldest revision of its pieces, and an entry labelled older than a
        // change to its resource that it already reflects would be judged stale at once and
        // never cached. (One question's statement reads both rows in one plan either way.)
        let mut read_users = std::collections::BTreeSet::new();
        let mut read_resources = std::collections::BTreeSet::new();
        for question in questions {
            let user = question.principal.user_id();
            let user_missing = user.is_some_and(|user| !known.users.contains_key(&user));
            if user_missing || !known.resources.contains_key(&question.resource) {
                read_users.extend(user);
                read_resources.insert(question.resource);
            }
        }
        let mut read_now = std::collections::HashSet::new();
        if !read_resources.is_empty() {
            let read_users: Vec<UserId> = read_users.into_iter().collect();
            let read_resources: Vec<Resource> = read_resources.into_iter().collect();
            let loaded = self
                .load_pieces(&read_users, &read_resources, min_revision)
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

    /// Reads pieces from the replica when it proves fresh enough, else from the primary; a
    /// primary below `min_revision` is an error, never an answer.
    async fn load_pieces(
        &self,
        users: &[UserId],
        resources: &[Resource],
        min_revision: Option<u64>,
    ) -> Result<Pieces, FactsError> {
        // Without the listener no round numbers new changes, and the pieces move only with the
        // rounds (V11): the primary runs one before reading, and the replica, which cannot, is
        // not asked.
        let connected = self.invalidation.is_connected();
        if self.pools.has_replica() && !connected {
            self.replica.skipped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("authz_replica_reads_total", "result" => "skipped").increment(1);
        }
        if self.pools.has_replica() && connected {
            self.facts_queries.fetch_add(1, Ordering::Relaxed);
            let pool = self.pools.named(Workload::AuthorizationReplica);
            match facts::load(pool, users, resources, Freshness::LastRound).await {
                Ok(pieces) => {
                    let revision = pieces.revision;
                    // Checked after the read: a notice that arrived while it ran counts, and
                    // so does a listener lost meanwhile.
                    let fresh = self.invalidation.is_connected()
                        && min_revision.is_none_or(|min| revision >= min)
                        && pieces.users.keys().all(|user| {
                            self.invalidation.is_fresh_at(revision, &[*user.as_uuid()])
                        })
                        && pieces.resources.iter().all(|(resource, piece)| {
                            self.invalidation.is_fresh_at(
                                revision,
                                &resource_dependencies(resource, piece.as_ref()),
                            )
                        });
                    if fresh {
                        self.replica.used.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("authz_replica_reads_total", "result" => "used")
                            .increment(1);
                        return Ok(pieces);
                    }
                    self.replica.stale.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("authz_replica_stale_total").increment(1);
                    metrics::counter!("authz_replica_reads_total", "result" => "stale")
                        .increment(1);
                }
                Err(error) => {
                    tracing::debug!(%error, "the replica's read failed: the primary answers");
                    self.replica.failed.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("authz_replica_reads_total", "result" => "failed")
                        .increment(1);
                }
            }
        }
        self.facts_queries.fetch_add(1, Ordering::Relaxed);
        let freshness = if connected {
            Freshness::LastRound
        } else {
            Freshness::RoundFirst
        };
        let pieces = facts::load(
            self.pools.named(Workload::AuthorizationPrimary),
            users,
            resources,
            freshness,
        )
        .await?;
        match min_revision {
            Some(asked) if pieces.revision < asked => {
                metrics::counter!("authz_below_min_revision_total").increment(1);
                Err(FactsError::BelowMinRevision {
                    asked,
                    have: pieces.revision,
                })
            }
            _ => Ok(pieces),
        }
    }
}
