//! The dataset's plan: the table sizes of a [`Scale`](crate::Scale), the vocabulary of names,
//! and the small tables (users, teams, memberships, projects, project-team links) drawn into
//! memory from the seed's random stream. It does no I/O: `load` streams the plan, and draws the
//! generations and shares from the stream state the plan leaves.

use authz_core::{AccessLevel, Role, Visibility};
use rand::rngs::SmallRng;
use rand::{Rng as _, RngCore as _};
use uuid::Uuid;

/// Base table sizes (see [`Scale`]).
pub(crate) struct Sizes {
    pub(crate) users: u32,
    pub(crate) teams: u32,
    pub(crate) projects: u32,
    pub(crate) generations: u32,
}

/// Words for team and project names (plain ASCII: nothing to escape in COPY text format).
pub(crate) const ADJECTIVES: [&str; 16] = [
    "Amber", "Bold", "Crimson", "Distant", "Electric", "Frozen", "Golden", "Hidden", "Indigo",
    "Jade", "Lunar", "Misty", "Neon", "Quiet", "Silver", "Velvet",
];
pub(crate) const TEAM_NOUNS: [&str; 16] = [
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
pub(crate) const PROJECT_NOUNS: [&str; 16] = [
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

pub(crate) struct TeamPlan {
    pub(crate) id: Uuid,
    pub(crate) owner: u32,
    pub(crate) active: bool,
    pub(crate) adjective: u8,
    pub(crate) noun: u8,
}

pub(crate) struct MemberPlan {
    pub(crate) id: Uuid,
    pub(crate) user: u32,
    pub(crate) role: Role,
    pub(crate) active: bool,
}

pub(crate) struct ProjectPlan {
    pub(crate) id: Uuid,
    pub(crate) owner: u32,
    pub(crate) visibility: Visibility,
    pub(crate) adjective: u8,
    pub(crate) noun: u8,
}

pub(crate) struct LinkPlan {
    pub(crate) id: Uuid,
    pub(crate) team: u32,
    pub(crate) level: AccessLevel,
}

/// Users, teams, memberships, projects and links: everything the streamed tables refer to.
/// Memberships and links are stored CSR-style: team `t`'s members are
/// `members[member_start[t]..member_start[t + 1]]` (the owner first), project `p`'s links
/// `links[link_start[p]..link_start[p + 1]]`.
pub(crate) struct Plan {
    pub(crate) user_ids: Vec<Uuid>,
    pub(crate) user_active: Vec<bool>,
    pub(crate) teams: Vec<TeamPlan>,
    pub(crate) member_start: Vec<usize>,
    pub(crate) members: Vec<MemberPlan>,
    pub(crate) projects: Vec<ProjectPlan>,
    pub(crate) link_start: Vec<usize>,
    pub(crate) links: Vec<LinkPlan>,
    /// Cumulative generation weights of the projects (heavy-tailed), for weighted picks.
    pub(crate) project_weight_cumulative: Vec<u64>,
}

impl Plan {
    pub(crate) fn build(sizes: &Sizes, rng: &mut SmallRng) -> Self {
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
    pub(crate) fn estimated_rows(&self, sizes: &Sizes) -> u64 {
        let shares = u64::from(sizes.generations) * 5 / 100 * 3 / 2;
        (self.user_ids.len() + self.teams.len() + self.members.len()) as u64
            + (self.projects.len() + self.links.len()) as u64
            + u64::from(sizes.generations)
            + shares
    }

    pub(crate) fn members_of(&self, team: usize) -> &[MemberPlan] {
        &self.members[self.member_start[team]..self.member_start[team + 1]]
    }

    pub(crate) fn links_of(&self, project: usize) -> &[LinkPlan] {
        &self.links[self.link_start[project]..self.link_start[project + 1]]
    }

    /// A project index drawn with the projects' generation weights.
    pub(crate) fn weighted_project(&self, rng: &mut SmallRng) -> usize {
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
pub(crate) struct SharedGeneration {
    pub(crate) id: Uuid,
    pub(crate) owner: u32,
    pub(crate) recipients: u8,
}

/// A version-4 UUID from 16 bytes of `rng` (version and variant bits set: never nil or max).
pub(crate) fn random_uuid(rng: &mut SmallRng) -> Uuid {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// True with probability `per_mille / 1000`.
pub(crate) fn per_mille(rng: &mut SmallRng, per_mille: u32) -> bool {
    rng.random_range(0..1000u32) < per_mille
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng as _;

    use super::*;
    use crate::Scale;

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
