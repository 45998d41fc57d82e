//! `proptest` strategies for datasets and questions over a small universe of ids, so that
//! generated rows collide often enough to exercise every rule. Shared by the core's property
//! tests and the origin's differential tests (feature `proptest`).

use alloc::vec::Vec;

use proptest::prelude::*;

use crate::dataset::{
    Dataset, GenerationRow, ProjectRow, ProjectTeamRow, ShareRow, TeamMemberRow, TeamRow, UserRow,
};
use crate::id::{GenerationId, ProjectId, TeamId, UserId};
use crate::model::{
    AccessLevel, GenerationStatus, Operation, Principal, Role, ShareLevel, Visibility,
};
use crate::question::{Question, Resource};
use crate::time::Timestamp;

/// Users in the universe; the last index has no row unless generated.
pub const USERS: u8 = 5;
/// Teams in the universe.
pub const TEAMS: u8 = 3;
/// Projects in the universe.
pub const PROJECTS: u8 = 3;
/// Generations in the universe.
pub const GENERATIONS: u8 = 4;
/// The instant generated questions are asked at; share expiries fall around it.
pub const NOW: Timestamp = Timestamp::from_seconds(1_780_315_200);

fn id(prefix: u8, index: u8) -> uuid::Uuid {
    // `pp000000-0000-4000-8000-0000000000ii`: the corpus's readable version-4 layout.
    uuid::Uuid::from_u128(
        (u128::from(prefix) << 120)
            | (0x4000_u128 << 64)
            | (0x8000_u128 << 48)
            | (u128::from(index) + 1),
    )
}

/// The `index`-th user id of the universe.
pub fn user(index: u8) -> UserId {
    UserId::from_uuid(id(0xa0, index)).unwrap_or_else(|| unreachable!())
}
/// The `index`-th team id.
pub fn team(index: u8) -> TeamId {
    TeamId::from_uuid(id(0xb0, index)).unwrap_or_else(|| unreachable!())
}
/// The `index`-th project id.
pub fn project(index: u8) -> ProjectId {
    ProjectId::from_uuid(id(0xc0, index)).unwrap_or_else(|| unreachable!())
}
/// The `index`-th generation id.
pub fn generation(index: u8) -> GenerationId {
    GenerationId::from_uuid(id(0xd0, index)).unwrap_or_else(|| unreachable!())
}

/// Any value of a closed vocabulary.
pub fn one_of<T: Copy + core::fmt::Debug + 'static>(all: &'static [T]) -> impl Strategy<Value = T> {
    proptest::sample::select(all)
}

fn expiry() -> impl Strategy<Value = Option<Timestamp>> {
    prop_oneof![
        Just(None),
        Just(Some(NOW)),
        (-3_600i64..3_600).prop_map(|seconds| Some(Timestamp(NOW.0 + seconds * 1_000_000))),
        (-2i64..3).prop_map(|micros| Some(Timestamp(NOW.0 + micros))),
    ]
}

/// A dataset over the universe with referential integrity (the SQL loader can insert it).
pub fn dataset() -> impl Strategy<Value = Dataset> {
    let users = proptest::collection::vec(any::<bool>(), USERS as usize - 1);
    let teams = proptest::collection::vec(
        proptest::option::weighted(0.8, (0..USERS - 1, any::<bool>())),
        TEAMS as usize,
    );
    let members = proptest::collection::vec(
        (
            0..TEAMS,
            0..USERS - 1,
            one_of(Role::ALL),
            prop::bool::weighted(0.8),
        ),
        0..6,
    );
    let projects = proptest::collection::vec(
        proptest::option::weighted(0.85, (0..USERS - 1, one_of(Visibility::ALL))),
        PROJECTS as usize,
    );
    let links = proptest::collection::vec((0..PROJECTS, 0..TEAMS, one_of(AccessLevel::ALL)), 0..5);
    let generations = proptest::collection::vec(
        proptest::option::weighted(
            0.85,
            (
                0..USERS - 1,
                proptest::option::of(0..PROJECTS),
                one_of(GenerationStatus::ALL),
            ),
        ),
        GENERATIONS as usize,
    );
    let shares = proptest::collection::vec(
        (
            0..GENERATIONS,
            0..USERS - 1,
            one_of(ShareLevel::ALL),
            expiry(),
            prop::bool::weighted(0.8),
        ),
        0..5,
    );
    (users, teams, members, projects, links, generations, shares).prop_map(
        |(users, teams, members, projects, links, generations, shares)| {
            let mut data = Dataset {
                users: users
                    .iter()
                    .enumerate()
                    .map(|(index, &is_active)| UserRow {
                        id: user(index as u8),
                        is_active: is_active || index % 2 == 0,
                    })
                    .collect(),
                ..Dataset::default()
            };
            for (index, row) in teams.iter().enumerate() {
                if let Some((owner, is_active)) = row {
                    data.teams.push(TeamRow {
                        id: team(index as u8),
                        owner_id: user(*owner),
                        is_active: *is_active || index == 0,
                    });
                }
            }
            for (team_index, user_index, role, is_active) in members {
                let team_id = team(team_index);
                let user_id = user(user_index);
                if data.teams.iter().any(|row| row.id == team_id)
                    && !data
                        .team_members
                        .iter()
                        .any(|row| row.team_id == team_id && row.user_id == user_id)
                {
                    data.team_members.push(TeamMemberRow {
                        team_id,
                        user_id,
                        role,
                        is_active,
                    });
                }
            }
            for (index, row) in projects.iter().enumerate() {
                if let Some((owner, visibility)) = row {
                    data.projects.push(ProjectRow {
                        id: project(index as u8),
                        user_id: user(*owner),
                        visibility: *visibility,
                    });
                }
            }
            for (project_index, team_index, access_level) in links {
                let project_id = project(project_index);
                let team_id = team(team_index);
                let exists = data.projects.iter().any(|row| row.id == project_id)
                    && data.teams.iter().any(|row| row.id == team_id);
                let duplicate = data
                    .project_teams
                    .iter()
                    .any(|row| row.project_id == project_id && row.team_id == team_id);
                if exists && !duplicate {
                    data.project_teams.push(ProjectTeamRow {
                        project_id,
                        team_id,
                        access_level,
                    });
                }
            }
            for (index, row) in generations.iter().enumerate() {
                if let Some((owner, project_index, status)) = row {
                    let project_id = project_index
                        .map(project)
                        .filter(|id| data.projects.iter().any(|row| row.id == *id));
                    data.generations.push(GenerationRow {
                        id: generation(index as u8),
                        user_id: user(*owner),
                        project_id,
                        status: *status,
                    });
                }
            }
            for (generation_index, user_index, level, expires_at, is_active) in shares {
                let generation_id = generation(generation_index);
                if data.generations.iter().any(|row| row.id == generation_id) {
                    data.generation_shares.push(ShareRow {
                        generation_id,
                        shared_with_user_id: user(user_index),
                        permission_level: level,
                        expires_at,
                        is_active,
                    });
                }
            }
            data
        },
    )
}

/// A question over the universe: any principal (including one with no row and anonymous),
/// any resource (including missing ones), any operation.
pub fn question() -> impl Strategy<Value = Question> {
    let principal = prop_oneof![
        1 => Just(Principal::Anonymous),
        6 => (0..USERS).prop_map(|index| Principal::User(user(index))),
    ];
    let resource = prop_oneof![
        3 => (0..GENERATIONS + 1).prop_map(|index| Resource::Generation(generation(index))),
        2 => (0..PROJECTS + 1).prop_map(|index| Resource::Project(project(index))),
        1 => (0..TEAMS + 1).prop_map(|index| Resource::Team(team(index))),
    ];
    (principal, resource, one_of(Operation::ALL)).prop_map(|(principal, resource, operation)| {
        Question {
            principal,
            resource,
            operation,
        }
    })
}

/// Several questions.
pub fn questions(count: usize) -> impl Strategy<Value = Vec<Question>> {
    proptest::collection::vec(question(), count)
}
