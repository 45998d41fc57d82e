//! What is asked: a [`Question`] (principal, resource, operation) about a [`Resource`], and
//! their parsing from wire fields. The facts, the rules and the cache formats all name them;
//! this module depends on none of those.

use crate::error::ParseError;
use crate::id::{GenerationId, ProjectId, TeamId};
use crate::model::{Operation, Principal, ResourceType};

/// A resource named by type and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// A generation.
    Generation(GenerationId),
    /// A project.
    Project(ProjectId),
    /// A team.
    Team(TeamId),
}

impl Resource {
    /// Parses a resource from its wire type and id.
    pub fn parse(resource_type: &str, resource_id: &str) -> Result<Self, ParseError> {
        let resource_type = ResourceType::parse(resource_type, "resource_type")?;
        Self::from_parts(resource_type, resource_id)
    }

    /// Builds a resource of a known type from its wire id.
    pub fn from_parts(resource_type: ResourceType, resource_id: &str) -> Result<Self, ParseError> {
        const FIELD: &str = "resource_id";
        Ok(match resource_type {
            ResourceType::Generation => Self::Generation(GenerationId::parse(resource_id, FIELD)?),
            ResourceType::Project => Self::Project(ProjectId::parse(resource_id, FIELD)?),
            ResourceType::Team => Self::Team(TeamId::parse(resource_id, FIELD)?),
        })
    }

    /// The resource's type.
    pub const fn resource_type(&self) -> ResourceType {
        match self {
            Self::Generation(_) => ResourceType::Generation,
            Self::Project(_) => ResourceType::Project,
            Self::Team(_) => ResourceType::Team,
        }
    }

    /// The resource's id.
    pub const fn id(&self) -> uuid::Uuid {
        match self {
            Self::Generation(id) => *id.as_uuid(),
            Self::Project(id) => *id.as_uuid(),
            Self::Team(id) => *id.as_uuid(),
        }
    }
}

/// May `principal` perform `operation` on `resource`?
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Question {
    /// Who asks.
    pub principal: Principal,
    /// About what.
    pub resource: Resource,
    /// To do what.
    pub operation: Operation,
}

impl Question {
    /// Parses a question from its wire fields (`user_id` null is anonymous), checking them in
    /// the order `user_id`, `resource_type`, `resource_id`, `operation`.
    pub fn parse(
        user_id: Option<&str>,
        resource_type: &str,
        resource_id: &str,
        operation: &str,
    ) -> Result<Self, ParseError> {
        let principal = Principal::parse(user_id, "user_id")?;
        let resource = Resource::parse(resource_type, resource_id)?;
        let operation = Operation::parse(operation, "operation")?;
        Ok(Self {
            principal,
            resource,
            operation,
        })
    }
}
