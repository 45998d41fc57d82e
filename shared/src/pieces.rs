//! Facts in two cacheable pieces: what a user is (active flag, memberships) and what a resource
//! is (owner, status, project, team links, every share), each independent of the other. The
//! origin caches them in its Redis `user` and `generation` tiers, so a decision whose pieces are
//! cached needs no Postgres; [`compose`] rebuilds exactly the facts of one question from them.

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::facts::{
    Facts, GenerationFacts, LinkedTeam, Membership, ProjectFacts, ResourceFacts, ShareFacts,
    TeamFacts, UserFacts,
};
use crate::id::{ProjectId, TeamId, UserId};
use crate::model::{AccessLevel, GenerationStatus, Role, ShareLevel, Visibility};
use crate::question::{Question, Resource};
use crate::time::Timestamp;

/// A user's own row and every membership of theirs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPiece {
    /// `users.is_active`.
    pub is_active: bool,
    /// Every `team_members` row of the user, active or not.
    pub memberships: Vec<TeamMembership>,
}

/// One `team_members` row, seen from the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamMembership {
    /// `team_id`.
    pub team_id: TeamId,
    /// `role`.
    pub role: Role,
    /// `is_active`.
    pub is_active: bool,
}

/// A resource, with nothing about any particular principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResourcePiece {
    /// A generation, its project and every share on it.
    Generation {
        /// `generations.user_id`.
        owner_id: UserId,
        /// `generations.status`.
        status: GenerationStatus,
        /// The project, if any.
        project: Option<ProjectPiece>,
        /// Every `generation_shares` row of the generation.
        shares: Vec<UserShare>,
    },
    /// A project.
    Project(ProjectPiece),
    /// A team.
    Team {
        /// `teams.is_active`.
        is_active: bool,
    },
}

/// A project and its team links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectPiece {
    /// `projects.id`.
    pub id: ProjectId,
    /// `projects.user_id`.
    pub owner_id: UserId,
    /// `projects.visibility`.
    pub visibility: Visibility,
    /// Every `project_teams` row, with the team's active flag.
    pub teams: Vec<TeamLink>,
}

/// One `project_teams` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamLink {
    /// `team_id`.
    pub team_id: TeamId,
    /// `access_level`.
    pub access_level: AccessLevel,
    /// `teams.is_active`.
    pub team_is_active: bool,
}

/// One `generation_shares` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserShare {
    /// `shared_with_user_id`.
    pub user_id: UserId,
    /// `permission_level`.
    pub level: ShareLevel,
    /// `expires_at`.
    pub expires_at: Option<Timestamp>,
    /// `is_active`.
    pub is_active: bool,
}

impl UserPiece {
    fn membership(&self, team: TeamId) -> Option<Membership> {
        self.memberships
            .iter()
            .find(|row| row.team_id == team)
            .map(|row| Membership {
                role: row.role,
                is_active: row.is_active,
            })
    }
}

fn project_facts(project: &ProjectPiece, user: Option<&UserPiece>) -> ProjectFacts {
    ProjectFacts {
        id: project.id,
        owner_id: project.owner_id,
        visibility: project.visibility,
        teams: project
            .teams
            .iter()
            .map(|link| LinkedTeam {
                team_id: link.team_id,
                access_level: link.access_level,
                team_is_active: link.team_is_active,
                membership: user.and_then(|user| user.membership(link.team_id)),
            })
            .collect(),
    }
}

/// The facts of `question` at `revision` from its pieces: the principal's user piece (`None`
/// when the user has no row, or for anonymous) and the resource's piece (`None` when missing).
pub fn compose(
    question: &Question,
    revision: u64,
    user: Option<&UserPiece>,
    resource: Option<&ResourcePiece>,
) -> Facts {
    let principal = question.principal.user_id();
    // An anonymous principal has no user piece, whatever the caller passed.
    let user = principal.and(user);
    let resource = resource.and_then(|piece| match (piece, question.resource) {
        (
            ResourcePiece::Generation {
                owner_id,
                status,
                project,
                shares,
            },
            Resource::Generation(_),
        ) => Some(ResourceFacts::Generation(GenerationFacts {
            owner_id: *owner_id,
            status: *status,
            project: project.as_ref().map(|project| project_facts(project, user)),
            shares: shares
                .iter()
                .filter(|share| Some(share.user_id) == principal)
                .map(|share| ShareFacts {
                    level: share.level,
                    expires_at: share.expires_at,
                    is_active: share.is_active,
                })
                .collect(),
        })),
        (ResourcePiece::Project(project), Resource::Project(_)) => {
            Some(ResourceFacts::Project(project_facts(project, user)))
        }
        (ResourcePiece::Team { is_active }, Resource::Team(team)) => {
            Some(ResourceFacts::Team(TeamFacts {
                is_active: *is_active,
                membership: user.and_then(|user| user.membership(team)),
            }))
        }
        // A piece of another kind than asked: treat as missing (fail closed).
        _ => None,
    });
    Facts {
        revision,
        user: user.map(|user| UserFacts {
            is_active: user.is_active,
        }),
        resource,
    }
}

/// The ids whose change can change a resource piece: the resource, its project, its linked
/// teams. (A user piece depends on the user alone: membership changes name the user.)
pub fn resource_dependencies(
    resource: &Resource,
    piece: Option<&ResourcePiece>,
) -> Vec<uuid::Uuid> {
    let mut ids = Vec::with_capacity(4);
    ids.push(resource.id());
    let project = match piece {
        Some(ResourcePiece::Generation { project, .. }) => project.as_ref(),
        Some(ResourcePiece::Project(project)) => Some(project),
        Some(ResourcePiece::Team { .. }) | None => None,
    };
    if let Some(project) = project {
        ids.push(*project.id.as_uuid());
        ids.extend(project.teams.iter().map(|link| *link.team_id.as_uuid()));
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}
