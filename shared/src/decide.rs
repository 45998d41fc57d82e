//! The decision function: DOMAIN.md's rules applied to one question and its facts.
//!
//! `decide` always answers (never a `Result`, never a panic): facts that do not fit the
//! question deny with `resource_not_found`. Only parsing at the boundary (`Question::parse`)
//! returns errors. Time comes in as a parameter.

use serde::{Deserialize, Serialize};

use crate::facts::{Facts, LinkedTeam, ProjectFacts, ResourceFacts, ShareFacts};
use crate::model::{
    AccessMethod, DenyReason, GenerationStatus, Operation, Principal, Role, ShareLevel, Visibility,
};
use crate::question::Question;
use crate::time::Timestamp;

/// The answer to a question (API.md's decision object, less the transport's `ttl_ms` and
/// `source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Whether the operation is allowed.
    pub granted: bool,
    /// The strongest method that grants, on a grant.
    pub access_method: Option<AccessMethod>,
    /// That method's role, on a grant.
    pub effective_role: Option<Role>,
    /// Why not, on a deny.
    pub reason: Option<DenyReason>,
    /// The data revision the facts were read at.
    pub revision: u64,
    /// When the grant rests on a share: the share's expiry. `None` otherwise.
    pub valid_until: Option<Timestamp>,
    /// The earliest instant after `now` at which the same facts could give another answer
    /// (the next expiry of an active share). Caches must not keep the decision past it. Not
    /// part of the wire object.
    #[serde(skip)]
    pub changes_at: Option<Timestamp>,
}

impl Decision {
    /// A deny for `reason` at `revision`.
    pub const fn deny(reason: DenyReason, revision: u64, changes_at: Option<Timestamp>) -> Self {
        Self {
            granted: false,
            access_method: None,
            effective_role: None,
            reason: Some(reason),
            revision,
            valid_until: None,
            changes_at,
        }
    }
}

/// What one rule offers the principal.
#[derive(Debug, Clone, Copy)]
enum Capability {
    /// Whatever the role allows.
    Role,
    /// What the share level allows.
    Share(ShareLevel),
    /// Reads only.
    PublicRead,
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    method: AccessMethod,
    role: Role,
    capability: Capability,
    valid_until: Option<Timestamp>,
}

impl Candidate {
    fn allows(&self, operation: Operation) -> bool {
        match self.capability {
            Capability::Role => self.role.allows(operation),
            Capability::Share(level) => level.allows(operation),
            Capability::PublicRead => operation == Operation::Read,
        }
    }

    /// Whether `self` should be reported rather than `other`: a stronger method; for the same
    /// method a stronger role; then the later expiry (`None` never expires).
    fn beats(&self, other: &Self) -> bool {
        use core::cmp::Ordering;
        match self.method.cmp(&other.method) {
            Ordering::Less => true,
            Ordering::Greater => false,
            Ordering::Equal => match self.role.cmp(&other.role) {
                Ordering::Greater => true,
                Ordering::Less => false,
                Ordering::Equal => match (self.valid_until, other.valid_until) {
                    (None, Some(_)) => true,
                    (Some(mine), Some(theirs)) => mine > theirs,
                    (_, None) => false,
                },
            },
        }
    }
}

/// Collects what the rules offer, then answers.
struct Evaluation {
    operation: Operation,
    now: Timestamp,
    best: Option<Candidate>,
    holds_role: bool,
    has_expired_share: bool,
    changes_at: Option<Timestamp>,
}

impl Evaluation {
    const fn new(operation: Operation, now: Timestamp) -> Self {
        Self {
            operation,
            now,
            best: None,
            holds_role: false,
            has_expired_share: false,
            changes_at: None,
        }
    }

    fn offer(&mut self, candidate: Candidate) {
        if candidate.method != AccessMethod::PublicAccess {
            self.holds_role = true;
        }
        if candidate.allows(self.operation)
            && self.best.as_ref().is_none_or(|best| candidate.beats(best))
        {
            self.best = Some(candidate);
        }
    }

    fn offer_role(&mut self, method: AccessMethod, role: Role) {
        self.offer(Candidate {
            method,
            role,
            capability: Capability::Role,
            valid_until: None,
        });
    }

    /// Team access through a project: only for `team-only` and `public` projects, only for
    /// active teams and active memberships, the role capped by the link's level.
    fn offer_project_teams(&mut self, project: &ProjectFacts) {
        if project.visibility == Visibility::Private {
            return;
        }
        for LinkedTeam {
            access_level,
            team_is_active,
            membership,
            ..
        } in &project.teams
        {
            if let Some(membership) = membership.filter(|m| m.is_active && *team_is_active) {
                let role = membership.role.min(access_level.role_cap());
                self.offer_role(AccessMethod::TeamMember, role);
            }
        }
    }

    fn offer_shares(&mut self, shares: &[ShareFacts]) {
        for share in shares.iter().filter(|share| share.is_active) {
            if share.is_valid_at(self.now) {
                if let Some(expires_at) = share.expires_at {
                    self.changes_at =
                        Some(self.changes_at.map_or(expires_at, |t| t.min(expires_at)));
                }
                self.offer(Candidate {
                    method: AccessMethod::ExplicitShare,
                    role: share.level.role(),
                    capability: Capability::Share(share.level),
                    valid_until: share.expires_at,
                });
            } else {
                self.has_expired_share = true;
            }
        }
    }

    fn offer_public_read(&mut self) {
        self.offer(Candidate {
            method: AccessMethod::PublicAccess,
            role: Role::Viewer,
            capability: Capability::PublicRead,
            valid_until: None,
        });
    }

    fn finish(self, principal: Principal, revision: u64) -> Decision {
        if let Some(best) = self.best {
            return Decision {
                granted: true,
                access_method: Some(best.method),
                effective_role: Some(best.role),
                reason: None,
                revision,
                valid_until: best.valid_until,
                changes_at: self.changes_at,
            };
        }
        let reason = if principal == Principal::Anonymous {
            DenyReason::AnonymousNotAllowed
        } else if self.holds_role {
            DenyReason::InsufficientRole
        } else if self.has_expired_share {
            DenyReason::ShareExpired
        } else {
            DenyReason::NoRelationship
        };
        Decision::deny(reason, revision, self.changes_at)
    }
}

/// Decides `question` on `facts` at `now` (DOMAIN.md, Rules). Never fails.
pub fn decide(question: &Question, facts: &Facts, now: Timestamp) -> Decision {
    let revision = facts.revision;
    let user = question.principal.user_id();
    if user.is_some() {
        match facts.user {
            None => return Decision::deny(DenyReason::UserNotFound, revision, None),
            Some(row) if !row.is_active => {
                return Decision::deny(DenyReason::UserInactive, revision, None);
            }
            Some(_) => {}
        }
    }
    let resource = match &facts.resource {
        Some(resource) if resource.resource_type() == question.resource.resource_type() => resource,
        // Facts about another kind of resource than asked are a caller's bug: fail closed.
        Some(_) | None => return Decision::deny(DenyReason::ResourceNotFound, revision, None),
    };
    let mut evaluation = Evaluation::new(question.operation, now);
    match resource {
        ResourceFacts::Generation(generation) => {
            let project = generation.project.as_ref();
            if user.is_some() {
                if user == Some(generation.owner_id) {
                    evaluation.offer_role(AccessMethod::DirectOwner, Role::Owner);
                }
                if let Some(project) = project {
                    if user == Some(project.owner_id) {
                        evaluation.offer_role(AccessMethod::ProjectOwner, Role::Owner);
                    }
                    evaluation.offer_project_teams(project);
                }
                evaluation.offer_shares(&generation.shares);
            }
            if project.is_some_and(|p| p.visibility == Visibility::Public)
                && generation.status == GenerationStatus::Completed
            {
                evaluation.offer_public_read();
            }
        }
        ResourceFacts::Project(project) => {
            if user.is_some() {
                if user == Some(project.owner_id) {
                    evaluation.offer_role(AccessMethod::DirectOwner, Role::Owner);
                }
                evaluation.offer_project_teams(project);
            }
            if project.visibility == Visibility::Public {
                evaluation.offer_public_read();
            }
        }
        ResourceFacts::Team(team) => {
            let membership = team.membership.filter(|m| m.is_active && team.is_active);
            if let (Some(membership), Some(_)) = (membership, user) {
                let method = if membership.role == Role::Owner {
                    AccessMethod::TeamOwner
                } else {
                    AccessMethod::TeamMember
                };
                evaluation.offer_role(method, membership.role);
            }
        }
    }
    evaluation.finish(question.principal, revision)
}
