//! The piece tables (migrations/V9) hold, after every write and the sequencer round that numbers
//! it (V11), exactly what the reference
//! functions `authz_user_piece` / `authz_resource_piece` (V7, reading the base tables) return:
//! on random datasets, after each of a sequence of plain-SQL writes of every kind (updates that
//! move rows between keys, deletes that cascade, inserts through the team-owner trigger, a
//! transaction of several writes, TRUNCATE, a bulk load with triggers disabled).

use authz_core::strategies;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config as ProptestConfig, RngAlgorithm, TestRng, TestRunner};
use tokio_postgres::Client;

use crate::support::{self, TestDb};

const DATASETS: usize = 6;

/// Rows of the piece tables that differ from the reference, in either direction, as text.
/// A generation is compared whole: its row, with its project's row attached as the origin
/// attaches it, against `authz_resource_piece('generation', id)`.
const DIFFERENCES: &str = "
WITH expected_users AS (
    SELECT u.id, authz_user_piece(u.id) AS piece FROM users u
), actual_users AS (
    SELECT user_id, piece::jsonb FROM authz_user_pieces
), expected_resources AS (
    SELECT 'generation' AS type, g.id, authz_resource_piece('generation', g.id) AS piece
      FROM generations g
    UNION ALL
    SELECT 'project', p.id, authz_resource_piece('project', p.id) FROM projects p
    UNION ALL
    SELECT 'team', t.id, authz_resource_piece('team', t.id) FROM teams t
), actual_resources AS (
    SELECT f.resource_type, f.resource_id,
           CASE f.resource_type
               WHEN 'generation' THEN f.piece::jsonb
                    || jsonb_build_object('project', p.piece::jsonb - 'type')
               ELSE f.piece::jsonb
           END
      FROM authz_resource_pieces f
      LEFT JOIN authz_resource_pieces p
             ON p.resource_type = 'project' AND p.resource_id = f.project_id
), generation_projects AS (
    SELECT g.id, g.project_id FROM generations g
), actual_generation_projects AS (
    SELECT resource_id, project_id FROM authz_resource_pieces WHERE resource_type = 'generation'
)
SELECT 'missing user ' || d::text FROM (SELECT * FROM expected_users EXCEPT SELECT * FROM actual_users) d
UNION ALL
SELECT 'extra user ' || d::text FROM (SELECT * FROM actual_users EXCEPT SELECT * FROM expected_users) d
UNION ALL
SELECT 'missing resource ' || d::text
  FROM (SELECT * FROM expected_resources EXCEPT SELECT * FROM actual_resources) d
UNION ALL
SELECT 'extra resource ' || d::text
  FROM (SELECT * FROM actual_resources EXCEPT SELECT * FROM expected_resources) d
UNION ALL
SELECT 'project_id ' || d::text
  FROM (SELECT * FROM generation_projects EXCEPT SELECT * FROM actual_generation_projects) d";

/// Writes of every kind, each one statement (or one transaction), run in order. `random()` is
/// seeded per dataset (`setseed`), so a failure replays.
const WRITES: &[&str] = &[
    "UPDATE users SET is_active = NOT is_active WHERE random() < 0.3",
    "UPDATE team_members SET is_active = NOT is_active WHERE random() < 0.3",
    "UPDATE team_members SET role = (ARRAY['admin', 'editor', 'viewer'])[1 + floor(random() * 3)::int] \
     WHERE role <> 'owner' AND random() < 0.3",
    "UPDATE teams SET is_active = NOT is_active WHERE random() < 0.5",
    "UPDATE projects SET visibility = (ARRAY['private', 'team-only', 'public'])[1 + floor(random() * 3)::int] \
     WHERE random() < 0.5",
    "UPDATE project_teams SET access_level = (ARRAY['read', 'write', 'admin'])[1 + floor(random() * 3)::int] \
     WHERE random() < 0.5",
    "UPDATE generations SET status = (ARRAY['pending', 'completed', 'failed'])[1 + floor(random() * 3)::int] \
     WHERE random() < 0.4",
    // Rows that move from one key to another: both keys are rewritten.
    "UPDATE generations SET project_id = (SELECT id FROM projects ORDER BY random() LIMIT 1) \
     WHERE random() < 0.3",
    "UPDATE generation_shares SET generation_id = (SELECT id FROM generations ORDER BY random() LIMIT 1) \
     WHERE random() < 0.3",
    "UPDATE project_teams SET project_id = coalesce((SELECT p.id FROM projects p \
       WHERE NOT EXISTS (SELECT 1 FROM project_teams x WHERE x.project_id = p.id) \
       ORDER BY random() LIMIT 1), project_id) \
     WHERE id = (SELECT id FROM project_teams ORDER BY random() LIMIT 1)",
    "UPDATE generation_shares SET is_active = NOT is_active, expires_at = now() + interval '1 hour' \
     WHERE random() < 0.3",
    "DELETE FROM generation_shares WHERE random() < 0.2",
    "DELETE FROM project_teams WHERE random() < 0.2",
    "DELETE FROM team_members WHERE role <> 'owner' AND random() < 0.2",
    // Cascades: team_members and project_teams of a team; a project's links, and its
    // generations' project_id set to NULL; a user's everything.
    "DELETE FROM teams WHERE random() < 0.2",
    "DELETE FROM projects WHERE random() < 0.2",
    "DELETE FROM generations WHERE random() < 0.1",
    "DELETE FROM users WHERE random() < 0.1",
    // Inserts, the team's owner membership made by V1's trigger.
    "BEGIN; \
     INSERT INTO users (id) VALUES ('00000000-0000-4000-8000-000000000001'), \
                                   ('00000000-0000-4000-8000-000000000002'); \
     INSERT INTO teams (id, owner_id) VALUES ('00000000-0000-4000-8000-000000000011', \
                                              '00000000-0000-4000-8000-000000000001'); \
     INSERT INTO team_members (team_id, user_id, role) VALUES \
         ('00000000-0000-4000-8000-000000000011', '00000000-0000-4000-8000-000000000002', 'editor'); \
     INSERT INTO projects (id, user_id, visibility) VALUES \
         ('00000000-0000-4000-8000-000000000021', '00000000-0000-4000-8000-000000000001', 'team-only'); \
     INSERT INTO project_teams (project_id, team_id, access_level) VALUES \
         ('00000000-0000-4000-8000-000000000021', '00000000-0000-4000-8000-000000000011', 'write'); \
     INSERT INTO generations (id, user_id, project_id, status) VALUES \
         ('00000000-0000-4000-8000-000000000031', '00000000-0000-4000-8000-000000000001', \
          '00000000-0000-4000-8000-000000000021', 'completed'); \
     INSERT INTO generation_shares (generation_id, shared_with_user_id, permission_level, expires_at) \
     VALUES ('00000000-0000-4000-8000-000000000031', '00000000-0000-4000-8000-000000000002', \
             'download', now() + interval '1 day'); \
     UPDATE teams SET is_active = false WHERE id = '00000000-0000-4000-8000-000000000011'; \
     COMMIT",
    "UPDATE users SET is_active = false WHERE id = '00000000-0000-4000-8000-000000000002'",
    "TRUNCATE generation_shares",
    // A bulk load with triggers disabled, then authz_bump_all(), as `authz-origin seed` does.
    "BEGIN; SET LOCAL session_replication_role = replica; \
     UPDATE teams SET is_active = NOT is_active; \
     INSERT INTO generation_shares (generation_id, shared_with_user_id, permission_level) \
     SELECT g.id, u.id, 'read' FROM generations g CROSS JOIN LATERAL \
         (SELECT id FROM users ORDER BY random() LIMIT 1) u WHERE random() < 0.5; \
     SELECT authz_bump_all(); COMMIT",
];

async fn differences(client: &Client) -> Vec<String> {
    client
        .query(DIFFERENCES, &[])
        .await
        .expect("compare")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.expect("count").get(0)
}

/// A digest of both piece tables, to tell the writes that changed pieces.
async fn digest(client: &Client) -> String {
    client
        .query_one(
            "SELECT md5(coalesce((SELECT string_agg(user_id::text || piece::text, ',' ORDER BY user_id) \
                                    FROM authz_user_pieces), '') \
                     || coalesce((SELECT string_agg(resource_id::text || piece::text, ',' \
                                                    ORDER BY resource_type, resource_id) \
                                    FROM authz_resource_pieces), ''))",
            &[],
        )
        .await
        .expect("digest")
        .get(0)
}

#[tokio::test]
async fn piece_tables_follow_every_write() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let mut runner = TestRunner::new_with_rng(
        ProptestConfig::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[11; 32]),
    );
    let mut writes_with_rows = 0usize;
    for round in 0..DATASETS {
        let data = strategies::dataset()
            .new_tree(&mut runner)
            .expect("dataset")
            .current();
        support::truncate(&client).await;
        support::load(&client, &data, 0).await;
        // The round that numbers a change rewrites its pieces (V11).
        support::current_revision(&client).await;
        assert_eq!(
            differences(&client).await,
            Vec::<String>::new(),
            "round {round}: after the load"
        );
        let seed = f64::from(u32::try_from(round).expect("round")) / 10.0;
        client
            .execute("SELECT setseed($1)", &[&seed])
            .await
            .expect("setseed");
        for write in WRITES {
            let before = digest(&client).await;
            client.batch_execute(write).await.unwrap_or_else(|error| {
                panic!("round {round}: {write}: {error}");
            });
            support::current_revision(&client).await;
            let after = digest(&client).await;
            writes_with_rows += usize::from(after != before);
            let found = differences(&client).await;
            assert!(
                found.is_empty(),
                "round {round}, after {write}:\n{}",
                found.join("\n")
            );
        }
        // The comparison means something: the tables are not empty.
        assert!(count(&client, "SELECT count(*) FROM authz_resource_pieces").await > 0);
    }
    assert!(
        writes_with_rows > DATASETS * WRITES.len() / 2,
        "only {writes_with_rows} writes changed a piece"
    );
}

/// The maintenance function refuses a kind it does not know instead of writing nothing, so a
/// trigger wired to a wrong kind fails its write rather than leaving the tables behind silently.
#[tokio::test]
async fn an_unknown_piece_kind_fails_the_write() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let error = client
        .batch_execute("SELECT authz_refresh_resource_pieces('folder', ARRAY[gen_random_uuid()])")
        .await
        .expect_err("unknown kind");
    assert!(
        error.to_string().contains("unknown resource type")
            || format!("{error:?}").contains("unknown resource type"),
        "{error:?}"
    );
}
