//! The naive baseline: what a decision costs in the "before" design of the deployment guide
//! ("multiple sequential queries per authorization", no cache). Over one plain connection, one
//! `SELECT` per table the question touches, each waiting for the previous one: `users`,
//! `generations`, `projects`, `project_teams` (joined to `teams` for their active flag),
//! `team_members`, `generation_shares`: up to six round trips for a generation in a project,
//! four for a project, three for a team. Its statements are prepared once per connection, so
//! each query costs one round trip and a comparison measures the design (round trips and
//! caching), not statement parsing. It decides with the same `authz_core::decide`, so its
//! answers must equal the service's: otherwise the two would not be doing the same work.
//!
//! `authz-validate` runs it on one kept connection; `authz-bench naive` opens a new connection
//! per question (no pool either).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use authz_core::facts::{
    Facts, GenerationFacts, LinkedTeam, Membership, ProjectFacts, ResourceFacts, ShareFacts,
    TeamFacts, UserFacts,
};
use authz_core::{
    AccessLevel, GenerationStatus, Principal, ProjectId, Resource, ResourceType, Role, ShareLevel,
    TeamId, Timestamp, UserId, Visibility, decide,
};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement};
use uuid::Uuid;

use crate::questions::Question;

/// The naive baseline's prepared statements.
pub struct Naive {
    user: Statement,
    generation: Statement,
    project: Statement,
    project_teams: Statement,
    memberships: Statement,
    shares: Statement,
    team: Statement,
    membership: Statement,
    /// Queries run, to report the round trips per question.
    queries: AtomicUsize,
}

impl Naive {
    /// Prepares the statements on `client` (each later query then costs one round trip).
    pub async fn prepare(client: &Client) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            user: client
                .prepare("SELECT is_active FROM users WHERE id = $1")
                .await?,
            generation: client
                .prepare("SELECT user_id, project_id, status FROM generations WHERE id = $1")
                .await?,
            project: client
                .prepare("SELECT user_id, visibility FROM projects WHERE id = $1")
                .await?,
            project_teams: client
                .prepare(
                    "SELECT pt.team_id, pt.access_level, t.is_active FROM project_teams pt \
                       JOIN teams t ON t.id = pt.team_id WHERE pt.project_id = $1",
                )
                .await?,
            memberships: client
                .prepare(
                    "SELECT team_id, role, is_active FROM team_members \
                      WHERE user_id = $1 AND team_id = ANY($2)",
                )
                .await?,
            shares: client
                .prepare(
                    "SELECT permission_level, expires_at, is_active FROM generation_shares \
                      WHERE generation_id = $1 AND shared_with_user_id = $2",
                )
                .await?,
            team: client
                .prepare("SELECT is_active FROM teams WHERE id = $1")
                .await?,
            membership: client
                .prepare(
                    "SELECT role, is_active FROM team_members WHERE team_id = $1 AND user_id = $2",
                )
                .await?,
            queries: AtomicUsize::new(0),
        })
    }

    /// The queries run so far (to report the round trips per question).
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::Relaxed)
    }

    async fn one(
        &self,
        client: &Client,
        statement: &Statement,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, String> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        client
            .query_opt(statement, params)
            .await
            .map_err(|error| error.to_string())
    }

    async fn many(
        &self,
        client: &Client,
        statement: &Statement,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, String> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        client
            .query(statement, params)
            .await
            .map_err(|error| error.to_string())
    }

    async fn project(
        &self,
        client: &Client,
        project: Uuid,
        user: Option<Uuid>,
    ) -> Result<Option<ProjectFacts>, String> {
        let Some(row) = self.one(client, &self.project, &[&project]).await? else {
            return Ok(None);
        };
        let links = self.many(client, &self.project_teams, &[&project]).await?;
        let team_ids: Vec<Uuid> = links.iter().map(|link| link.get(0)).collect();
        let memberships = match user {
            Some(user) if !team_ids.is_empty() => {
                self.many(client, &self.memberships, &[&user, &team_ids])
                    .await?
            }
            _ => Vec::new(),
        };
        let mut teams = Vec::with_capacity(links.len());
        for link in links {
            let team_id: Uuid = link.get(0);
            let membership = memberships
                .iter()
                .find(|row| row.get::<_, Uuid>(0) == team_id)
                .map(|row| -> Result<Membership, String> {
                    Ok(Membership {
                        role: parse(Role::parse(row.get(1), "role"))?,
                        is_active: row.get(2),
                    })
                })
                .transpose()?;
            teams.push(LinkedTeam {
                team_id: id(TeamId::from_uuid(team_id))?,
                access_level: parse(AccessLevel::parse(link.get(1), "access_level"))?,
                team_is_active: link.get(2),
                membership,
            });
        }
        Ok(Some(ProjectFacts {
            id: id(ProjectId::from_uuid(project))?,
            owner_id: id(UserId::from_uuid(row.get(0)))?,
            visibility: parse(Visibility::parse(row.get(1), "visibility"))?,
            teams,
        }))
    }

    /// The facts of `question`, one sequential query at a time.
    async fn facts(&self, client: &Client, question: &Question) -> Result<Facts, String> {
        let user = match question.user_id {
            Some(user) => self
                .one(client, &self.user, &[&user])
                .await?
                .map(|row| UserFacts {
                    is_active: row.get(0),
                }),
            None => None,
        };
        let resource = match question.resource_type {
            ResourceType::Generation => {
                match self
                    .one(client, &self.generation, &[&question.resource_id])
                    .await?
                {
                    None => None,
                    Some(row) => {
                        let project_id: Option<Uuid> = row.get(1);
                        let project = match project_id {
                            Some(project) => {
                                self.project(client, project, question.user_id).await?
                            }
                            None => None,
                        };
                        let shares = match question.user_id {
                            Some(user) => self
                                .many(client, &self.shares, &[&question.resource_id, &user])
                                .await?
                                .iter()
                                .map(|share| -> Result<ShareFacts, String> {
                                    Ok(ShareFacts {
                                        level: parse(ShareLevel::parse(
                                            share.get(0),
                                            "permission_level",
                                        ))?,
                                        expires_at: share
                                            .get::<_, Option<SystemTime>>(1)
                                            .map(timestamp),
                                        is_active: share.get(2),
                                    })
                                })
                                .collect::<Result<_, _>>()?,
                            None => Vec::new(),
                        };
                        Some(ResourceFacts::Generation(GenerationFacts {
                            owner_id: id(UserId::from_uuid(row.get(0)))?,
                            status: parse(GenerationStatus::parse(row.get(2), "status"))?,
                            project,
                            shares,
                        }))
                    }
                }
            }
            ResourceType::Project => self
                .project(client, question.resource_id, question.user_id)
                .await?
                .map(ResourceFacts::Project),
            ResourceType::Team => {
                match self
                    .one(client, &self.team, &[&question.resource_id])
                    .await?
                {
                    None => None,
                    Some(row) => {
                        let membership = match question.user_id {
                            Some(user) => self
                                .one(client, &self.membership, &[&question.resource_id, &user])
                                .await?
                                .map(|row| -> Result<Membership, String> {
                                    Ok(Membership {
                                        role: parse(Role::parse(row.get(0), "role"))?,
                                        is_active: row.get(1),
                                    })
                                })
                                .transpose()?,
                            None => None,
                        };
                        Some(ResourceFacts::Team(TeamFacts {
                            is_active: row.get(0),
                            membership,
                        }))
                    }
                }
            }
        };
        Ok(Facts {
            revision: 0,
            user,
            resource,
        })
    }

    /// The baseline's answer to `question` at `now`: `granted`.
    pub async fn decide(
        &self,
        client: &Client,
        question: &Question,
        now: Timestamp,
    ) -> Result<bool, String> {
        let facts = self.facts(client, question).await?;
        let principal = match question.user_id {
            Some(user) => Principal::User(id(UserId::from_uuid(user))?),
            None => Principal::Anonymous,
        };
        let resource =
            Resource::from_parts(question.resource_type, &question.resource_id.to_string())
                .map_err(|_| "a sampled resource id is not a valid uuid".to_owned())?;
        let core_question = authz_core::Question {
            principal,
            resource,
            operation: question.operation,
        };
        Ok(decide(&core_question, &facts, now).granted)
    }
}

fn parse<T>(value: Result<T, authz_core::ParseError>) -> Result<T, String> {
    value.map_err(|_| "the database holds a value outside the domain's vocabulary".to_owned())
}

fn id<T>(value: Option<T>) -> Result<T, String> {
    value.ok_or_else(|| "the database holds a nil or max uuid".to_owned())
}

/// An instant of the system clock (or of a `timestamptz`) in the core's representation.
pub fn timestamp(at: SystemTime) -> Timestamp {
    let micros = match at.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_micros()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_micros()).unwrap_or(i64::MAX),
    };
    Timestamp::from_micros(micros)
}
