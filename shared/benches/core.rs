//! Benchmarks of the decision core, with Cedar as a baseline on the same questions and facts.
//!
//! What it measures, all on prebuilt inputs (nothing is loaded or parsed inside the loop):
//!
//! - `decide/<path>`: [`decide`] on [`Facts`] built once from one in-memory dataset, one
//!   question per rule path (owner, project owner, team member through three linked teams,
//!   explicit share, anonymous public read, a `no_relationship` deny, a team resource and a
//!   project resource).
//! - `cedar/<path>`: `Authorizer::is_authorized` answering the same question, with the rules of
//!   DOMAIN.md written as a Cedar policy set ([`POLICIES`]) and the same facts translated to
//!   Cedar entities and context ([`cedar_question`]). Before anything is timed, Cedar's
//!   allow/deny is asserted equal to `decide(..).granted` for every benched path and for every
//!   case of the decision corpus (`tests/corpus/*.json`), so both sides answer the same thing,
//!   and no policy may error on a benched path (Cedar's error path is not what we time).
//! - `uuid/parse/{lower,upper}`, `cache/{key,encode,decode}` and `jwt/verify`: the other hot
//!   formats of a request.
//!
//! Run it with:
//!
//! ```text
//! cargo bench -p authz-core --bench core
//! ```
//!
//! Measurement is kept short (1 s warm-up, 3 s, 50 samples per benchmark) so the whole run
//! takes about two minutes on a small machine.

use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::time::Duration;

use authz_core::cache::{CacheEntry, CacheKey, TtlPolicy};
use authz_core::dataset::{CorpusFile, Dataset};
use authz_core::decide::{Decision, decide};
use authz_core::facts::{Facts, LinkedTeam, ProjectFacts, ResourceFacts, ShareFacts};
use authz_core::id::{TeamId, parse_uuid};
use authz_core::jwt::{JwtConfig, JwtKey, sign_hs256, verify};
use authz_core::model::{AccessLevel, AccessMethod, DenyReason, Principal, Role, ShareLevel};
use authz_core::question::{Question, Resource};
use authz_core::time::Timestamp;
use cedar_policy::{
    Authorizer, Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicySet, Request,
    Response, RestrictedExpression,
};
use criterion::{BenchmarkId, Criterion};

/// The instant every question is asked at.
const NOW: &str = "2026-06-01T12:00:00Z";
/// The data revision the facts are read at.
const REVISION: u64 = 42;

const ALICE: &str = "a0000000-0000-4000-8000-000000000001"; // owns the generation
const BOB: &str = "a0000000-0000-4000-8000-000000000002"; // owns the project
const CAROL: &str = "a0000000-0000-4000-8000-000000000003"; // in 2 of the 3 linked teams
const DAVE: &str = "a0000000-0000-4000-8000-000000000004"; // holds shares on the generation
const ERIN: &str = "a0000000-0000-4000-8000-000000000005"; // a stranger
const FRANK: &str = "a0000000-0000-4000-8000-000000000006"; // owns team 1
const GRACE: &str = "a0000000-0000-4000-8000-000000000007"; // owns team 2
const HEIDI: &str = "a0000000-0000-4000-8000-000000000008"; // owns team 3
const TEAM_1: &str = "b0000000-0000-4000-8000-000000000001";
const TEAM_2: &str = "b0000000-0000-4000-8000-000000000002";
const TEAM_3: &str = "b0000000-0000-4000-8000-000000000003";
const PROJECT: &str = "c0000000-0000-4000-8000-000000000001";
const GENERATION: &str = "d0000000-0000-4000-8000-000000000001";

/// The rows every benched question reads: a public project owned by Bob with three linked
/// teams (levels read, write, admin), Carol a viewer of team 1 and an admin of team 2 (so her
/// best capped role is editor, through team 2), Alice's completed generation in that project,
/// and Dave holding an expired `read` share and a live `edit` share on it.
fn world() -> Dataset {
    let users = [ALICE, BOB, CAROL, DAVE, ERIN, FRANK, GRACE, HEIDI]
        .map(|id| serde_json::json!({ "id": id, "is_active": true }));
    let data = serde_json::json!({
        "users": users,
        "teams": [
            { "id": TEAM_1, "owner_id": FRANK },
            { "id": TEAM_2, "owner_id": GRACE },
            { "id": TEAM_3, "owner_id": HEIDI },
        ],
        "team_members": [
            { "team_id": TEAM_1, "user_id": CAROL, "role": "viewer" },
            { "team_id": TEAM_2, "user_id": CAROL, "role": "admin" },
        ],
        "projects": [{ "id": PROJECT, "user_id": BOB, "visibility": "public" }],
        "project_teams": [
            { "project_id": PROJECT, "team_id": TEAM_1, "access_level": "read" },
            { "project_id": PROJECT, "team_id": TEAM_2, "access_level": "write" },
            { "project_id": PROJECT, "team_id": TEAM_3, "access_level": "admin" },
        ],
        "generations": [
            { "id": GENERATION, "user_id": ALICE, "project_id": PROJECT, "status": "completed" },
        ],
        "generation_shares": [
            {
                "generation_id": GENERATION, "shared_with_user_id": DAVE,
                "permission_level": "read", "expires_at": "2026-05-01T00:00:00Z",
            },
            {
                "generation_id": GENERATION, "shared_with_user_id": DAVE,
                "permission_level": "edit", "expires_at": "2026-07-01T00:00:00Z",
            },
        ],
    });
    serde_json::from_value(data).expect("the benchmark dataset deserializes")
}

/// One benched rule path: a question and the answer `decide` must give.
struct PathSpec {
    name: &'static str,
    user: Option<&'static str>,
    resource_type: &'static str,
    resource_id: &'static str,
    operation: &'static str,
    expected: Result<AccessMethod, DenyReason>,
}

const PATHS: [PathSpec; 8] = [
    PathSpec {
        name: "direct_owner",
        user: Some(ALICE),
        resource_type: "generation",
        resource_id: GENERATION,
        operation: "delete",
        expected: Ok(AccessMethod::DirectOwner),
    },
    PathSpec {
        name: "project_owner",
        user: Some(BOB),
        resource_type: "generation",
        resource_id: GENERATION,
        operation: "share",
        expected: Ok(AccessMethod::ProjectOwner),
    },
    PathSpec {
        name: "team_member",
        user: Some(CAROL),
        resource_type: "generation",
        resource_id: GENERATION,
        operation: "write",
        expected: Ok(AccessMethod::TeamMember),
    },
    PathSpec {
        name: "explicit_share",
        user: Some(DAVE),
        resource_type: "generation",
        resource_id: GENERATION,
        operation: "download",
        expected: Ok(AccessMethod::ExplicitShare),
    },
    PathSpec {
        name: "public_access",
        user: None,
        resource_type: "generation",
        resource_id: GENERATION,
        operation: "read",
        expected: Ok(AccessMethod::PublicAccess),
    },
    PathSpec {
        name: "no_relationship",
        user: Some(ERIN),
        resource_type: "generation",
        resource_id: GENERATION,
        operation: "write",
        expected: Err(DenyReason::NoRelationship),
    },
    PathSpec {
        name: "team_owner",
        user: Some(FRANK),
        resource_type: "team",
        resource_id: TEAM_1,
        operation: "admin",
        expected: Ok(AccessMethod::TeamOwner),
    },
    PathSpec {
        name: "project_team_member",
        user: Some(CAROL),
        resource_type: "project",
        resource_id: PROJECT,
        operation: "write",
        expected: Ok(AccessMethod::TeamMember),
    },
];

/// A benched path with everything prebuilt: the facts, `decide`'s answer and the Cedar request.
struct Path {
    name: &'static str,
    question: Question,
    facts: Facts,
    decision: Decision,
    cedar: CedarQuestion,
}

fn now() -> Timestamp {
    Timestamp::parse_rfc3339(NOW, "now").expect("NOW is RFC 3339")
}

/// Builds every path and checks that `decide` takes the intended rule and that Cedar agrees.
fn paths(dataset: &Dataset, cedar: &Cedar) -> Vec<Path> {
    let now = now();
    PATHS
        .iter()
        .map(|spec| {
            let question = Question::parse(
                spec.user,
                spec.resource_type,
                spec.resource_id,
                spec.operation,
            )
            .expect("benchmark questions are valid");
            let facts = dataset.facts(&question, REVISION);
            let decision = decide(&question, &facts, now);
            let got = decision.access_method.ok_or(decision.reason);
            assert_eq!(
                got,
                spec.expected.map_err(Some),
                "decide/{} does not take the intended path: {decision:?}",
                spec.name
            );
            let cedar_question = cedar_question(&question, &facts, now);
            let response = cedar.authorize(&cedar_question);
            assert_eq!(
                response.decision() == cedar_policy::Decision::Allow,
                decision.granted,
                "cedar/{} disagrees with decide",
                spec.name
            );
            // An erroring policy would time Cedar's error path, not its evaluation.
            let errors: Vec<String> = response
                .diagnostics()
                .errors()
                .map(ToString::to_string)
                .collect();
            assert!(errors.is_empty(), "cedar/{}: {errors:?}", spec.name);
            Path {
                name: spec.name,
                question,
                facts,
                decision,
                cedar: cedar_question,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The Cedar model of DOMAIN.md.
// ---------------------------------------------------------------------------------------------

/// DOMAIN.md's rules as Cedar policies.
///
/// Entities (built from [`Facts`] by [`cedar_question`]):
///
/// - `User` { active }, its parents the `TeamRole` groups of its active memberships. A user with
///   no row has no entity: every permit reads `principal.active`, which then errors, and Cedar
///   skips a policy that errors, so the answer is deny (rule 1, like an inactive user).
/// - `TeamRole::"<team>#<role>"`: one group per team and role, nested owner ⊂ admin ⊂ editor ⊂
///   viewer, so `principal in T#editor` means "an active member of T with role ≥ editor".
/// - `Team` { active, owners, admins, editors, viewers } (the team's four groups).
/// - `Project` { owner, visibility, viewer_teams, editor_teams, admin_teams }: for each link to
///   an active team at level L, the groups whose members get at least that role once capped by
///   L (`read` → viewer; `write` → viewer, editor; `admin` → viewer, editor, admin).
/// - `Generation` { owner, status, project? }.
/// - Anonymous principals are `Anonymous::"anonymous"`, which has no entity.
/// - Context: `now` (µs since the epoch) and the principal's shares on the generation,
///   `share_read` / `share_download` / `share_edit` = { expires_at? (µs) }, present when an
///   active share of that level exists (the longest-lived one).
///
/// Cedar has no quantifiers over sets, so the two "is active" flags of a relationship
/// (`team_members.is_active`, and `teams.is_active` of a linked team) and `generation_shares
/// .is_active` decide whether the edge or context entry exists at all, as a Cedar entity loader
/// would; everything else (visibility, status, roles, caps, expiry, the team's own `active`) is
/// evaluated by the policies. Cedar answers allow/deny only: no method, role or deny reason.
const POLICIES: &str = r#"
// Generations: the owner and the project's owner may do anything.
@id("generation_owner")
permit (principal is User, action, resource is Generation)
when { principal.active && resource.owner == principal };

@id("generation_project_owner")
permit (principal is User, action, resource is Generation)
when { principal.active && resource has project && resource.project.owner == principal };

// Generations: members of active teams linked to a team-only or public project, capped.
@id("generation_team_viewer")
permit (principal is User, action == Action::"read", resource is Generation)
when {
  principal.active && resource has project && resource.project.visibility != "private" &&
  principal in resource.project.viewer_teams
};

@id("generation_team_editor")
permit (principal is User, action in [Action::"download", Action::"write"], resource is Generation)
when {
  principal.active && resource has project && resource.project.visibility != "private" &&
  principal in resource.project.editor_teams
};

@id("generation_team_admin")
permit (principal is User, action in [Action::"delete", Action::"share"], resource is Generation)
when {
  principal.active && resource has project && resource.project.visibility != "private" &&
  principal in resource.project.admin_teams
};

// Generations: unexpired explicit shares.
@id("generation_share_read")
permit (principal is User, action == Action::"read", resource is Generation)
when {
  principal.active && context has share_read &&
  (!(context.share_read has expires_at) || context.now < context.share_read.expires_at)
};

@id("generation_share_download")
permit (principal is User, action in [Action::"read", Action::"download"], resource is Generation)
when {
  principal.active && context has share_download &&
  (!(context.share_download has expires_at) || context.now < context.share_download.expires_at)
};

@id("generation_share_edit")
permit (
  principal is User,
  action in [Action::"read", Action::"download", Action::"write"],
  resource is Generation
)
when {
  principal.active && context has share_edit &&
  (!(context.share_edit has expires_at) || context.now < context.share_edit.expires_at)
};

// Generations: anyone may read a completed generation of a public project.
@id("generation_public")
permit (principal, action == Action::"read", resource is Generation)
when {
  (principal is Anonymous || principal.active) && resource has project &&
  resource.project.visibility == "public" && resource.status == "completed"
};

// Projects: the owner; members of linked active teams (team-only or public), capped; public reads.
@id("project_owner")
permit (principal is User, action, resource is Project)
when { principal.active && resource.owner == principal };

@id("project_team_viewer")
permit (principal is User, action == Action::"read", resource is Project)
when {
  principal.active && resource.visibility != "private" && principal in resource.viewer_teams
};

@id("project_team_editor")
permit (principal is User, action in [Action::"download", Action::"write"], resource is Project)
when {
  principal.active && resource.visibility != "private" && principal in resource.editor_teams
};

@id("project_team_admin")
permit (principal is User, action in [Action::"delete", Action::"share"], resource is Project)
when {
  principal.active && resource.visibility != "private" && principal in resource.admin_teams
};

@id("project_public")
permit (principal, action == Action::"read", resource is Project)
when { (principal is Anonymous || principal.active) && resource.visibility == "public" };

// Teams: active members of an active team, by role.
@id("team_viewer")
permit (principal is User, action == Action::"read", resource is Team)
when { principal.active && resource.active && principal in resource.viewers };

@id("team_editor")
permit (principal is User, action in [Action::"download", Action::"write"], resource is Team)
when { principal.active && resource.active && principal in resource.editors };

@id("team_admin")
permit (principal is User, action in [Action::"delete", Action::"share"], resource is Team)
when { principal.active && resource.active && principal in resource.admins };

@id("team_owner")
permit (principal is User, action == Action::"admin", resource is Team)
when { principal.active && resource.active && principal in resource.owners };
"#;

/// The parsed policy set and an authorizer.
struct Cedar {
    policies: PolicySet,
    authorizer: Authorizer,
}

impl Cedar {
    fn new() -> Self {
        Self {
            policies: POLICIES.parse().expect("the Cedar policies parse"),
            authorizer: Authorizer::new(),
        }
    }

    fn authorize(&self, question: &CedarQuestion) -> Response {
        self.authorizer
            .is_authorized(&question.request, &self.policies, &question.entities)
    }

    fn allows(&self, question: &CedarQuestion) -> bool {
        self.authorize(question).decision() == cedar_policy::Decision::Allow
    }
}

/// A question in Cedar's terms: the request (with its context) and the entities it reads.
struct CedarQuestion {
    request: Request,
    entities: Entities,
}

/// The roles, weakest first, as nested `TeamRole` groups.
const ROLES: [Role; 4] = [Role::Viewer, Role::Editor, Role::Admin, Role::Owner];

fn uid(type_name: &str, id: &str) -> EntityUid {
    let type_name: EntityTypeName = type_name.parse().expect("a valid Cedar type name");
    EntityUid::from_type_name_and_id(type_name, EntityId::new(id))
}

fn team_role(team: TeamId, role: Role) -> EntityUid {
    uid("TeamRole", &format!("{team}#{}", role.as_str()))
}

fn entity_ref(uid: EntityUid) -> RestrictedExpression {
    RestrictedExpression::new_entity_uid(uid)
}

fn entity_set(uids: Vec<EntityUid>) -> RestrictedExpression {
    RestrictedExpression::new_set(uids.into_iter().map(entity_ref))
}

fn entity(
    uid: EntityUid,
    attrs: Vec<(&str, RestrictedExpression)>,
    parents: HashSet<EntityUid>,
) -> Entity {
    let attrs: HashMap<String, RestrictedExpression> = attrs
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
    Entity::new(uid, attrs, parents).expect("a valid Cedar entity")
}

/// The four nested groups of `team`: owner ⊂ admin ⊂ editor ⊂ viewer.
fn team_role_entities(team: TeamId, entities: &mut Vec<Entity>) {
    let mut parent = None;
    for role in ROLES {
        let group = team_role(team, role);
        entities.push(entity(
            group.clone(),
            Vec::new(),
            parent.into_iter().collect(),
        ));
        parent = Some(group);
    }
}

/// Adds the project entity and its teams' groups; records the principal's memberships.
fn add_project(
    project: &ProjectFacts,
    entities: &mut Vec<Entity>,
    memberships: &mut HashSet<EntityUid>,
) {
    let (mut viewers, mut editors, mut admins) = (Vec::new(), Vec::new(), Vec::new());
    for LinkedTeam {
        team_id,
        access_level,
        team_is_active,
        membership,
    } in &project.teams
    {
        team_role_entities(*team_id, entities);
        if let Some(membership) = membership.filter(|m| m.is_active) {
            memberships.insert(team_role(*team_id, membership.role));
        }
        if !team_is_active {
            continue;
        }
        viewers.push(team_role(*team_id, Role::Viewer));
        if *access_level >= AccessLevel::Write {
            editors.push(team_role(*team_id, Role::Editor));
        }
        if *access_level == AccessLevel::Admin {
            admins.push(team_role(*team_id, Role::Admin));
        }
    }
    entities.push(entity(
        uid("Project", &project.id.to_string()),
        vec![
            (
                "owner",
                entity_ref(uid("User", &project.owner_id.to_string())),
            ),
            (
                "visibility",
                RestrictedExpression::new_string(project.visibility.as_str().to_owned()),
            ),
            ("viewer_teams", entity_set(viewers)),
            ("editor_teams", entity_set(editors)),
            ("admin_teams", entity_set(admins)),
        ],
        HashSet::new(),
    ));
}

/// The context entries of the principal's active shares: per level, the longest-lived one.
fn share_context(shares: &[ShareFacts]) -> Vec<(String, RestrictedExpression)> {
    [
        (ShareLevel::Read, "share_read"),
        (ShareLevel::Download, "share_download"),
        (ShareLevel::Edit, "share_edit"),
    ]
    .into_iter()
    .filter_map(|(level, key)| {
        let expiries = shares
            .iter()
            .filter(|share| share.is_active && share.level == level)
            .map(|share| share.expires_at);
        // `None` (never expires) outlives every instant.
        let longest = expiries.reduce(|a, b| a.zip(b).map(|(a, b)| a.max(b)))?;
        let record = longest.map(|at| ("expires_at".to_owned(), long(at)));
        let record = RestrictedExpression::new_record(record).expect("a valid Cedar record");
        Some((key.to_owned(), record))
    })
    .collect()
}

fn long(at: Timestamp) -> RestrictedExpression {
    RestrictedExpression::new_long(at.as_micros())
}

/// Translates a question and its facts into a Cedar request and entity store.
fn cedar_question(question: &Question, facts: &Facts, now: Timestamp) -> CedarQuestion {
    let mut entities = Vec::new();
    let mut memberships = HashSet::new();
    let mut context = vec![("now".to_owned(), long(now))];
    let resource_id = question.resource.id().to_string();
    let resource = match question.resource {
        Resource::Generation(_) => uid("Generation", &resource_id),
        Resource::Project(_) => uid("Project", &resource_id),
        Resource::Team(_) => uid("Team", &resource_id),
    };
    match (&facts.resource, question.resource) {
        (Some(ResourceFacts::Generation(generation)), Resource::Generation(_)) => {
            let mut attrs = vec![
                (
                    "owner",
                    entity_ref(uid("User", &generation.owner_id.to_string())),
                ),
                (
                    "status",
                    RestrictedExpression::new_string(generation.status.as_str().to_owned()),
                ),
            ];
            if let Some(project) = &generation.project {
                attrs.push((
                    "project",
                    entity_ref(uid("Project", &project.id.to_string())),
                ));
                add_project(project, &mut entities, &mut memberships);
            }
            entities.push(entity(resource.clone(), attrs, HashSet::new()));
            context.extend(share_context(&generation.shares));
        }
        (Some(ResourceFacts::Project(project)), Resource::Project(_)) => {
            add_project(project, &mut entities, &mut memberships);
        }
        (Some(ResourceFacts::Team(team)), Resource::Team(team_id)) => {
            team_role_entities(team_id, &mut entities);
            if let Some(membership) = team.membership.filter(|m| m.is_active) {
                memberships.insert(team_role(team_id, membership.role));
            }
            let group = |role| entity_ref(team_role(team_id, role));
            entities.push(entity(
                resource.clone(),
                vec![
                    ("active", RestrictedExpression::new_bool(team.is_active)),
                    ("owners", group(Role::Owner)),
                    ("admins", group(Role::Admin)),
                    ("editors", group(Role::Editor)),
                    ("viewers", group(Role::Viewer)),
                ],
                HashSet::new(),
            ));
        }
        // A missing resource (or facts about another type) has no entity: deny.
        _ => {}
    }
    let principal = match question.principal {
        Principal::Anonymous => uid("Anonymous", "anonymous"),
        Principal::User(user) => {
            let principal = uid("User", &user.to_string());
            if let Some(row) = facts.user {
                entities.push(entity(
                    principal.clone(),
                    vec![("active", RestrictedExpression::new_bool(row.is_active))],
                    memberships,
                ));
            }
            principal
        }
    };
    let action = uid("Action", question.operation.as_str());
    let context = Context::from_pairs(context).expect("a valid Cedar context");
    let request =
        Request::new(principal, action, resource, context, None).expect("a valid Cedar request");
    let entities = Entities::from_entities(entities, None).expect("a valid Cedar entity store");
    CedarQuestion { request, entities }
}

/// Asserts that Cedar's allow/deny equals `decide(..).granted` on every corpus case.
fn check_corpus(cedar: &Cedar) -> usize {
    let directory = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");
    let mut files: Vec<_> = std::fs::read_dir(directory)
        .expect("the corpus directory is readable")
        .map(|entry| entry.expect("a corpus entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    let mut checked = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a readable corpus file");
        let corpus: CorpusFile = serde_json::from_str(&text).expect("a valid corpus file");
        for case in corpus.cases {
            let question = case
                .question
                .question()
                .expect("corpus questions are valid");
            let facts = case.data.facts(&question, REVISION);
            let granted = decide(&question, &facts, case.now).granted;
            let allowed = cedar.allows(&cedar_question(&question, &facts, case.now));
            assert_eq!(
                allowed,
                granted,
                "Cedar disagrees with decide on corpus case {} ({})",
                case.name,
                file.display()
            );
            checked += 1;
        }
    }
    checked
}

// ---------------------------------------------------------------------------------------------
// Benchmarks.
// ---------------------------------------------------------------------------------------------

fn bench_decide_and_cedar(c: &mut Criterion, paths: &[Path], cedar: &Cedar) {
    let now = now();
    let mut group = c.benchmark_group("decide");
    for path in paths {
        group.bench_function(path.name, |b| {
            b.iter(|| {
                decide(
                    black_box(&path.question),
                    black_box(&path.facts),
                    black_box(now),
                )
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("cedar");
    for path in paths {
        group.bench_function(path.name, |b| {
            b.iter(|| {
                cedar.authorizer.is_authorized(
                    black_box(&path.cedar.request),
                    black_box(&cedar.policies),
                    black_box(&path.cedar.entities),
                )
            });
        });
    }
    group.finish();
}

fn bench_uuid(c: &mut Criterion) {
    let mut group = c.benchmark_group("uuid");
    for (case, input) in [("lower", CAROL.to_owned()), ("upper", CAROL.to_uppercase())] {
        assert!(parse_uuid(&input, "user_id").is_ok(), "{input} parses");
        group.bench_with_input(
            BenchmarkId::new("parse", case),
            input.as_str(),
            |b, input| {
                b.iter(|| parse_uuid(black_box(input), "user_id"));
            },
        );
    }
    group.finish();
}

/// Cache key and entry of the `team_member` path (a grant with six dependencies).
fn bench_cache(c: &mut Criterion, path: &Path) {
    let entry = CacheEntry::new(
        path.decision,
        now(),
        &TtlPolicy::default(),
        path.facts.dependencies(&path.question),
    );
    let encoded = entry.encode();
    assert_eq!(
        CacheEntry::decode(&encoded),
        Ok(entry.clone()),
        "the entry round-trips"
    );
    let mut group = c.benchmark_group("cache");
    group.bench_function("key", |b| {
        b.iter(|| CacheKey::new(black_box(&path.question)));
    });
    group.bench_function("encode", |b| b.iter(|| black_box(&entry).encode()));
    group.bench_function("decode", |b| {
        b.iter(|| CacheEntry::decode(black_box(&encoded)));
    });
    group.finish();
}

fn bench_jwt(c: &mut Criterion) {
    let key = JwtKey::new(b"bench-secret-of-at-least-thirty-two-bytes").expect("a non-empty key");
    let config = JwtConfig::default();
    let now = now().as_seconds();
    let claims = format!(
        r#"{{"sub":"{CAROL}","iat":{},"nbf":{},"exp":{}}}"#,
        now - 60,
        now - 60,
        now + 3600
    );
    let token = sign_hs256(&claims, &key);
    assert!(
        verify(&token, &key, &config, now).is_ok(),
        "the token verifies"
    );
    let mut group = c.benchmark_group("jwt");
    group.bench_function("verify", |b| {
        b.iter(|| verify(black_box(&token), &key, &config, black_box(now)));
    });
    group.finish();
}

fn core(c: &mut Criterion) {
    let cedar = Cedar::new();
    let checked = check_corpus(&cedar);
    let paths = paths(&world(), &cedar);
    eprintln!(
        "cedar agrees with decide on {} benched paths and {checked} corpus cases",
        paths.len()
    );
    bench_decide_and_cedar(c, &paths, &cedar);
    bench_uuid(c);
    let team_member = paths
        .iter()
        .find(|path| path.name == "team_member")
        .expect("the team_member path exists");
    bench_cache(c, team_member);
    bench_jwt(c);
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

// A plain `main` rather than `criterion_group!`, whose generated `pub fn` has no docs.
fn main() {
    let mut criterion = config().configure_from_args();
    core(&mut criterion);
    criterion.final_summary();
}
