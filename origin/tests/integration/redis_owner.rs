//! Two deployments on one Redis (issue 15, item 7): the default prefix carries the database's
//! identity, each Redis server holds a marker naming the database that owns a prefix, and an
//! origin of another database refuses to start on it (or, when it learns it later, leaves the
//! tier off).

use std::time::{Duration, Instant};

use authz_origin::cache::Ownership;
use authz_origin::config::{Config, RedisTierName};
use authz_origin::state::AppState;
use serde_json::json;

use crate::consistency::{GENERATION, READER, shared_generation};
use crate::faults::RedisServer;
use crate::support::{self, TestDb, TestOrigin, TestRedis};

fn read_question() -> serde_json::Value {
    json!({"user_id": READER, "resource_type": "generation", "resource_id": GENERATION, "operation": "download"})
}

/// `(system identifier, database name)` of `db`, read the way an operator would.
async fn identity_of(db: &TestDb) -> (String, String) {
    let row = db
        .client()
        .await
        .query_one(
            "SELECT system_identifier::text, current_database()::text FROM pg_control_system()",
            &[],
        )
        .await
        .expect("identity");
    (row.get(0), row.get(1))
}

async fn redis_get(url: &str, key: &str) -> Option<String> {
    let client = redis::Client::open(url).expect("redis url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut connection)
        .await
        .expect("get")
}

async fn redis_set(url: &str, key: &str, value: &str) {
    let client = redis::Client::open(url).expect("redis url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query_async::<()>(&mut connection)
        .await
        .expect("set");
}

/// The same users and generation in `db`, the share only when `shared`.
async fn seed(db: &TestDb, shared: bool) {
    let client = db.client().await;
    shared_generation(&client, None).await;
    if !shared {
        client
            .batch_execute("DELETE FROM generation_shares")
            .await
            .expect("unshare");
    }
}

async fn ask(origin: &TestOrigin) -> Option<bool> {
    let (status, answer) = origin.authorize(read_question()).await;
    assert_eq!(status, 200, "{answer}");
    answer["granted"].as_bool()
}

fn ownership(origin: &TestOrigin) -> Ownership {
    origin.state.redis_tiers[&RedisTierName::Authorization].ownership()
}

/// Waits up to `limit` for the decision tier's ownership to leave `unclaimed`.
async fn wait_claim(origin: &TestOrigin, limit: Duration) -> Ownership {
    let deadline = Instant::now() + limit;
    while ownership(origin) == Ownership::Unclaimed && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ownership(origin)
}

#[tokio::test]
async fn two_databases_on_one_redis_without_a_prefix_never_read_each_other() {
    let (production, staging) = (TestDb::new().await, TestDb::new().await);
    seed(&production, true).await;
    seed(&staging, false).await;
    let (system, production_name) = identity_of(&production).await;
    let (_, staging_name) = identity_of(&staging).await;
    // Deletes every key of both default prefixes when the test ends.
    let production_keys = TestRedis {
        prefix: format!("authz:{system}:{production_name}:"),
        url: support::redis_url(),
    };
    let staging_keys = TestRedis {
        prefix: format!("authz:{system}:{staging_name}:"),
        url: support::redis_url(),
    };
    let vars = |db: &TestDb| {
        let mut vars = support::origin_vars(db, None);
        vars.insert("REDIS_URL".to_owned(), support::redis_url());
        vars
    };
    let first = TestOrigin::start(vars(&production)).await;
    assert_eq!(ask(&first).await, Some(true));
    // The lookup and, in the background, the write of the grant.
    let tier = &first.state.redis_tiers[&RedisTierName::Authorization];
    let deadline = Instant::now() + Duration::from_secs(5);
    while tier.stats().snapshot().commands < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(tier.stats().snapshot().errors, 0);
    first.stop().await;

    // Staging has the same ids but no share; its origin must not read production's grant.
    let second = TestOrigin::start(vars(&staging)).await;
    assert_eq!(
        ask(&second).await,
        Some(false),
        "staging read production's entry"
    );
    let written = production_keys.wait_for_keys(1, ":authorization:").await;
    assert_eq!(written.len(), 1, "the grant is in Redis: {written:?}");
    assert_eq!(
        ownership(&second),
        Ownership::Claimed {
            prefix: staging_keys.prefix.clone()
        }
    );
    assert_eq!(
        redis_get(
            &support::redis_url(),
            &format!("{}owner", production_keys.prefix)
        )
        .await,
        Some(format!("{system}/{production_name}"))
    );
    assert_eq!(
        redis_get(
            &support::redis_url(),
            &format!("{}owner", staging_keys.prefix)
        )
        .await,
        Some(format!("{system}/{staging_name}"))
    );
    let (status, health) = second
        .get("/api/v1/health", Some(support::ADMIN_TOKEN))
        .await;
    assert_eq!(status, 200, "{health}");
    let tier = &health["redis"]["tiers"]["authorization"];
    assert_eq!(tier["owner"], "claimed", "{health}");
    assert_eq!(tier["prefix"], staging_keys.prefix.as_str(), "{health}");
    second.stop().await;
}

#[tokio::test]
async fn an_origin_refuses_to_start_on_a_prefix_another_database_owns() {
    let (production, staging) = (TestDb::new().await, TestDb::new().await);
    let redis = TestRedis::new();
    let first = TestOrigin::start(support::origin_vars(&production, Some(&redis))).await;
    // A second origin of the same database shares the prefix.
    let sibling = TestOrigin::start(support::origin_vars(&production, Some(&redis))).await;
    assert!(matches!(ownership(&sibling), Ownership::Claimed { .. }));
    sibling.stop().await;
    first.stop().await;

    let config = Config::from_vars(&support::origin_vars(&staging, Some(&redis))).expect("config");
    let error = AppState::build(config)
        .await
        .expect_err("a staging origin on production's prefix must not start");
    let (system, production_name) = identity_of(&production).await;
    let text = error.to_string();
    assert!(
        text.contains("belongs to database")
            && text.contains(&format!("{system}/{production_name}"))
            && text.contains("AUTHZ_REDIS_PREFIX"),
        "{text}"
    );

    // A Redis restored from another deployment's dump holds that deployment's marker.
    let restored = TestRedis::new();
    redis_set(
        &restored.url,
        &format!("{}owner", restored.prefix),
        "7000000000000000001/media",
    )
    .await;
    let config =
        Config::from_vars(&support::origin_vars(&staging, Some(&restored))).expect("config");
    let error = AppState::build(config)
        .await
        .expect_err("a marker of another cluster refuses the start");
    assert!(
        error.to_string().contains("7000000000000000001/media"),
        "{error}"
    );
}

#[tokio::test]
async fn a_tier_unreachable_at_start_serves_only_once_its_prefix_is_claimed() {
    let db = TestDb::new().await;
    seed(&db, true).await;
    let mut server = RedisServer::start().await;
    let redis = TestRedis::on(&server.url());
    server.kill();
    let origin = TestOrigin::start(support::origin_vars(&db, Some(&redis))).await;
    assert_eq!(ownership(&origin), Ownership::Unclaimed);
    // Decided from Postgres while the tier is skipped.
    assert_eq!(ask(&origin).await, Some(true));
    let (_, health) = origin
        .get("/api/v1/health", Some(support::ADMIN_TOKEN))
        .await;
    assert_eq!(
        health["redis"]["tiers"]["authorization"]["owner"], "unclaimed",
        "{health}"
    );
    server.spawn().await;
    let claimed = wait_claim(&origin, Duration::from_secs(10)).await;
    assert_eq!(
        claimed,
        Ownership::Claimed {
            prefix: redis.prefix.clone()
        }
    );
    let db_name = identity_of(&db).await;
    assert_eq!(
        redis_get(&redis.url, &format!("{}owner", redis.prefix)).await,
        Some(format!("{}/{}", db_name.0, db_name.1))
    );
    origin.stop().await;
}

#[tokio::test]
async fn a_foreign_prefix_found_after_start_keeps_the_tier_off() {
    let db = TestDb::new().await;
    seed(&db, true).await;
    let server = RedisServer::start().await;
    let redis = TestRedis::on(&server.url());
    redis_set(
        &redis.url,
        &format!("{}owner", redis.prefix),
        "7000000000000000001/media",
    )
    .await;
    // Redis answers nothing for 3 s: the start cannot read the marker and goes on unclaimed.
    let client = redis::Client::open(redis.url.as_str()).expect("redis url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(3_000)
        .arg("ALL")
        .query_async::<()>(&mut connection)
        .await
        .expect("pause");
    let origin = TestOrigin::start(support::origin_vars(&db, Some(&redis))).await;
    assert_eq!(ownership(&origin), Ownership::Unclaimed);
    let found = wait_claim(&origin, Duration::from_secs(15)).await;
    assert_eq!(
        found,
        Ownership::Foreign {
            prefix: redis.prefix.clone(),
            owner: "7000000000000000001/media".to_owned()
        }
    );
    for _ in 0..3 {
        assert_eq!(ask(&origin).await, Some(true));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        redis.keys().await,
        vec![format!("{}owner", redis.prefix)],
        "nothing is written under another database's prefix"
    );
    let (_, health) = origin
        .get("/api/v1/health", Some(support::ADMIN_TOKEN))
        .await;
    assert_eq!(
        health["redis"]["tiers"]["authorization"]["owner"], "foreign",
        "{health}"
    );
    assert_ne!(health["status"], "ok", "{health}");
    origin.stop().await;
}
