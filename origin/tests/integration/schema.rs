//! The schema: migrations apply to an empty database and again without error, and the decision
//! query uses the composite indexes on a seeded dataset (no sequential scan of a large table).

use authz_seed::{self as seed, Scale, SeedOptions};
use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::support::{self, TestDb};

#[tokio::test]
async fn migrations_apply_to_an_empty_database_and_again() {
    let admin = support::connect(&support::admin_url()).await;
    let name = format!("authz_empty_{}", uuid::Uuid::new_v4().simple());
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create");
    let url = support::database_url(&name);
    let first = authz_origin::db::migrate::run(&url).await;
    let second = authz_origin::db::migrate::run(&url).await;
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .expect("drop");
    let first = first.expect("first run");
    assert!(first.len() >= 4, "{first:?}");
    assert_eq!(second.expect("second run"), Vec::<String>::new());
}

/// Runs `sql` with auto_explain logging every nested statement's plan to this client.
async fn plans_of(url: &str, sql: &str) -> Vec<String> {
    let (client, mut connection) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notice(notice) = message {
                let _ = sender.send(notice.message().to_owned());
            }
        }
    });
    client
        .batch_execute(
            "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; \
             SET auto_explain.log_nested_statements = on; SET auto_explain.log_level = 'notice'; \
             SET client_min_messages = 'notice'",
        )
        .await
        .expect("auto_explain");
    client.batch_execute(sql).await.expect("query");
    client.batch_execute("SELECT 1").await.expect("flush");
    drop(client);
    let mut plans = Vec::new();
    while let Ok(plan) = receiver.try_recv() {
        plans.push(plan);
    }
    plans
}

#[tokio::test]
async fn the_decision_query_uses_index_scans_on_a_seeded_dataset() {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    seed::run(
        &mut client,
        &SeedOptions {
            scale: Scale::Small,
            seed: 7,
            progress: false,
        },
    )
    .await
    .expect("seed");
    // A generation in a linked project, asked by a member of a linked team.
    let row = client
        .query_one(
            "SELECT m.user_id, g.id, g.project_id, pt.team_id FROM generations g \
             JOIN project_teams pt ON pt.project_id = g.project_id \
             JOIN team_members m ON m.team_id = pt.team_id LIMIT 1",
            &[],
        )
        .await
        .expect("a linked generation");
    let (user, generation, project, team): (uuid::Uuid, uuid::Uuid, uuid::Uuid, uuid::Uuid) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let large: Vec<String> = client
        .query(
            "SELECT relname::text FROM pg_class WHERE relkind = 'r' AND reltuples > 5000 \
             AND relname IN ('users','teams','team_members','projects','project_teams','generations','generation_shares')",
            &[],
        )
        .await
        .expect("sizes")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(large.contains(&"generations".to_owned()), "{large:?}");
    let sql = format!(
        "SELECT authz_decision_facts('{user}', 'generation', '{generation}'); \
         SELECT authz_decision_facts('{user}', 'project', '{project}'); \
         SELECT authz_decision_facts('{user}', 'team', '{team}'); \
         SELECT * FROM check_user_authorization_enterprise('{user}', 'generation', '{generation}', 'read');"
    );
    let plans = plans_of(&db.url, &sql).await;
    let joined = plans.join("\n");
    assert!(
        plans.len() >= 8,
        "auto_explain reported {} plans:\n{joined}",
        plans.len()
    );
    assert!(joined.contains("Index"), "no index scan at all:\n{joined}");
    for table in &large {
        assert!(
            !joined.contains(&format!("Seq Scan on {table}")),
            "sequential scan of {table}:\n{joined}"
        );
    }
}

#[tokio::test]
async fn materialized_views_refresh_concurrently_and_never_decide() {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    seed::run(
        &mut client,
        &SeedOptions {
            scale: Scale::Small,
            seed: 3,
            progress: false,
        },
    )
    .await
    .expect("seed");
    let config =
        authz_origin::config::Config::from_vars(&support::origin_vars(&db, None)).expect("config");
    let pools = authz_origin::db::Pools::connect(&config)
        .await
        .expect("pools");
    // First refresh populates; the second runs CONCURRENTLY (unique indexes make it possible).
    assert_eq!(
        authz_origin::maintenance::refresh_views(&pools).await,
        Ok(2)
    );
    let rows = client
        .query(
            "SELECT refreshed_concurrently FROM refresh_authorization_materialized_views()",
            &[],
        )
        .await
        .expect("refresh");
    assert!(rows.iter().all(|row| row.get::<_, bool>(0)));
    let users: i64 = client
        .query_one("SELECT count(*) FROM mv_user_authorization_context", &[])
        .await
        .expect("count")
        .get(0);
    assert!(users >= 1_000, "{users}");
    // The decision function never reads a view: its source mentions none.
    let source: String = client
        .query_one(
            "SELECT string_agg(prosrc, ' ') FROM pg_proc WHERE proname IN \
             ('authz_decision_facts', 'authz_project_facts', 'authz_evaluate', 'check_user_authorization_enterprise')",
            &[],
        )
        .await
        .expect("source")
        .get(0);
    assert!(
        !source.contains("mv_"),
        "a decision reads a materialized view"
    );
}

#[tokio::test]
async fn ids_the_uuid_standard_refuses_cannot_be_stored() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let user = "a0000000-0000-4000-8000-000000000001";
    client
        .execute(&format!("INSERT INTO users (id) VALUES ('{user}')"), &[])
        .await
        .expect("a standard id");
    for id in [
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
    ] {
        for sql in [
            format!("INSERT INTO users (id) VALUES ('{id}')"),
            format!("INSERT INTO generations (id, user_id) VALUES ('{id}', '{user}')"),
            format!("INSERT INTO projects (id, user_id, name) VALUES ('{id}', '{user}', 'p')"),
        ] {
            let error = client.execute(&sql, &[]).await.expect_err(&sql);
            assert_eq!(
                error.code(),
                Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION),
                "{sql}: {error}"
            );
        }
    }
    // On a database that already holds such a row, the migration refuses to apply.
    client
        .batch_execute(
            "ALTER TABLE users DROP CONSTRAINT users_id_standard;
             INSERT INTO users (id) VALUES ('00000000-0000-0000-0000-000000000000')",
        )
        .await
        .expect("an old row");
    let error = client
        .batch_execute(include_str!("../../../migrations/V10__standard_ids.sql"))
        .await
        .expect_err("the migration validates existing rows");
    assert_eq!(
        error.code(),
        Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION),
        "{error}"
    );
}
