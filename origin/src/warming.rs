//! Cache warming: `cache_warming_patterns` name which questions are hot (owners reading what
//! they just made, anonymous reads of public work, sharees downloading, members reading their
//! teams' projects and teams); a background job turns each enabled pattern into concrete
//! questions from the data, most important pattern first, and answers them through the decider
//! in batches, which fills L1 and Redis exactly as real traffic would. Runs once the change
//! listener is connected (entries computed before would be stale at once), then periodically.

use std::sync::Arc;
use std::time::{Duration, Instant};

use authz_core::wire::Check;
use authz_core::{
    GenerationId, Operation, Principal, ProjectId, Question, Resource, ResourceType, TeamId, UserId,
};
use uuid::Uuid;

use crate::db::{Pools, Workload};
use crate::decision::Decider;
use crate::invalidation::Invalidation;

/// One row of `cache_warming_patterns`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    /// `pattern_name`.
    pub name: String,
    /// `resource_type`.
    pub resource_type: ResourceType,
    /// `operation`.
    pub operation: Operation,
    /// `max_items`.
    pub max_items: i64,
    /// `lookback`, in seconds.
    pub lookback_seconds: f64,
}

/// What one warming pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct WarmReport {
    /// Enabled patterns.
    pub patterns: usize,
    /// Questions answered (and so cached).
    pub questions: usize,
    /// Milliseconds taken.
    pub elapsed_ms: u64,
}

/// The candidate `(user_id, resource_id)` pairs of a pattern: `$1` the lookback in seconds,
/// `$2` the limit. Known pattern names have their own query; any other falls back to the
/// owners (or members, for teams) of recently created resources of its type.
fn candidates_sql(pattern: &Pattern) -> &'static str {
    match (pattern.name.as_str(), pattern.resource_type) {
        ("public_completed_generations", _) => {
            "SELECT NULL::uuid, g.id FROM generations g JOIN projects p ON p.id = g.project_id \
             WHERE p.visibility = 'public' AND g.status = 'completed' \
               AND g.created_at >= now() - make_interval(secs => $1) \
             ORDER BY g.created_at DESC LIMIT $2"
        }
        ("shared_generations_download", _) => {
            "SELECT s.shared_with_user_id, s.generation_id FROM generation_shares s \
             WHERE s.is_active AND (s.expires_at IS NULL OR s.expires_at > now()) \
               AND s.created_at >= now() - make_interval(secs => $1) \
             ORDER BY s.created_at DESC LIMIT $2"
        }
        ("team_projects_read", _) => {
            "SELECT m.user_id, pt.project_id FROM project_teams pt \
             JOIN projects p ON p.id = pt.project_id AND p.visibility <> 'private' \
             JOIN teams t ON t.id = pt.team_id AND t.is_active \
             JOIN team_members m ON m.team_id = pt.team_id AND m.is_active \
             WHERE pt.created_at >= now() - make_interval(secs => $1) \
             ORDER BY pt.created_at DESC LIMIT $2"
        }
        (_, ResourceType::Generation) => {
            "SELECT g.user_id, g.id FROM generations g \
             WHERE g.created_at >= now() - make_interval(secs => $1) \
             ORDER BY g.created_at DESC LIMIT $2"
        }
        (_, ResourceType::Project) => {
            "SELECT p.user_id, p.id FROM projects p \
             WHERE p.created_at >= now() - make_interval(secs => $1) \
             ORDER BY p.created_at DESC LIMIT $2"
        }
        (_, ResourceType::Team) => {
            "SELECT m.user_id, m.team_id FROM team_members m JOIN teams t ON t.id = m.team_id \
             WHERE m.is_active AND t.is_active AND m.created_at >= now() - make_interval(secs => $1) \
             ORDER BY m.created_at DESC LIMIT $2"
        }
    }
}

fn question(pattern: &Pattern, user: Option<Uuid>, resource: Uuid) -> Option<Question> {
    let principal = match user {
        None => Principal::Anonymous,
        Some(user) => Principal::User(UserId::from_uuid(user)?),
    };
    let resource = match pattern.resource_type {
        ResourceType::Generation => Resource::Generation(GenerationId::from_uuid(resource)?),
        ResourceType::Project => Resource::Project(ProjectId::from_uuid(resource)?),
        ResourceType::Team => Resource::Team(TeamId::from_uuid(resource)?),
    };
    Some(Question {
        principal,
        resource,
        operation: pattern.operation,
    })
}

/// The enabled patterns, most important first.
pub async fn patterns(pools: &Pools) -> Result<Vec<Pattern>, String> {
    let client = pools
        .pool(Workload::Read)
        .get()
        .await
        .map_err(|error| error.to_string())?;
    let rows = client
        .query(
            "SELECT pattern_name, resource_type, operation, max_items::bigint, \
                    extract(epoch FROM lookback)::float8 \
               FROM cache_warming_patterns WHERE enabled ORDER BY priority, id",
            &[],
        )
        .await
        .map_err(|error| error.to_string())?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            Some(Pattern {
                name: row.get(0),
                resource_type: ResourceType::parse(row.get(1), "resource_type").ok()?,
                operation: Operation::parse(row.get(2), "operation").ok()?,
                max_items: row.get(3),
                lookback_seconds: row.get(4),
            })
        })
        .collect())
}

/// One warming pass over every enabled pattern.
pub async fn warm_once(decider: &Decider, pools: &Pools) -> Result<WarmReport, String> {
    let started = Instant::now();
    let patterns = patterns(pools).await?;
    let mut questions = Vec::new();
    {
        let client = pools
            .pool(Workload::Read)
            .get()
            .await
            .map_err(|error| error.to_string())?;
        for pattern in &patterns {
            let rows = client
                .query(
                    candidates_sql(pattern),
                    &[&pattern.lookback_seconds, &pattern.max_items],
                )
                .await
                .map_err(|error| format!("pattern {}: {error}", pattern.name))?;
            questions.extend(
                rows.iter()
                    .filter_map(|row| question(pattern, row.get(0), row.get(1))),
            );
        }
    }
    questions.dedup();
    let mut answered = 0;
    for chunk in questions.chunks(authz_core::wire::MAX_BATCH_CHECKS) {
        let checks: Vec<Check> = chunk
            .iter()
            .map(|question| Check {
                question: *question,
                min_revision: None,
            })
            .collect();
        if decider.decide_batch(&checks).await.is_ok() {
            answered += chunk.len();
        }
    }
    metrics::counter!("authz_cache_warmed_total").increment(answered as u64);
    Ok(WarmReport {
        patterns: patterns.len(),
        questions: answered,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// Warms once the listener is connected, then every `interval` (0: never).
pub async fn run_forever(
    decider: Arc<Decider>,
    invalidation: Arc<Invalidation>,
    interval: Duration,
    last: Arc<std::sync::Mutex<Option<WarmReport>>>,
) {
    if interval.is_zero() {
        return;
    }
    loop {
        while !invalidation.is_connected() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        match warm_once(&decider, decider.pools()).await {
            Ok(report) => {
                tracing::info!(?report, "cache warmed");
                if let Ok(mut slot) = last.lock() {
                    *slot = Some(report);
                }
            }
            Err(error) => tracing::warn!(%error, "cache warming failed"),
        }
        tokio::time::sleep(interval).await;
    }
}
