//! The questions the tools ask, and the one sampler that draws them from a seeded database.
//!
//! A sample is a [`Mix`]: kinds of (principal, resource) pairs ([`Kind`]) with their shares.
//! Each kind's pairs are ordered by an md5 hash salted with a text (the seed), the kinds are
//! interleaved by a hash too (so the first questions, a Zipf workload's hottest, mix every
//! kind), and each question's operation is drawn by a hash of its pair. The sample is the same
//! on the same data and salt, needs no session state (no `setseed`), and a different salt
//! gives an independent sample.

use std::path::Path;

use authz_core::{Operation, ResourceType};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_postgres::Client;
use uuid::Uuid;

/// One question: the body of `POST /v1/authorize` without `min_revision`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    /// The principal (`None`: anonymous).
    pub user_id: Option<Uuid>,
    /// The resource type.
    pub resource_type: ResourceType,
    /// The resource.
    pub resource_id: Uuid,
    /// The operation.
    pub operation: Operation,
}

impl Question {
    /// The `POST /v1/authorize` body.
    pub fn body(&self) -> Value {
        json!({
            "user_id": self.user_id.map(|user| user.to_string()),
            "resource_type": self.resource_type.as_str(),
            "resource_id": self.resource_id.to_string(),
            "operation": self.operation.as_str(),
        })
    }
}

/// A kind of (principal, resource) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The owner of a generation.
    Owners,
    /// The recipient of a generation's share.
    Sharees,
    /// A member of a team linked to a generation's project, about the generation.
    GenerationTeamMembers,
    /// A member of a team linked to a project, about the project.
    ProjectTeamMembers,
    /// A member of a team, about the team.
    TeamMembers,
    /// Nobody (an anonymous reader), about a generation.
    Anonymous,
    /// A random user and a random generation (almost always a deny).
    Strangers,
}

impl Kind {
    /// The pairs' query: `$1` the count, `$2` the salt; columns `u` (uuid or null), `r`.
    const fn sql(self) -> &'static str {
        match self {
            Self::Owners => {
                "SELECT g.user_id AS u, g.id AS r FROM generations g \
                 ORDER BY md5($2 || g.id::text) LIMIT $1"
            }
            Self::Sharees => {
                "SELECT s.shared_with_user_id AS u, s.generation_id AS r FROM generation_shares s \
                 ORDER BY md5($2 || s.generation_id::text || s.shared_with_user_id::text) LIMIT $1"
            }
            Self::GenerationTeamMembers => {
                "SELECT m.user_id AS u, g.id AS r FROM generations g \
                 JOIN project_teams pt ON pt.project_id = g.project_id \
                 JOIN team_members m ON m.team_id = pt.team_id \
                 ORDER BY md5($2 || g.id::text || m.user_id::text) LIMIT $1"
            }
            Self::ProjectTeamMembers => {
                "SELECT m.user_id AS u, pt.project_id AS r FROM project_teams pt \
                 JOIN team_members m ON m.team_id = pt.team_id \
                 ORDER BY md5($2 || pt.project_id::text || m.user_id::text) LIMIT $1"
            }
            Self::TeamMembers => {
                "SELECT m.user_id AS u, m.team_id AS r FROM team_members m \
                 ORDER BY md5($2 || m.team_id::text || m.user_id::text) LIMIT $1"
            }
            Self::Anonymous => {
                "SELECT NULL::uuid AS u, g.id AS r FROM generations g \
                 ORDER BY md5($2 || g.id::text || 'a') LIMIT $1"
            }
            Self::Strangers => {
                "SELECT u.id AS u, g.id AS r \
                 FROM (SELECT id, row_number() OVER (ORDER BY md5($2 || id::text)) AS n FROM users \
                       ORDER BY md5($2 || id::text) LIMIT $1) u \
                 JOIN (SELECT id, row_number() OVER (ORDER BY md5($2 || id::text || 'x')) AS n \
                       FROM generations ORDER BY md5($2 || id::text || 'x') LIMIT $1) g \
                   ON g.n = u.n"
            }
        }
    }

    /// The type of the kind's resources.
    const fn resource_type(self) -> ResourceType {
        match self {
            Self::ProjectTeamMembers => ResourceType::Project,
            Self::TeamMembers => ResourceType::Team,
            _ => ResourceType::Generation,
        }
    }
}

/// Kinds and their shares, in per mille.
pub type Mix = &'static [(Kind, u32)];

/// The load mix (`authz-bench`): sharees 10 %, owners 40 %, members of linked teams 25 %,
/// strangers 25 %, all about generations.
pub const LOAD_MIX: Mix = &[
    (Kind::Sharees, 100),
    (Kind::Owners, 400),
    (Kind::GenerationTeamMembers, 250),
    (Kind::Strangers, 250),
];

/// The validation mix (`authz-validate`): owners 30 %, sharees 15 %, members of a team linked to
/// a project (about the project) 15 %, members of a team (about the team) 10 %, anonymous
/// readers 5 %, strangers 25 %.
pub const VALIDATE_MIX: Mix = &[
    (Kind::Owners, 300),
    (Kind::Sharees, 150),
    (Kind::ProjectTeamMembers, 150),
    (Kind::TeamMembers, 100),
    (Kind::Anonymous, 50),
    (Kind::Strangers, 250),
];

/// Samples `count` questions of `mix` (fewer only when the tables hold fewer pairs of some
/// kind), ordered by hashes salted with `salt`.
pub async fn sample(
    client: &Client,
    mix: Mix,
    count: usize,
    salt: &str,
) -> Result<Vec<Question>, String> {
    let failed = |error: tokio_postgres::Error| format!("cannot sample questions: {error}");
    let mut pairs: Vec<(String, Question)> = Vec::with_capacity(count);
    for &(kind, per_mille) in mix {
        let wanted =
            i64::try_from((count * per_mille as usize).div_ceil(1_000)).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT u, r, md5($2 || coalesce(u::text, '') || r::text), \
                    abs(hashtext($2 || coalesce(u::text, '') || r::text)) % 6 \
               FROM ({}) pairs",
            kind.sql()
        );
        for row in client
            .query(&sql, &[&wanted, &salt])
            .await
            .map_err(failed)?
        {
            let operation = usize::try_from(row.get::<_, i32>(3)).unwrap_or(0);
            pairs.push((
                row.get(2),
                Question {
                    user_id: row.get(0),
                    resource_type: kind.resource_type(),
                    resource_id: row.get(1),
                    operation: Operation::ALL
                        .get(operation)
                        .copied()
                        .unwrap_or(Operation::Read),
                },
            ));
        }
    }
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs.truncate(count);
    if pairs.is_empty() {
        return Err("the database holds no data to ask about: seed it first \
                    (authz-origin seed --scale small)"
            .to_owned());
    }
    Ok(pairs.into_iter().map(|(_, question)| question).collect())
}

/// Reads questions from a file of JSON bodies, one a line.
pub fn read(path: &Path) -> Result<Vec<Question>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("reading {}: {error}", path.display()))?;
    let questions: Vec<Question> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(|error| format!("parsing {}: {error}", path.display()))?;
    if questions.is_empty() {
        return Err(format!("{} holds no questions", path.display()));
    }
    Ok(questions)
}
