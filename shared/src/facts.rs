//! The facts one decision reads: the raw rows about the principal and the resource, as loaded
//! by the origin in one round trip (or from its fact caches), before any rule is applied.
//!
//! Facts are raw on purpose (inactive rows included, flags unapplied) so that every rule lives
//! in `decide` and nowhere else. Memberships and shares are those of the question's principal.

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::id::{ProjectId, TeamId, UserId};
use crate::model::{AccessLevel, GenerationStatus, ResourceType, Role, ShareLevel, Visibility};
use crate::question::Question;
use crate::time::Timestamp;

/// Everything one decision needs, read at one data revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    /// The data revision the facts were read at (DOMAIN.md, Consistency).
    pub revision: u64,
    /// The principal's user row, `None` when it does not exist (always `None` for anonymous).
    pub user: Option<UserFacts>,
    /// The resource, `None` when it does not exist.
    pub resource: Option<ResourceFacts>,
}

/// The principal's user row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserFacts {
    /// `users.is_active`.
    pub is_active: bool,
}

/// The resource asked about, by type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResourceFacts {
    /// A generation row.
    Generation(GenerationFacts),
    /// A project row.
    Project(ProjectFacts),
    /// A team row.
    Team(TeamFacts),
}

impl ResourceFacts {
    /// The type of the resource these facts describe.
    pub const fn resource_type(&self) -> ResourceType {
        match self {
            Self::Generation(_) => ResourceType::Generation,
            Self::Project(_) => ResourceType::Project,
            Self::Team(_) => ResourceType::Team,
        }
    }
}

/// A generation, its project (if any) and the principal's shares on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationFacts {
    /// `generations.user_id`.
    pub owner_id: UserId,
    /// `generations.status`.
    pub status: GenerationStatus,
    /// The project, when `generations.project_id` is set.
    pub project: Option<ProjectFacts>,
    /// Every `generation_shares` row for (this generation, the principal), active or not.
    pub shares: Vec<ShareFacts>,
}

/// A project and the teams linked to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectFacts {
    /// `projects.id`.
    pub id: ProjectId,
    /// `projects.user_id`.
    pub owner_id: UserId,
    /// `projects.visibility`.
    pub visibility: Visibility,
    /// Every `project_teams` row of the project, with the team and the principal's membership.
    pub teams: Vec<LinkedTeam>,
}

/// One `project_teams` link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedTeam {
    /// `project_teams.team_id`.
    pub team_id: TeamId,
    /// `project_teams.access_level`.
    pub access_level: AccessLevel,
    /// `teams.is_active` of the linked team.
    pub team_is_active: bool,
    /// The principal's `team_members` row in that team, if any.
    pub membership: Option<Membership>,
}

/// A `team_members` row of the principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// `team_members.role`.
    pub role: Role,
    /// `team_members.is_active`.
    pub is_active: bool,
}

/// A team asked about, and the principal's membership in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamFacts {
    /// `teams.is_active`.
    pub is_active: bool,
    /// The principal's `team_members` row, if any.
    pub membership: Option<Membership>,
}

/// A `generation_shares` row for the principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareFacts {
    /// `generation_shares.permission_level`.
    pub level: ShareLevel,
    /// `generation_shares.expires_at`.
    pub expires_at: Option<Timestamp>,
    /// `generation_shares.is_active`.
    pub is_active: bool,
}

impl ShareFacts {
    /// Whether the share counts at `now`: active, and unexpired (`now < expires_at`).
    pub fn is_valid_at(&self, now: Timestamp) -> bool {
        self.is_active && self.expires_at.is_none_or(|expires_at| now < expires_at)
    }
}

impl Facts {
    /// The ids whose change can change this decision: the principal, the resource, the
    /// generation's project and every linked team. An invalidation that names none of them
    /// leaves the decision valid. Sorted and de-duplicated.
    pub fn dependencies(&self, question: &Question) -> Vec<uuid::Uuid> {
        let mut ids = Vec::with_capacity(4);
        if let Some(user) = question.principal.user_id() {
            ids.push(*user.as_uuid());
        }
        ids.push(question.resource.id());
        let project = match &self.resource {
            Some(ResourceFacts::Generation(generation)) => generation.project.as_ref(),
            Some(ResourceFacts::Project(project)) => Some(project),
            Some(ResourceFacts::Team(_)) | None => None,
        };
        if let Some(project) = project {
            ids.push(*project.id.as_uuid());
            ids.extend(project.teams.iter().map(|team| *team.team_id.as_uuid()));
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}
