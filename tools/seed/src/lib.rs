//! `authz-seed`, the dataset seeder: fills the seven decision tables of DOMAIN.md (`users`, `teams`,
//! `team_members`, `projects`, `project_teams`, `generations`, `generation_shares`) with a
//! realistic dataset for benchmarks, load campaigns and manual testing.
//!
//! **Seeding replaces the dataset.** The seven tables are emptied with `TRUNCATE ... CASCADE`
//! (which also empties any other table holding a foreign key to them) before the load, all in
//! one transaction: other sessions see either the old dataset or the new one, never a mix.
//!
//! It is a tool, not the service: it depends on the core's vocabulary and date arithmetic
//! (`authz-core`) and on nothing of the origin, which never depends on it. The `authz-origin
//! seed` command runs it ([`SeedArgs`] are its flags).
//!
//! What this crate owns:
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
//! * **Telling caches.** With triggers skipped nothing records the change, so the load calls
//!   `authz_bump_all()` as the last statement of its transaction ("everything changed",
//!   committed with the new data), and `authz_current_revision()` after commit, which numbers
//!   it and sends the `{"all":true}` notice. Afterwards the tables are `ANALYZE`d so the planner
//!   sees their new sizes.
//!   Materialized views over these tables are not refreshed here (they lag by design).

mod args;
mod copy;
mod load;
mod plan;

pub use args::SeedArgs;

use std::fmt;
use std::time::Instant;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::SeedableRng as _;
use rand::rngs::SmallRng;
use tokio_postgres::Client;

use plan::{Plan, Sizes};

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
    pub(crate) const fn sizes(self) -> Sizes {
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
    let outcome = load::load_and_analyze(client, &plan, &sizes, stream_rng, &progress).await;
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
