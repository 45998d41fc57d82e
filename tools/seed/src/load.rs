//! The load: one transaction that empties the seven tables and streams the plan into them
//! with `COPY` (triggers skipped when the session may, else on), bumps the revision, commits,
//! then `ANALYZE`s. Generations and shares are drawn while they stream.

use anyhow::{Context as _, Result};
use authz_core::Role;
use indicatif::ProgressBar;
use rand::Rng as _;
use rand::rngs::SmallRng;
use tokio_postgres::{Client, Transaction};

use crate::SeedReport;
use crate::copy::CopyWriter;
use crate::plan::{
    ADJECTIVES, PROJECT_NOUNS, Plan, SharedGeneration, Sizes, TEAM_NOUNS, per_mille, random_uuid,
};

/// The seven decision tables, in an order that `TRUNCATE` and `ANALYZE` accept.
pub(crate) const TABLES: &str =
    "users, teams, team_members, projects, project_teams, generations, generation_shares";

/// The load (skipping triggers, or with them when that is not allowed), then `ANALYZE`.
pub(crate) async fn load_and_analyze(
    client: &mut Client,
    plan: &Plan,
    sizes: &Sizes,
    rng: SmallRng,
    progress: &ProgressBar,
) -> Result<SeedReport> {
    let report = match load(client, plan, sizes, rng.clone(), progress, true).await? {
        Some(report) => report,
        None => {
            progress.reset();
            load(client, plan, sizes, rng, progress, false)
                .await?
                .context("the load with triggers on did not run")?
        }
    };
    progress.set_message("analyze");
    // The load committed unnumbered: number it now, so the revision has moved when this returns
    // (migrations/README.md, V11), whether or not an origin is running.
    client
        .batch_execute("SELECT authz_current_revision()")
        .await
        .context("numbering the load (authz_current_revision)")?;
    client
        .batch_execute(&format!("ANALYZE {TABLES}"))
        .await
        .context("analyzing the seeded tables")?;
    Ok(report)
}

/// One attempt at the load. With `skip_triggers`, returns `Ok(None)` (after rolling back) when
/// the session may not set `session_replication_role`, so the caller can retry with triggers.
async fn load(
    client: &mut Client,
    plan: &Plan,
    sizes: &Sizes,
    mut rng: SmallRng,
    progress: &ProgressBar,
    skip_triggers: bool,
) -> Result<Option<SeedReport>> {
    let tx = client
        .transaction()
        .await
        .context("starting the seeding transaction")?;
    if skip_triggers
        && let Err(error) = tx
            .batch_execute("SET LOCAL session_replication_role = replica")
            .await
    {
        let reason = error
            .as_db_error()
            .map_or_else(|| error.to_string(), |db| db.message().to_owned());
        tracing::warn!(
            error = %reason,
            "cannot skip triggers (session_replication_role needs superuser); \
             seeding with triggers on, which is slower"
        );
        tx.rollback()
            .await
            .context("rolling back after the failed SET session_replication_role")?;
        return Ok(None);
    }
    tx.batch_execute("SET LOCAL statement_timeout = 0")
        .await
        .context("lifting statement_timeout for the load")?;
    let now: i64 = tx
        .query_one("SELECT floor(extract(epoch FROM now()))::bigint", &[])
        .await
        .context("reading the server clock")?
        .try_get(0)
        .context("reading the server clock")?;

    progress.set_message("truncate");
    tx.batch_execute(&format!("TRUNCATE {TABLES} CASCADE"))
        .await
        .context("emptying the decision tables")?;

    let users = copy_users(&tx, plan, progress).await?;
    let teams = copy_teams(&tx, plan, progress).await?;
    // With triggers on, the teams trigger has already inserted each owner's membership.
    let team_members = copy_team_members(&tx, plan, progress, !skip_triggers).await?;
    let projects = copy_projects(&tx, plan, progress).await?;
    let project_teams = copy_project_teams(&tx, plan, progress).await?;
    let (generations, shared) = copy_generations(&tx, plan, sizes, &mut rng, progress).await?;
    let share_rows: u64 = shared
        .iter()
        .map(|shared| u64::from(shared.recipients))
        .sum();
    progress.set_length(progress.position() + share_rows);
    let generation_shares =
        copy_generation_shares(&tx, plan, &shared, &mut rng, now, progress).await?;

    if skip_triggers {
        // No trigger recorded the change: record "everything changed" in the same transaction;
        // the round that numbers it (after commit, below) rebuilds the pieces.
        tx.batch_execute("SELECT authz_bump_all()")
            .await
            .context("bumping the revision (authz_bump_all)")?;
    }
    progress.set_message("commit");
    tx.commit().await.context("committing the seeded dataset")?;

    Ok(Some(SeedReport {
        users,
        teams,
        team_members,
        projects,
        project_teams,
        generations,
        generation_shares,
        elapsed_ms: 0,
    }))
}

async fn copy_users(tx: &Transaction<'_>, plan: &Plan, progress: &ProgressBar) -> Result<u64> {
    let mut copy = CopyWriter::start(tx, "users", "id, email, is_active", progress).await?;
    for (index, (id, active)) in plan.user_ids.iter().zip(&plan.user_active).enumerate() {
        copy.uuid(id);
        copy.separator();
        copy.raw("u");
        copy.number(index as u64);
        copy.raw("@seed.example");
        copy.separator();
        copy.boolean(*active);
        copy.end_row().await?;
    }
    copy.finish().await
}

async fn copy_teams(tx: &Transaction<'_>, plan: &Plan, progress: &ProgressBar) -> Result<u64> {
    let mut copy =
        CopyWriter::start(tx, "teams", "id, name, owner_id, is_active", progress).await?;
    for (index, team) in plan.teams.iter().enumerate() {
        copy.uuid(&team.id);
        copy.separator();
        copy.raw(ADJECTIVES[usize::from(team.adjective) % ADJECTIVES.len()]);
        copy.raw(" ");
        copy.raw(TEAM_NOUNS[usize::from(team.noun) % TEAM_NOUNS.len()]);
        copy.raw(" ");
        copy.number(index as u64 + 1);
        copy.separator();
        copy.uuid(&plan.user_ids[team.owner as usize]);
        copy.separator();
        copy.boolean(team.active);
        copy.end_row().await?;
    }
    copy.finish().await
}

/// Writes the memberships; with `skip_owners` the owners' rows (made by the teams trigger)
/// are left out but still counted.
async fn copy_team_members(
    tx: &Transaction<'_>,
    plan: &Plan,
    progress: &ProgressBar,
    skip_owners: bool,
) -> Result<u64> {
    let mut copy = CopyWriter::start(
        tx,
        "team_members",
        "id, team_id, user_id, role, is_active",
        progress,
    )
    .await?;
    let mut made_by_trigger = 0u64;
    for (index, team) in plan.teams.iter().enumerate() {
        for member in plan.members_of(index) {
            if skip_owners && matches!(member.role, Role::Owner) {
                made_by_trigger += 1;
                progress.inc(1);
                continue;
            }
            copy.uuid(&member.id);
            copy.separator();
            copy.uuid(&team.id);
            copy.separator();
            copy.uuid(&plan.user_ids[member.user as usize]);
            copy.separator();
            copy.raw(member.role.as_str());
            copy.separator();
            copy.boolean(member.active);
            copy.end_row().await?;
        }
    }
    Ok(copy.finish().await? + made_by_trigger)
}

async fn copy_projects(tx: &Transaction<'_>, plan: &Plan, progress: &ProgressBar) -> Result<u64> {
    let mut copy =
        CopyWriter::start(tx, "projects", "id, user_id, name, visibility", progress).await?;
    for (index, project) in plan.projects.iter().enumerate() {
        copy.uuid(&project.id);
        copy.separator();
        copy.uuid(&plan.user_ids[project.owner as usize]);
        copy.separator();
        copy.raw(ADJECTIVES[usize::from(project.adjective) % ADJECTIVES.len()]);
        copy.raw(" ");
        copy.raw(PROJECT_NOUNS[usize::from(project.noun) % PROJECT_NOUNS.len()]);
        copy.raw(" #");
        copy.number(index as u64 + 1);
        copy.separator();
        copy.raw(project.visibility.as_str());
        copy.end_row().await?;
    }
    copy.finish().await
}

async fn copy_project_teams(
    tx: &Transaction<'_>,
    plan: &Plan,
    progress: &ProgressBar,
) -> Result<u64> {
    let mut copy = CopyWriter::start(
        tx,
        "project_teams",
        "id, project_id, team_id, access_level",
        progress,
    )
    .await?;
    for (index, project) in plan.projects.iter().enumerate() {
        for link in plan.links_of(index) {
            copy.uuid(&link.id);
            copy.separator();
            copy.uuid(&project.id);
            copy.separator();
            copy.uuid(&plan.teams[link.team as usize].id);
            copy.separator();
            copy.raw(link.level.as_str());
            copy.end_row().await?;
        }
    }
    copy.finish().await
}

/// Streams the generations; returns their count and the ones chosen to be shared.
async fn copy_generations(
    tx: &Transaction<'_>,
    plan: &Plan,
    sizes: &Sizes,
    rng: &mut SmallRng,
    progress: &ProgressBar,
) -> Result<(u64, Vec<SharedGeneration>)> {
    let mut copy = CopyWriter::start(
        tx,
        "generations",
        "id, user_id, project_id, status",
        progress,
    )
    .await?;
    let mut shared = Vec::with_capacity(sizes.generations as usize / 18);
    for _ in 0..sizes.generations {
        let id = random_uuid(rng);
        let (owner, project) = if per_mille(rng, 100) {
            (rng.random_range(0..sizes.users), None)
        } else {
            let index = plan.weighted_project(rng);
            let project = &plan.projects[index];
            let links = plan.links_of(index);
            let mut owner = project.owner;
            if !links.is_empty() && per_mille(rng, 200) {
                let team = links[rng.random_range(0..links.len())].team as usize;
                let members = plan.members_of(team);
                if !members.is_empty() {
                    owner = members[rng.random_range(0..members.len())].user;
                }
            }
            (owner, Some(&project.id))
        };
        let status = match rng.random_range(0..100u32) {
            0..80 => "completed",
            80..85 => "pending",
            85..89 => "processing",
            89..96 => "failed",
            _ => "cancelled",
        };
        if per_mille(rng, 50) {
            let recipients = match rng.random_range(0..10u32) {
                0..6 => 1,
                6..9 => 2,
                _ => 3,
            };
            shared.push(SharedGeneration {
                id,
                owner,
                recipients,
            });
        }

        copy.uuid(&id);
        copy.separator();
        copy.uuid(&plan.user_ids[owner as usize]);
        copy.separator();
        match project {
            Some(project) => copy.uuid(project),
            None => copy.null(),
        }
        copy.separator();
        copy.raw(status);
        copy.end_row().await?;
    }
    Ok((copy.finish().await?, shared))
}

async fn copy_generation_shares(
    tx: &Transaction<'_>,
    plan: &Plan,
    shared: &[SharedGeneration],
    rng: &mut SmallRng,
    now: i64,
    progress: &ProgressBar,
) -> Result<u64> {
    const MINUTE: i64 = 60;
    const HOUR: i64 = 60 * MINUTE;
    const DAY: i64 = 24 * HOUR;
    let user_count = plan.user_ids.len() as u32;
    let mut copy = CopyWriter::start(
        tx,
        "generation_shares",
        "id, generation_id, shared_with_user_id, permission_level, expires_at, is_active",
        progress,
    )
    .await?;
    let mut recipients: Vec<u32> = Vec::with_capacity(3);
    for generation in shared {
        recipients.clear();
        let mut attempts = 0;
        while recipients.len() < usize::from(generation.recipients) && attempts < 50 {
            attempts += 1;
            let user = rng.random_range(0..user_count);
            if user == generation.owner || recipients.contains(&user) {
                continue;
            }
            recipients.push(user);
        }
        for &user in &recipients {
            let level = match rng.random_range(0..100u32) {
                0..50 => "read",
                50..80 => "download",
                _ => "edit",
            };
            let expires_at = if per_mille(rng, 300) {
                if per_mille(rng, 250) {
                    Some(now - rng.random_range(HOUR..=60 * DAY))
                } else {
                    Some(now + rng.random_range(10 * MINUTE..=30 * DAY))
                }
            } else {
                None
            };
            let active = per_mille(rng, 900);

            copy.uuid(&random_uuid(rng));
            copy.separator();
            copy.uuid(&generation.id);
            copy.separator();
            copy.uuid(&plan.user_ids[user as usize]);
            copy.separator();
            copy.raw(level);
            copy.separator();
            match expires_at {
                Some(seconds) => copy.timestamp(seconds),
                None => copy.null(),
            }
            copy.separator();
            copy.boolean(active);
            copy.end_row().await?;
        }
    }
    copy.finish().await
}
