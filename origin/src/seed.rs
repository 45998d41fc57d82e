//! The dataset seeder: fills the seven decision tables of DOMAIN.md (`users`, `teams`,
//! `team_members`, `projects`, `project_teams`, `generations`, `generation_shares`) with a
//! realistic dataset for benchmarks, load campaigns and manual testing.
//!
//! **Seeding replaces the dataset.** The seven tables are emptied with `TRUNCATE ... CASCADE`
//! (which also empties any other table holding a foreign key to them) before the load, all in
//! one transaction: other sessions see either the old dataset or the new one, never a mix.
//!
//! What this module owns:
//!
//! * **The shape of the data.** Sizes come from [`Scale`]; the mix (active users, team sizes
//!   and roles, project visibility, team links, generation statuses, shares and their expiry)
//!   follows the brief documented on [`run`]. Every foreign key is valid and every unique
//!   constraint is respected, so the load does not depend on the database checking them.
//! * **Determinism.** Every id, flag, role, level and link is drawn from one
//!   `SmallRng::seed_from_u64(seed)` stream, so one seed always gives the same dataset (with
//!   the same `Cargo.lock`: `SmallRng`'s algorithm may change between `rand` releases). Ids are
//!   version-4 UUIDs built from 16 bytes of that stream (never nil, never max). The one
//!   exception is `generation_shares.expires_at`, which is drawn as an *offset* from the
//!   server's `now()` at load time, so that "expired" and "expires within 30 days" stay true
//!   whenever the seed is run. `created_at` columns keep their default (`now()`).
//! * **Speed.** One transaction with `SET LOCAL session_replication_role = replica` (triggers,
//!   including the foreign-key and revision triggers, are skipped: superuser only), each table
//!   streamed with `COPY ... FROM STDIN (FORMAT text, FREEZE)` in 64 KiB chunks: only the small
//!   tables' plan (users, teams, members, projects, links) is kept in memory; generations and
//!   shares are generated while they stream. Without the privilege the load falls back, with a
//!   warning, to running with triggers on (slower; the triggers then bump the revision and
//!   create the team-owner memberships themselves).
//! * **Telling caches.** With triggers skipped nothing bumps the revision, so the load calls
//!   `authz_bump_all()` as the last statement of its transaction: the new revision becomes
//!   visible atomically with the new data, and the `{"all":true}` notice is delivered at
//!   commit. Afterwards the tables are `ANALYZE`d so the planner sees their new sizes.
//!   Materialized views over these tables are not refreshed here (they lag by design).

use std::fmt;
use std::pin::Pin;
use std::time::Instant;

use anyhow::{Context as _, Result, ensure};
use bytes::{BufMut as _, Bytes, BytesMut};
use futures_util::SinkExt as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::rngs::SmallRng;
use rand::{Rng as _, RngCore as _, SeedableRng as _};
use tokio_postgres::{Client, CopyInSink, Transaction};
use uuid::Uuid;

/// How much data to generate.
///
/// | scale    | users   | teams  | projects | generations |
/// |----------|---------|--------|----------|-------------|
/// | `small`  | 1,000   | 100    | 2,000    | 20,000      |
/// | `medium` | 10,000  | 1,000  | 20,000   | 200,000     |
/// | `large`  | 100,000 | 10,000 | 200,000  | 1,000,000   |
///
/// Team memberships (about 8.4 per team, owner included), project-team links and shares follow
/// from these sizes and the mix described on [`run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scale {
    /// About 1,000 users: seeds in well under a second; for tests and laptops.
    Small,
    /// About 10,000 users: a few seconds.
    Medium,
    /// 100,000 users and a million generations: the benchmark dataset.
    Large,
}

impl fmt::Display for Scale {
    /// The command-line spelling: `small`, `medium` or `large`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Small => "small",
            Self::Medium => "medium",
            Self::Large => "large",
        })
    }
}

impl Scale {
    /// The base table sizes of this scale.
    fn sizes(self) -> Sizes {
        match self {
            Self::Small => Sizes {
                users: 1_000,
                teams: 100,
                projects: 2_000,
                generations: 20_000,
            },
            Self::Medium => Sizes {
                users: 10_000,
                teams: 1_000,
                projects: 20_000,
                generations: 200_000,
            },
            Self::Large => Sizes {
                users: 100_000,
                teams: 10_000,
                projects: 200_000,
                generations: 1_000_000,
            },
        }
    }
}

/// What to seed and how to report progress.
#[derive(Debug, Clone, Copy)]
pub struct SeedOptions {
    /// The dataset size.
    pub scale: Scale,
    /// The RNG seed: the same seed (and scale) always produces the same dataset.
    pub seed: u64,
    /// Draw a progress bar over the total row count on stderr; silent when false.
    pub progress: bool,
}

/// What a seeding run wrote: the row count of each table and the wall time.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SeedReport {
    /// Rows in `users`.
    pub users: u64,
    /// Rows in `teams`.
    pub teams: u64,
    /// Rows in `team_members`, the owners' `owner` memberships included.
    pub team_members: u64,
    /// Rows in `projects`.
    pub projects: u64,
    /// Rows in `project_teams`.
    pub project_teams: u64,
    /// Rows in `generations`.
    pub generations: u64,
    /// Rows in `generation_shares`.
    pub generation_shares: u64,
    /// Wall time of the whole run (truncate, load, commit, `ANALYZE`), in milliseconds.
    pub elapsed_ms: u64,
}

/// Replaces the contents of the seven decision tables with a generated dataset.
///
/// The tables are resolved through the client's `search_path` (no schema is named). The
/// dataset, for the sizes of [`Scale`]:
///
/// * users: `u<index>@seed.example`, ~97% active;
/// * teams: ~3% inactive; 3–20 members each (skewed towards small teams), the owner as an
///   active `owner` member, the others ~50% viewer / 40% editor / 10% admin, ~5% of those
///   memberships inactive;
/// * projects: owners drawn so that most users own a few and a tenth of users own more;
///   visibility ~60% private / 30% team-only / 10% public; ~40% of non-private projects (and
///   ~2% of private ones, whose links must count for nothing) linked to 1–3 teams, preferably
///   teams their owner belongs to, at level ~50% read / 35% write / 15% admin;
/// * generations: ~10% without project; the rest spread over projects with a heavy-tailed
///   weight (many projects with a handful, a few with hundreds, some with none), owned by the
///   project owner or (~20% when the project has team links) by a member of a linked team;
///   status ~80% completed, 5% pending, 4% processing, 7% failed, 4% cancelled;
/// * shares: on ~5% of generations, to 1–3 distinct users other than the owner, level ~50%
///   read / 30% download / 20% edit; ~30% carry `expires_at` (a quarter of those in the past,
///   the rest within the next 30 days); ~10% inactive.
///
/// Runs in one transaction on `client` (which must not be inside one). Returns the row counts;
/// on error the transaction is rolled back and the previous dataset is left as it was.
pub async fn run(client: &mut Client, options: &SeedOptions) -> Result<SeedReport> {
    let started = Instant::now();
    let sizes = options.scale.sizes();
    tracing::info!(scale = %options.scale, seed = options.seed, "seeding the dataset");

    let mut rng = SmallRng::seed_from_u64(options.seed);
    let plan = Plan::build(&sizes, &mut rng);
    // Generations and shares are drawn while streaming, from the state the plan left; a
    // fallback run starts again from the same state, so both runs load the same dataset.
    let stream_rng = rng;

    let progress = progress_bar(options.progress, plan.estimated_rows(&sizes));
    let outcome = load_and_analyze(client, &plan, &sizes, stream_rng, &progress).await;
    progress.finish_and_clear();
    let mut report = outcome?;

    report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    tracing::info!(
        users = report.users,
        teams = report.teams,
        team_members = report.team_members,
        projects = report.projects,
        project_teams = report.project_teams,
        generations = report.generations,
        generation_shares = report.generation_shares,
        elapsed_ms = report.elapsed_ms,
        "dataset seeded"
    );
    Ok(report)
}

/// The load (skipping triggers, or with them when that is not allowed), then `ANALYZE`.
async fn load_and_analyze(
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
    client
        .batch_execute(&format!("ANALYZE {TABLES}"))
        .await
        .context("analyzing the seeded tables")?;
    Ok(report)
}

// -------------------------------------------------------------------------------------------
// Sizes and vocabulary
// -------------------------------------------------------------------------------------------

/// The seven decision tables, in an order that `TRUNCATE` and `ANALYZE` accept.
const TABLES: &str =
    "users, teams, team_members, projects, project_teams, generations, generation_shares";

/// The size of one `CopyData` message sent to the server.
const CHUNK_BYTES: usize = 64 * 1024;

/// Base table sizes (see [`Scale`]).
struct Sizes {
    users: u32,
    teams: u32,
    projects: u32,
    generations: u32,
}

/// `team_members.role`.
#[derive(Clone, Copy)]
enum Role {
    Owner,
    Admin,
    Editor,
    Viewer,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Editor => "editor",
            Self::Viewer => "viewer",
        }
    }
}

/// `projects.visibility`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Visibility {
    Private,
    TeamOnly,
    Public,
}

impl Visibility {
    fn as_str(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::TeamOnly => "team-only",
            Self::Public => "public",
        }
    }
}

/// `project_teams.access_level`.
#[derive(Clone, Copy)]
enum AccessLevel {
    Read,
    Write,
    Admin,
}

impl AccessLevel {
    fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

/// Words for team and project names (plain ASCII: nothing to escape in COPY text format).
const ADJECTIVES: [&str; 16] = [
    "Amber", "Bold", "Crimson", "Distant", "Electric", "Frozen", "Golden", "Hidden", "Indigo",
    "Jade", "Lunar", "Misty", "Neon", "Quiet", "Silver", "Velvet",
];
const TEAM_NOUNS: [&str; 16] = [
    "Studio",
    "Collective",
    "Lab",
    "Guild",
    "Crew",
    "Workshop",
    "Atelier",
    "Foundry",
    "Circle",
    "Syndicate",
    "Society",
    "Union",
    "Factory",
    "House",
    "Bureau",
    "Division",
];
const PROJECT_NOUNS: [&str; 16] = [
    "Campaign",
    "Storyboard",
    "Moodboard",
    "Trailer",
    "Portfolio",
    "Album",
    "Series",
    "Concept",
    "Lookbook",
    "Launch",
    "Archive",
    "Sketchbook",
    "Pitch",
    "Episode",
    "Poster",
    "Soundtrack",
];

// -------------------------------------------------------------------------------------------
// The in-memory plan of the small tables
// -------------------------------------------------------------------------------------------

struct TeamPlan {
    id: Uuid,
    owner: u32,
    active: bool,
    adjective: u8,
    noun: u8,
}

struct MemberPlan {
    id: Uuid,
    user: u32,
    role: Role,
    active: bool,
}

struct ProjectPlan {
    id: Uuid,
    owner: u32,
    visibility: Visibility,
    adjective: u8,
    noun: u8,
}

struct LinkPlan {
    id: Uuid,
    team: u32,
    level: AccessLevel,
}

/// Users, teams, memberships, projects and links: everything the streamed tables refer to.
/// Memberships and links are stored CSR-style: team `t`'s members are
/// `members[member_start[t]..member_start[t + 1]]` (the owner first), project `p`'s links
/// `links[link_start[p]..link_start[p + 1]]`.
struct Plan {
    user_ids: Vec<Uuid>,
    user_active: Vec<bool>,
    teams: Vec<TeamPlan>,
    member_start: Vec<usize>,
    members: Vec<MemberPlan>,
    projects: Vec<ProjectPlan>,
    link_start: Vec<usize>,
    links: Vec<LinkPlan>,
    /// Cumulative generation weights of the projects (heavy-tailed), for weighted picks.
    project_weight_cumulative: Vec<u64>,
}

impl Plan {
    fn build(sizes: &Sizes, rng: &mut SmallRng) -> Self {
        let user_count = sizes.users as usize;
        let mut user_ids = Vec::with_capacity(user_count);
        let mut user_active = Vec::with_capacity(user_count);
        for _ in 0..user_count {
            user_ids.push(random_uuid(rng));
            user_active.push(per_mille(rng, 970));
        }

        // Teams and their members; remember each user's teams for the project links.
        let team_count = sizes.teams as usize;
        let mut teams = Vec::with_capacity(team_count);
        let mut member_start = Vec::with_capacity(team_count + 1);
        let mut members: Vec<MemberPlan> = Vec::with_capacity(team_count * 9);
        let mut teams_of_user: Vec<Vec<u32>> = vec![Vec::new(); user_count];
        member_start.push(0);
        for team in 0..sizes.teams {
            let owner = rng.random_range(0..sizes.users);
            teams.push(TeamPlan {
                id: random_uuid(rng),
                owner,
                active: per_mille(rng, 970),
                adjective: rng.random_range(0..16),
                noun: rng.random_range(0..16),
            });
            members.push(MemberPlan {
                id: random_uuid(rng),
                user: owner,
                role: Role::Owner,
                active: true,
            });
            teams_of_user[owner as usize].push(team);
            // 3 + min of two uniform 0..=17: sizes 3..=20, mean about 8.4, skewed small.
            let size = 3 + rng.random_range(0..18u32).min(rng.random_range(0..18u32));
            let size = size.min(sizes.users) as usize;
            let first = members.len() - 1;
            while members.len() - first < size {
                let user = rng.random_range(0..sizes.users);
                if members[first..].iter().any(|member| member.user == user) {
                    continue;
                }
                let role = match rng.random_range(0..100u32) {
                    0..50 => Role::Viewer,
                    50..90 => Role::Editor,
                    _ => Role::Admin,
                };
                members.push(MemberPlan {
                    id: random_uuid(rng),
                    user,
                    role,
                    active: per_mille(rng, 950),
                });
                teams_of_user[user as usize].push(team);
            }
            member_start.push(members.len());
        }

        // Projects, their team links and their generation weights.
        let project_count = sizes.projects as usize;
        let power_users = (sizes.users / 10).max(1);
        let mut projects = Vec::with_capacity(project_count);
        let mut link_start = Vec::with_capacity(project_count + 1);
        let mut links: Vec<LinkPlan> = Vec::with_capacity(project_count / 5);
        let mut project_weight_cumulative = Vec::with_capacity(project_count);
        let mut total_weight = 0u64;
        link_start.push(0);
        for _ in 0..sizes.projects {
            let owner = if per_mille(rng, 750) {
                rng.random_range(0..sizes.users)
            } else {
                rng.random_range(0..power_users)
            };
            let visibility = match rng.random_range(0..100u32) {
                0..60 => Visibility::Private,
                60..90 => Visibility::TeamOnly,
                _ => Visibility::Public,
            };
            projects.push(ProjectPlan {
                id: random_uuid(rng),
                owner,
                visibility,
                adjective: rng.random_range(0..16),
                noun: rng.random_range(0..16),
            });

            let linked = if visibility == Visibility::Private {
                per_mille(rng, 20)
            } else {
                per_mille(rng, 400)
            };
            if linked {
                let wanted = match rng.random_range(0..10u32) {
                    0..6 => 1,
                    6..9 => 2,
                    _ => 3,
                };
                let own_teams = &teams_of_user[owner as usize];
                let first = links.len();
                let mut attempts = 0;
                while links.len() - first < wanted && attempts < 50 {
                    attempts += 1;
                    let team = if !own_teams.is_empty() && per_mille(rng, 750) {
                        own_teams[rng.random_range(0..own_teams.len())]
                    } else {
                        rng.random_range(0..sizes.teams)
                    };
                    if links[first..].iter().any(|link| link.team == team) {
                        continue;
                    }
                    let level = match rng.random_range(0..100u32) {
                        0..50 => AccessLevel::Read,
                        50..85 => AccessLevel::Write,
                        _ => AccessLevel::Admin,
                    };
                    links.push(LinkPlan {
                        id: random_uuid(rng),
                        team,
                        level,
                    });
                }
            }
            link_start.push(links.len());

            // P(weight >= k) is about 1/k, capped at 200: a heavy tail of busy projects.
            let draw = rng.random_range(1..=1000u64);
            total_weight += (1000 / draw).min(200);
            project_weight_cumulative.push(total_weight);
        }

        Self {
            user_ids,
            user_active,
            teams,
            member_start,
            members,
            projects,
            link_start,
            links,
            project_weight_cumulative,
        }
    }

    /// The total row count, with the share count estimated (it is known once the generations
    /// are written).
    fn estimated_rows(&self, sizes: &Sizes) -> u64 {
        let shares = u64::from(sizes.generations) * 5 / 100 * 3 / 2;
        (self.user_ids.len() + self.teams.len() + self.members.len()) as u64
            + (self.projects.len() + self.links.len()) as u64
            + u64::from(sizes.generations)
            + shares
    }

    fn members_of(&self, team: usize) -> &[MemberPlan] {
        &self.members[self.member_start[team]..self.member_start[team + 1]]
    }

    fn links_of(&self, project: usize) -> &[LinkPlan] {
        &self.links[self.link_start[project]..self.link_start[project + 1]]
    }

    /// A project index drawn with the projects' generation weights.
    fn weighted_project(&self, rng: &mut SmallRng) -> usize {
        let total = self.project_weight_cumulative.last().copied().unwrap_or(0);
        if total == 0 {
            return 0;
        }
        let point = rng.random_range(0..total);
        self.project_weight_cumulative
            .partition_point(|&cumulative| cumulative <= point)
            .min(self.projects.len() - 1)
    }
}

/// A generation that gets shares: its id, its owner and how many recipients.
struct SharedGeneration {
    id: Uuid,
    owner: u32,
    recipients: u8,
}

// -------------------------------------------------------------------------------------------
// The load
// -------------------------------------------------------------------------------------------

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
        // Nothing bumped the revision: do it here, so the new revision commits together with
        // the new data and the "everything changed" notice goes out at commit.
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

// -------------------------------------------------------------------------------------------
// COPY text-format streaming
// -------------------------------------------------------------------------------------------

/// One `COPY <table> FROM STDIN` in text format, sent in chunks of [`CHUNK_BYTES`]. Field
/// writers append to the current row; callers only pass values that need no escaping (ids,
/// numbers, fixed vocabulary, ASCII names).
struct CopyWriter {
    table: &'static str,
    sink: Pin<Box<CopyInSink<Bytes>>>,
    buf: BytesMut,
    rows: u64,
    unreported: u64,
    progress: ProgressBar,
    started: Instant,
}

impl CopyWriter {
    async fn start(
        tx: &Transaction<'_>,
        table: &'static str,
        columns: &str,
        progress: &ProgressBar,
    ) -> Result<Self> {
        // FREEZE: the table was truncated in this transaction, so its rows may be written
        // frozen (no hint-bit rewrite of every page on first read).
        let statement = format!("COPY {table} ({columns}) FROM STDIN WITH (FORMAT text, FREEZE)");
        let sink = tx
            .copy_in(statement.as_str())
            .await
            .with_context(|| format!("starting COPY into {table}"))?;
        progress.set_message(table);
        Ok(Self {
            table,
            sink: Box::pin(sink),
            buf: BytesMut::with_capacity(CHUNK_BYTES + 1024),
            rows: 0,
            unreported: 0,
            progress: progress.clone(),
            started: Instant::now(),
        })
    }

    fn raw(&mut self, text: &str) {
        self.buf.put_slice(text.as_bytes());
    }

    fn separator(&mut self) {
        self.buf.put_u8(b'\t');
    }

    fn null(&mut self) {
        self.buf.put_slice(b"\\N");
    }

    fn boolean(&mut self, value: bool) {
        self.buf.put_u8(if value { b't' } else { b'f' });
    }

    fn uuid(&mut self, id: &Uuid) {
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        self.buf
            .put_slice(id.hyphenated().encode_lower(&mut text).as_bytes());
    }

    fn number(&mut self, value: u64) {
        let mut digits = [0u8; 20];
        self.buf.put_slice(format_decimal(value, &mut digits));
    }

    /// A `timestamptz` in UTC, from seconds since the Unix epoch.
    fn timestamp(&mut self, unix_seconds: i64) {
        let mut text = [0u8; 32];
        let length = format_timestamp(unix_seconds, &mut text);
        self.buf.put_slice(&text[..length]);
    }

    async fn end_row(&mut self) -> Result<()> {
        self.buf.put_u8(b'\n');
        self.rows += 1;
        self.unreported += 1;
        if self.buf.len() >= CHUNK_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.sink
            .feed(chunk)
            .await
            .with_context(|| format!("streaming rows into {}", self.table))?;
        self.progress.inc(self.unreported);
        self.unreported = 0;
        self.buf.reserve(CHUNK_BYTES + 1024);
        Ok(())
    }

    /// Ends the COPY and checks that the server stored every row sent.
    async fn finish(mut self) -> Result<u64> {
        self.flush().await?;
        let stored = self
            .sink
            .as_mut()
            .finish()
            .await
            .with_context(|| format!("finishing COPY into {}", self.table))?;
        ensure!(
            stored == self.rows,
            "COPY into {} stored {stored} rows but {} were sent",
            self.table,
            self.rows
        );
        tracing::debug!(
            table = self.table,
            rows = stored,
            elapsed_ms = self.started.elapsed().as_millis(),
            "table loaded"
        );
        Ok(stored)
    }
}

// -------------------------------------------------------------------------------------------
// Small helpers
// -------------------------------------------------------------------------------------------

/// A version-4 UUID from 16 bytes of `rng` (version and variant bits set: never nil or max).
fn random_uuid(rng: &mut SmallRng) -> Uuid {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// True with probability `per_mille / 1000`.
fn per_mille(rng: &mut SmallRng, per_mille: u32) -> bool {
    rng.random_range(0..1000u32) < per_mille
}

/// The progress bar over `total` rows on stderr, or a hidden one.
fn progress_bar(enabled: bool, total: u64) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    match ProgressStyle::with_template(
        "{msg:>17} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} rows ({per_sec:0}, eta {eta})",
    ) {
        Ok(style) => bar.set_style(style.progress_chars("=> ")),
        Err(error) => tracing::debug!(%error, "progress template rejected; default style"),
    }
    bar
}

/// Writes `value` in decimal into `digits`, returning the written part.
fn format_decimal(mut value: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    &digits[start..]
}

/// Writes `YYYY-MM-DD HH:MM:SS+00` for `unix_seconds` into `out`, returning the length.
/// Years outside 0..=9999 are clamped (the seeder only writes dates near now).
fn format_timestamp(unix_seconds: i64, out: &mut [u8; 32]) -> usize {
    let days = unix_seconds.div_euclid(86_400);
    let second_of_day = unix_seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let year = year.clamp(0, 9999);
    let fields: [(i64, usize); 6] = [
        (year, 4),
        (i64::from(month), 2),
        (i64::from(day), 2),
        (second_of_day / 3600, 2),
        (second_of_day / 60 % 60, 2),
        (second_of_day % 60, 2),
    ];
    let separators = [b'-', b'-', b' ', b':', b':', b'+'];
    let mut position = 0;
    for ((value, width), separator) in fields.into_iter().zip(separators) {
        let mut remaining = value;
        for index in (0..width).rev() {
            out[position + index] = b'0' + (remaining % 10) as u8;
            remaining /= 10;
        }
        position += width;
        out[position] = separator;
        position += 1;
    }
    out[position] = b'0';
    out[position + 1] = b'0';
    position + 2
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timestamp(seconds: i64) -> String {
        let mut out = [0u8; 32];
        let length = format_timestamp(seconds, &mut out);
        String::from_utf8(out[..length].to_vec()).unwrap()
    }

    #[test]
    fn timestamps_are_formatted_in_utc() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00+00");
        assert_eq!(timestamp(951_782_400), "2000-02-29 00:00:00+00");
        assert_eq!(timestamp(1_709_251_199), "2024-02-29 23:59:59+00");
        assert_eq!(timestamp(1_767_225_600), "2026-01-01 00:00:00+00");
        assert_eq!(timestamp(-1), "1969-12-31 23:59:59+00");
    }

    #[test]
    fn decimals() {
        let mut digits = [0u8; 20];
        assert_eq!(format_decimal(0, &mut digits), b"0");
        assert_eq!(format_decimal(1_000_007, &mut digits), b"1000007");
        assert_eq!(
            format_decimal(u64::MAX, &mut digits),
            b"18446744073709551615"
        );
    }

    #[test]
    fn the_plan_is_deterministic_and_consistent() {
        let sizes = Scale::Small.sizes();
        let plan = Plan::build(&sizes, &mut SmallRng::seed_from_u64(7));
        let again = Plan::build(&sizes, &mut SmallRng::seed_from_u64(7));
        assert_eq!(plan.user_ids, again.user_ids);
        assert_eq!(plan.members.len(), again.members.len());
        for (index, team) in plan.teams.iter().enumerate() {
            let members = plan.members_of(index);
            assert!((3..=20).contains(&members.len()));
            assert_eq!(members[0].user, team.owner);
            assert!(matches!(members[0].role, Role::Owner) && members[0].active);
            let mut users: Vec<u32> = members.iter().map(|member| member.user).collect();
            users.sort_unstable();
            users.dedup();
            assert_eq!(users.len(), members.len());
        }
        for index in 0..plan.projects.len() {
            let mut teams: Vec<u32> = plan.links_of(index).iter().map(|link| link.team).collect();
            teams.sort_unstable();
            teams.dedup();
            assert_eq!(teams.len(), plan.links_of(index).len());
        }
        assert!(plan.user_ids.iter().all(|id| id.get_version_num() == 4));
    }
}
