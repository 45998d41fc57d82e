//! Concurrent writers on the V11 design (migrations/README.md): commit order against revision
//! order (the trap), the piece tables under concurrent writers of the same key (rewritten by the
//! sequencer round that numbers them), and bulk statements.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{self, TestDb, TestOrigin, TestRedis};

const OWNER: &str = "a0000000-0000-4000-8000-000000000001";
const READER: &str = "a0000000-0000-4000-8000-000000000002";

fn generation(n: usize) -> String {
    format!("d0000000-0000-4000-8000-{n:012}")
}

fn question(generation: &str, min_revision: Option<i64>) -> Value {
    let mut body = json!({"user_id": READER, "resource_type": "generation",
                          "resource_id": generation, "operation": "download"});
    if let Some(revision) = min_revision {
        body["min_revision"] = json!(revision);
    }
    body
}

/// `count` generations of OWNER, each shared with READER (download).
async fn shared_generations(client: &tokio_postgres::Client, count: usize) -> Vec<String> {
    client
        .batch_execute(&format!(
            "INSERT INTO users (id) VALUES ('{OWNER}'), ('{READER}')"
        ))
        .await
        .expect("users");
    let generations: Vec<String> = (0..count).map(generation).collect();
    for id in &generations {
        client
            .batch_execute(&format!(
                "INSERT INTO generations (id, user_id, status) VALUES ('{id}', '{OWNER}', 'completed');
                 INSERT INTO generation_shares (generation_id, shared_with_user_id, permission_level)
                 VALUES ('{id}', '{READER}', 'download');"
            ))
            .await
            .expect("shared generation");
    }
    generations
}

/// A resource's stored piece and the one its source view computes from the base tables, as text.
async fn stored_and_source(
    client: &tokio_postgres::Client,
    resource_type: &str,
    id: &str,
) -> (String, String) {
    let row = client
        .query_one(
            "SELECT (SELECT piece::text FROM authz_resource_pieces \
                      WHERE resource_type = $1 AND resource_id = $2::text::uuid), \
                    (SELECT piece::text FROM authz_resource_pieces_source \
                      WHERE resource_type = $1 AND resource_id = $2::text::uuid)",
            &[&resource_type, &id],
        )
        .await
        .expect("pieces");
    (row.get(0), row.get(1))
}

/// Keeps numbering changes from a connection of its own while the test runs, so sequencer
/// rounds race the writers' commits and the origin's own rounds.
fn race_the_sequencer(db: &TestDb) -> tokio::task::JoinHandle<()> {
    let url = db.url.clone();
    tokio::spawn(async move {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        loop {
            if client
                .query_one("SELECT authz_current_revision()", &[])
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
}

#[tokio::test]
async fn writers_committing_in_reverse_order_give_no_stale_grant_and_no_answer_below_min_revision()
{
    const WRITERS: usize = 12;
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let setup = db.client().await;
    let generations = shared_generations(&setup, WRITERS).await;
    let origin = TestOrigin::start(support::origin_vars(&db, Some(&redis))).await;
    origin
        .wait_revision(support::current_revision(&setup).await)
        .await;
    for id in &generations {
        let (_, answer) = origin.authorize(question(id, None)).await;
        assert_eq!(answer["granted"], true, "{answer}");
        let (_, again) = origin.authorize(question(id, None)).await;
        assert_eq!(again["source"], "l1", "cached before the writes: {again}");
    }
    let racer = race_the_sequencer(&db);

    // Every writer is plain SQL on a connection of its own, not the service (which has no write
    // API): the triggers alone record its change. Each opens its transaction and revokes its
    // share in order 0, 1, 2, ...: each has
    // written (and so would have taken a sequence value in a design that numbers at write time)
    // before any commits.
    let mut writers = Vec::new();
    for id in &generations {
        let writer = db.client().await;
        writer.batch_execute("BEGIN").await.expect("begin");
        writer
            .execute(
                "UPDATE generation_shares SET is_active = false \
                 WHERE generation_id = $1::text::uuid",
                &[id],
            )
            .await
            .expect("revoke");
        writers.push(writer);
    }
    // They commit in the opposite order. After each commit the writer's token must cover its
    // revocation and every one committed before it, through every cache, at once; and once the
    // token is announced, plain requests must see them too, while the revocations not committed
    // yet still grant.
    for (index, writer) in writers.iter().enumerate().rev() {
        writer.batch_execute("COMMIT").await.expect("commit");
        let token = support::current_revision(writer).await;
        for (other, id) in generations.iter().enumerate().skip(index) {
            let (status, answer) = origin.authorize(question(id, Some(token))).await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!(
                answer["granted"], false,
                "writer {other}'s revocation committed before token {token}: {answer}"
            );
            assert!(
                answer["revision"].as_i64() >= Some(token),
                "answered below min_revision {token}: {answer}"
            );
        }
        origin.wait_revision(token).await;
        for (other, id) in generations.iter().enumerate() {
            let (_, answer) = origin.authorize(question(id, None)).await;
            let revoked = other >= index;
            assert_eq!(
                answer["granted"], !revoked,
                "writer {other} (committed: {revoked}) after token {token}: {answer}"
            );
        }
    }
    racer.abort();
    origin.stop().await;
}

#[tokio::test]
async fn concurrent_writers_of_one_piece_lose_none_of_their_changes() {
    const SHARES: usize = 24;
    let db = TestDb::new().await;
    let setup = db.client().await;
    setup
        .batch_execute(&format!(
            "INSERT INTO users (id) VALUES ('{OWNER}');
             INSERT INTO users (id) SELECT ('b0000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid
               FROM generate_series(1, {SHARES}) AS n;
             INSERT INTO generations (id, user_id, status) VALUES ('{}', '{OWNER}', 'completed');",
            generation(1)
        ))
        .await
        .expect("setup");
    // Each writer shares the generation with its own user in its own transaction; all write
    // before any commits, then they commit together.
    let mut writers = Vec::new();
    for n in 1..=SHARES {
        let writer = db.client().await;
        writers.push(tokio::spawn({
            let generation = generation(1);
            async move {
                writer.batch_execute("BEGIN").await.expect("begin");
                writer
                    .execute(
                        "INSERT INTO generation_shares (generation_id, shared_with_user_id, \
                         permission_level) VALUES ($1::text::uuid, \
                         ('b0000000-0000-4000-8000-' || lpad($2::int::text, 12, '0'))::uuid, 'read')",
                        &[&generation, &i32::try_from(n).expect("n")],
                    )
                    .await
                    .expect("share");
                tokio::time::sleep(Duration::from_millis(50)).await;
                writer.batch_execute("COMMIT").await.expect("commit");
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    // The round that numbers them rewrites the piece.
    support::current_revision(&setup).await;
    let (stored, source) = stored_and_source(&setup, "generation", &generation(1)).await;
    let shares = serde_json::from_str::<Value>(&stored).expect("piece")["shares"]
        .as_array()
        .map(Vec::len);
    assert_eq!(shares, Some(SHARES), "{stored}");
    assert_eq!(stored, source);
}

/// A team deactivated while a project is linked to it, in both orders: the project's piece
/// (which embeds its teams' is_active) ends with the team inactive either way.
#[tokio::test]
async fn a_team_change_racing_a_project_link_leaves_the_project_piece_right() {
    let db = TestDb::new().await;
    let setup = db.client().await;
    for (first_is_team, project, team) in [
        (
            true,
            "c0000000-0000-4000-8000-000000000001",
            "e0000000-0000-4000-8000-000000000001",
        ),
        (
            false,
            "c0000000-0000-4000-8000-000000000002",
            "e0000000-0000-4000-8000-000000000002",
        ),
    ] {
        setup
            .batch_execute(&format!(
                "INSERT INTO users (id) VALUES ('{OWNER}') ON CONFLICT DO NOTHING;
                 INSERT INTO teams (id, owner_id) VALUES ('{team}', '{OWNER}');
                 INSERT INTO projects (id, user_id) VALUES ('{project}', '{OWNER}');"
            ))
            .await
            .expect("setup");
        let deactivate = format!("UPDATE teams SET is_active = false WHERE id = '{team}'");
        let link = format!(
            "INSERT INTO project_teams (project_id, team_id) VALUES ('{project}', '{team}')"
        );
        let (first, second) = if first_is_team {
            (deactivate, link)
        } else {
            (link, deactivate)
        };
        let one = db.client().await;
        let two = db.client().await;
        one.batch_execute("BEGIN").await.expect("begin");
        one.batch_execute(&first).await.expect("first write");
        // The second writes while the first is open: a piece computed from the second's
        // snapshot would miss the first's change.
        let second_writer = tokio::spawn(async move {
            two.batch_execute("BEGIN").await.expect("begin");
            two.batch_execute(&second).await.expect("second write");
            two.batch_execute("COMMIT").await.expect("commit");
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        one.batch_execute("COMMIT").await.expect("commit");
        second_writer.await.expect("second writer");
        support::current_revision(&setup).await;
        let (stored, source) = stored_and_source(&setup, "project", project).await;
        assert!(source.contains("\"team_is_active\" : false"), "{source}");
        assert_eq!(stored, source, "team first: {first_is_team}");
    }
}

#[tokio::test]
async fn a_bulk_statement_invalidates_its_ids_and_not_every_cache() {
    let db = TestDb::new().await;
    let setup = db.client().await;
    let generations = shared_generations(&setup, 2).await;
    let origin = TestOrigin::start(support::origin_vars(&db, None)).await;
    origin
        .wait_revision(support::current_revision(&setup).await)
        .await;
    for id in &generations {
        origin.authorize(question(id, None)).await;
    }
    // 1,000 users in one statement, then 1,000 shares of the first generation in another:
    // each names 1,000 ids or more, over the 100 a notice can carry.
    setup
        .batch_execute(&format!(
            "INSERT INTO users (id) SELECT ('b0000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid
               FROM generate_series(1, 1000) AS n;
             INSERT INTO generation_shares (generation_id, shared_with_user_id, permission_level)
               SELECT '{first}', ('b0000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid, 'read'
                 FROM generate_series(1, 1000) AS n;",
            first = generations[0]
        ))
        .await
        .expect("bulk");
    let revision = support::current_revision(&setup).await;
    origin.wait_revision(revision).await;
    let (_, first) = origin.authorize(question(&generations[0], None)).await;
    assert_eq!(
        (first["granted"].as_bool(), first["source"].as_str()),
        (Some(true), Some("db")),
        "its generation changed in the bulk statement: {first}"
    );
    assert!(first["revision"].as_i64() >= Some(revision), "{first}");
    let (_, second) = origin.authorize(question(&generations[1], None)).await;
    assert_eq!(
        (second["granted"].as_bool(), second["source"].as_str()),
        (Some(true), Some("l1")),
        "untouched by the bulk statements, still cached: {second}"
    );
    origin.stop().await;
}

#[tokio::test]
async fn the_revision_is_for_after_commit() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let before = support::current_revision(&client).await;
    client.batch_execute("BEGIN").await.expect("begin");
    client
        .batch_execute(&format!("INSERT INTO users (id) VALUES ('{OWNER}')"))
        .await
        .expect("insert");
    let error = client
        .query_one("SELECT authz_current_revision()", &[])
        .await
        .expect_err("inside the writing transaction");
    assert_eq!(
        error.code(),
        Some(&tokio_postgres::error::SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE),
        "{error}"
    );
    client.batch_execute("ROLLBACK").await.expect("rollback");
    client
        .batch_execute(&format!("INSERT INTO users (id) VALUES ('{OWNER}')"))
        .await
        .expect("insert");
    let after = support::current_revision(&client).await;
    assert!(after > before, "{before} -> {after}");
    // Nothing pending: asking again neither numbers nor advances anything.
    assert_eq!(support::current_revision(&client).await, after);
}
