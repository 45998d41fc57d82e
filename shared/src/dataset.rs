//! The tables of DOMAIN.md as plain rows in memory, and the facts a question reads from them.
//!
//! This is the reference loader: the decision corpus is written as datasets, the property
//! tests generate datasets, and the origin's SQL loader must produce the same [`Facts`] from
//! the same rows. It emulates the one trigger that matters for decisions: creating a team
//! makes its owner an active `owner` member unless a `team_members` row says otherwise.

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::facts::{
    Facts, GenerationFacts, LinkedTeam, Membership, ProjectFacts, ResourceFacts, ShareFacts,
    TeamFacts, UserFacts,
};
use crate::id::{GenerationId, ProjectId, TeamId, UserId};
use crate::model::{AccessLevel, GenerationStatus, Role, ShareLevel, Visibility};
use crate::question::{Question, Resource};
use crate::time::Timestamp;

const fn active() -> bool {
    true
}

/// A `users` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRow {
    /// `id`.
    pub id: UserId,
    /// `is_active` (default true).
    #[serde(default = "active")]
    pub is_active: bool,
}

/// A `teams` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamRow {
    /// `id`.
    pub id: TeamId,
    /// `owner_id`.
    pub owner_id: UserId,
    /// `is_active` (default true).
    #[serde(default = "active")]
    pub is_active: bool,
}

/// A `team_members` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamMemberRow {
    /// `team_id`.
    pub team_id: TeamId,
    /// `user_id`.
    pub user_id: UserId,
    /// `role`.
    pub role: Role,
    /// `is_active` (default true).
    #[serde(default = "active")]
    pub is_active: bool,
}

/// A `projects` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectRow {
    /// `id`.
    pub id: ProjectId,
    /// `user_id`, the owner.
    pub user_id: UserId,
    /// `visibility` (default private).
    #[serde(default = "private")]
    pub visibility: Visibility,
}

const fn private() -> Visibility {
    Visibility::Private
}

/// A `project_teams` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectTeamRow {
    /// `project_id`.
    pub project_id: ProjectId,
    /// `team_id`.
    pub team_id: TeamId,
    /// `access_level` (default read).
    #[serde(default = "read_level")]
    pub access_level: AccessLevel,
}

const fn read_level() -> AccessLevel {
    AccessLevel::Read
}

/// A `generations` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationRow {
    /// `id`.
    pub id: GenerationId,
    /// `user_id`, the owner.
    pub user_id: UserId,
    /// `project_id`, nullable.
    #[serde(default)]
    pub project_id: Option<ProjectId>,
    /// `status`.
    pub status: GenerationStatus,
}

/// A `generation_shares` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareRow {
    /// `generation_id`.
    pub generation_id: GenerationId,
    /// `shared_with_user_id`.
    pub shared_with_user_id: UserId,
    /// `permission_level`.
    pub permission_level: ShareLevel,
    /// `expires_at`, nullable.
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    /// `is_active` (default true).
    #[serde(default = "active")]
    pub is_active: bool,
}

/// The seven decision tables. Absent tables are empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Dataset {
    /// `users`.
    pub users: Vec<UserRow>,
    /// `teams`.
    pub teams: Vec<TeamRow>,
    /// `team_members`, without the owners' implicit rows.
    pub team_members: Vec<TeamMemberRow>,
    /// `projects`.
    pub projects: Vec<ProjectRow>,
    /// `project_teams`.
    pub project_teams: Vec<ProjectTeamRow>,
    /// `generations`.
    pub generations: Vec<GenerationRow>,
    /// `generation_shares`.
    pub generation_shares: Vec<ShareRow>,
}

impl Dataset {
    /// The user's membership of a team: an explicit row wins (the last one, as an upsert
    /// would leave it), else the owner's implicit active `owner` row, else none.
    pub fn membership(&self, team: &TeamRow, user: UserId) -> Option<Membership> {
        self.team_members
            .iter()
            .rev()
            .find(|row| row.team_id == team.id && row.user_id == user)
            .map(|row| Membership {
                role: row.role,
                is_active: row.is_active,
            })
            .or_else(|| {
                (team.owner_id == user).then_some(Membership {
                    role: Role::Owner,
                    is_active: true,
                })
            })
    }

    fn project_facts(&self, project: &ProjectRow, user: Option<UserId>) -> ProjectFacts {
        let teams = self
            .project_teams
            .iter()
            .filter(|link| link.project_id == project.id)
            .filter_map(|link| {
                let team = self.teams.iter().find(|team| team.id == link.team_id)?;
                Some(LinkedTeam {
                    team_id: team.id,
                    access_level: link.access_level,
                    team_is_active: team.is_active,
                    membership: user.and_then(|user| self.membership(team, user)),
                })
            })
            .collect();
        ProjectFacts {
            id: project.id,
            owner_id: project.user_id,
            visibility: project.visibility,
            teams,
        }
    }

    /// The facts `question` reads from these rows, at `revision`.
    pub fn facts(&self, question: &Question, revision: u64) -> Facts {
        let user_id = question.principal.user_id();
        let user = user_id.and_then(|id| {
            self.users
                .iter()
                .find(|row| row.id == id)
                .map(|row| UserFacts {
                    is_active: row.is_active,
                })
        });
        let resource = match question.resource {
            Resource::Generation(id) => {
                self.generations
                    .iter()
                    .find(|row| row.id == id)
                    .map(|generation| {
                        let project = generation.project_id.and_then(|project_id| {
                            self.projects.iter().find(|row| row.id == project_id)
                        });
                        let shares = user_id.map_or_else(Vec::new, |user| {
                            self.generation_shares
                                .iter()
                                .filter(|share| {
                                    share.generation_id == id && share.shared_with_user_id == user
                                })
                                .map(|share| ShareFacts {
                                    level: share.permission_level,
                                    expires_at: share.expires_at,
                                    is_active: share.is_active,
                                })
                                .collect()
                        });
                        ResourceFacts::Generation(GenerationFacts {
                            owner_id: generation.user_id,
                            status: generation.status,
                            project: project.map(|project| self.project_facts(project, user_id)),
                            shares,
                        })
                    })
            }
            Resource::Project(id) => self
                .projects
                .iter()
                .find(|row| row.id == id)
                .map(|project| ResourceFacts::Project(self.project_facts(project, user_id))),
            Resource::Team(id) => self.teams.iter().find(|row| row.id == id).map(|team| {
                ResourceFacts::Team(TeamFacts {
                    is_active: team.is_active,
                    membership: user_id.and_then(|user| self.membership(team, user)),
                })
            }),
        };
        Facts {
            revision,
            user,
            resource,
        }
    }
}

impl Dataset {
    /// The user piece of `user` (`None` without a row), with its owner memberships implicit
    /// as in [`Dataset::membership`].
    pub fn user_piece(&self, user: UserId) -> Option<crate::pieces::UserPiece> {
        let row = self.users.iter().find(|row| row.id == user)?;
        Some(crate::pieces::UserPiece {
            is_active: row.is_active,
            memberships: self
                .teams
                .iter()
                .filter_map(|team| {
                    self.membership(team, user)
                        .map(|m| crate::pieces::TeamMembership {
                            team_id: team.id,
                            role: m.role,
                            is_active: m.is_active,
                        })
                })
                .collect(),
        })
    }

    fn project_piece(&self, project: &ProjectRow) -> crate::pieces::ProjectPiece {
        crate::pieces::ProjectPiece {
            id: project.id,
            owner_id: project.user_id,
            visibility: project.visibility,
            teams: self
                .project_teams
                .iter()
                .filter(|link| link.project_id == project.id)
                .filter_map(|link| {
                    let team = self.teams.iter().find(|team| team.id == link.team_id)?;
                    Some(crate::pieces::TeamLink {
                        team_id: team.id,
                        access_level: link.access_level,
                        team_is_active: team.is_active,
                    })
                })
                .collect(),
        }
    }

    /// The resource piece of `resource` (`None` when missing).
    pub fn resource_piece(&self, resource: Resource) -> Option<crate::pieces::ResourcePiece> {
        use crate::pieces::{ResourcePiece, UserShare};
        match resource {
            Resource::Generation(id) => {
                let generation = self.generations.iter().find(|row| row.id == id)?;
                Some(ResourcePiece::Generation {
                    owner_id: generation.user_id,
                    status: generation.status,
                    project: generation
                        .project_id
                        .and_then(|p| self.projects.iter().find(|row| row.id == p))
                        .map(|project| self.project_piece(project)),
                    shares: self
                        .generation_shares
                        .iter()
                        .filter(|share| share.generation_id == id)
                        .map(|share| UserShare {
                            user_id: share.shared_with_user_id,
                            level: share.permission_level,
                            expires_at: share.expires_at,
                            is_active: share.is_active,
                        })
                        .collect(),
                })
            }
            Resource::Project(id) => self
                .projects
                .iter()
                .find(|row| row.id == id)
                .map(|project| ResourcePiece::Project(self.project_piece(project))),
            Resource::Team(id) => {
                self.teams
                    .iter()
                    .find(|row| row.id == id)
                    .map(|team| ResourcePiece::Team {
                        is_active: team.is_active,
                    })
            }
        }
    }
}

/// One file of the decision corpus (`shared/tests/corpus/*.json`; format in its README).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorpusFile {
    /// What the file covers.
    #[serde(default)]
    pub description: alloc::string::String,
    /// The cases.
    pub cases: Vec<CorpusCase>,
}

/// One decision case: rows, a question, the instant and the expected decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorpusCase {
    /// Unique across the corpus.
    pub name: alloc::string::String,
    /// The instant the question is asked at.
    pub now: Timestamp,
    /// The rows, loaded alone into empty tables.
    #[serde(default)]
    pub data: Dataset,
    /// The question, as API.md's request body.
    pub question: crate::wire::AuthorizeRequest,
    /// The expected decision (revision aside).
    pub expected: ExpectedDecision,
    /// Whether the outcome depends on an expiry within seconds of `now` (implementations that
    /// cannot set their clock skip it).
    #[serde(default)]
    pub exact_time: bool,
}

/// The part of a decision that a corpus case fixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedDecision {
    /// `granted`.
    pub granted: bool,
    /// `access_method`.
    pub access_method: Option<crate::model::AccessMethod>,
    /// `effective_role`.
    pub effective_role: Option<Role>,
    /// `reason`.
    pub reason: Option<crate::model::DenyReason>,
    /// `valid_until`.
    pub valid_until: Option<Timestamp>,
}

impl ExpectedDecision {
    /// The comparable part of `decision`.
    pub const fn of(decision: &crate::decide::Decision) -> Self {
        Self {
            granted: decision.granted,
            access_method: decision.access_method,
            effective_role: decision.effective_role,
            reason: decision.reason,
            valid_until: decision.valid_until,
        }
    }
}
