//! Consistency against real Postgres and Redis: revocation through the change notices,
//! `min_revision` (the zookie protocol), share expiry, and two origins sharing Redis.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{self, TestDb, TestOrigin, TestRedis};

const OWNER: &str = "a0000000-0000-4000-8000-000000000001";
pub(crate) const READER: &str = "a0000000-0000-4000-8000-000000000002";
pub(crate) const GENERATION: &str = "d0000000-0000-4000-8000-000000000001";

/// A generation owned by OWNER with READER holding a share of `level` expiring at `expires_at`.
pub(crate) async fn shared_generation(
    client: &tokio_postgres::Client,
    expires_at: Option<std::time::SystemTime>,
) {
    client
        .batch_execute(&format!(
            "INSERT INTO users (id, email) VALUES ('{OWNER}', 'owner@example.test'), ('{READER}', 'reader@example.test');
             INSERT INTO generations (id, user_id, status) VALUES ('{GENERATION}', '{OWNER}', 'completed');"
        ))
        .await
        .expect("insert");
    client
        .execute(
            "INSERT INTO generation_shares (generation_id, shared_with_user_id, permission_level, expires_at) \
             VALUES ($1::text::uuid, $2::text::uuid, 'download', $3)",
            &[&GENERATION, &READER, &expires_at],
        )
        .await
        .expect("share");
}

/// The shared generation in `db`, and an origin on it (with `redis` when given) that has
/// seen the data's revision.
async fn serve_shared_generation(
    db: &TestDb,
    redis: Option<&TestRedis>,
    expires_at: Option<std::time::SystemTime>,
) -> (tokio_postgres::Client, TestOrigin) {
    let client = db.client().await;
    shared_generation(&client, expires_at).await;
    let origin = TestOrigin::start(support::origin_vars(db, redis)).await;
    origin
        .wait_revision(support::current_revision(&client).await)
        .await;
    (client, origin)
}

fn read_question() -> Value {
    json!({"user_id": READER, "resource_type": "generation", "resource_id": GENERATION, "operation": "download"})
}

fn with_min_revision(mut body: Value, revision: i64) -> Value {
    body["min_revision"] = json!(revision);
    body
}

#[tokio::test]
async fn a_revocation_is_seen_by_the_first_request_after_its_notice() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let (_client, origin) = serve_shared_generation(&db, Some(&redis), None).await;

    let (_, first) = origin.authorize(read_question()).await;
    assert_eq!(
        (first["granted"].as_bool(), first["source"].as_str()),
        (Some(true), Some("db")),
        "{first}"
    );
    let (_, second) = origin.authorize(read_question()).await;
    assert_eq!(
        (second["granted"].as_bool(), second["source"].as_str()),
        (Some(true), Some("l1")),
        "{second}"
    );
    // Cached in Redis too (written in the background): the decision and its two fact pieces.
    assert_eq!(redis.wait_for_keys(1, ":authorization:").await.len(), 1);

    // Revoke from another connection with plain SQL.
    let writer = db.client().await;
    writer
        .execute("UPDATE generation_shares SET is_active = false", &[])
        .await
        .expect("revoke");
    let revision = support::current_revision(&writer).await;
    origin.wait_revision(revision).await;
    let (_, after) = origin.authorize(read_question()).await;
    assert_eq!(after["granted"], false, "{after}");
    assert_eq!(after["reason"], "no_relationship", "{after}");
    assert!(after["revision"].as_i64() >= Some(revision), "{after}");
    origin.stop().await;
}

#[tokio::test]
async fn min_revision_never_gets_the_stale_answer_even_with_redis_holding_it() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let client = db.client().await;
    shared_generation(&client, None).await;
    let vars = support::origin_vars(&db, Some(&redis));
    // A first origin computes the grant and leaves it in Redis.
    let warm = TestOrigin::start(vars.clone()).await;
    let (_, first) = warm.authorize(read_question()).await;
    assert_eq!(first["granted"], true, "{first}");
    redis.wait_for_keys(1, ":authorization:").await;
    warm.stop().await;

    // A second origin that never hears change notices (its listener is not started) but is
    // told it is connected: caches are trusted, so only min_revision can protect the caller.
    let deaf = TestOrigin::start_without_waiting(vars).await;
    deaf.state.invalidation.disconnected();
    let base_revision = support::current_revision(&client).await;
    deaf.state
        .invalidation
        .connected_at(u64::try_from(base_revision).expect("revision"));
    let (_, cached) = deaf.authorize(read_question()).await;
    assert_eq!(
        (cached["granted"].as_bool(), cached["source"].as_str()),
        (Some(true), Some("l2")),
        "{cached}"
    );

    client
        .execute("DELETE FROM generation_shares", &[])
        .await
        .expect("revoke");
    let revision = support::current_revision(&client).await;
    assert!(revision > base_revision);
    for _ in 0..3 {
        let (_, fresh) = deaf
            .authorize(with_min_revision(read_question(), revision))
            .await;
        assert_eq!(fresh["granted"], false, "{fresh}");
        assert!(fresh["revision"].as_i64() >= Some(revision), "{fresh}");
    }
    // Without min_revision the deaf origin still serves its (now stale) cache: that is exactly
    // the window min_revision closes. (A listening origin closes it on the notice.)
    let (_, stale) = deaf.authorize(read_question()).await;
    assert_eq!(stale["source"], "l1", "{stale}");
    deaf.stop().await;
}

#[tokio::test]
async fn a_share_grant_cached_before_its_expiry_is_denied_after_it() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let expires_at = std::time::SystemTime::now() + Duration::from_millis(1_500);
    let (_client, origin) = serve_shared_generation(&db, Some(&redis), Some(expires_at)).await;
    let (_, before) = origin.authorize(read_question()).await;
    assert_eq!(before["granted"], true, "{before}");
    assert!(before["valid_until"].is_string(), "{before}");
    assert!(before["ttl_ms"].as_u64() <= Some(1_500), "{before}");
    let (_, cached) = origin.authorize(read_question()).await;
    assert_eq!(
        (cached["granted"].as_bool(), cached["source"].as_str()),
        (Some(true), Some("l1"))
    );
    let wait = expires_at
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(20)).await;
    let (_, after) = origin.authorize(read_question()).await;
    assert_eq!(after["granted"], false, "{after}");
    assert_eq!(after["reason"], "share_expired", "{after}");
    origin.stop().await;
}

#[tokio::test]
async fn two_origins_sharing_redis_respect_each_others_changes() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let client = db.client().await;
    shared_generation(&client, None).await;
    let vars = support::origin_vars(&db, Some(&redis));
    let first = TestOrigin::start(vars.clone()).await;
    let second = TestOrigin::start(vars).await;
    let revision = support::current_revision(&client).await;
    first.wait_revision(revision).await;
    second.wait_revision(revision).await;

    let (_, computed) = first.authorize(read_question()).await;
    assert_eq!(computed["source"], "db");
    redis.wait_for_keys(1, ":authorization:").await;
    let (_, shared) = second.authorize(read_question()).await;
    assert_eq!(
        (shared["granted"].as_bool(), shared["source"].as_str()),
        (Some(true), Some("l2")),
        "{shared}"
    );

    client
        .execute(
            "UPDATE users SET is_active = false WHERE id = $1::text::uuid",
            &[&READER],
        )
        .await
        .expect("deactivate");
    let revision = support::current_revision(&client).await;
    first.wait_revision(revision).await;
    second.wait_revision(revision).await;
    for origin in [&second, &first] {
        let (_, after) = origin.authorize(read_question()).await;
        assert_eq!(after["reason"], "user_inactive", "{after}");
    }
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn concurrent_misses_for_one_key_coalesce_into_one_query() {
    let db = TestDb::new().await;
    let (_client, origin) = serve_shared_generation(&db, None, None).await;
    let before = origin.state.decider.facts_queries();
    let requests = (0..32).map(|_| origin.authorize(read_question()));
    let answers = futures_util::future::join_all(requests).await;
    for (status, answer) in &answers {
        assert_eq!(
            (*status, answer["granted"].as_bool()),
            (200, Some(true)),
            "{answer}"
        );
    }
    assert_eq!(origin.state.decider.facts_queries() - before, 1);
    let from_db = answers.iter().filter(|(_, a)| a["source"] == "db").count();
    assert_eq!(
        from_db, 1,
        "exactly one request computed, the others waited for it"
    );
    // A different question is a different key: one more query.
    let mut other = read_question();
    other["operation"] = json!("read");
    origin.authorize(other).await;
    assert_eq!(origin.state.decider.facts_queries() - before, 2);
    origin.stop().await;
}

#[tokio::test]
async fn with_pieces_cached_a_decision_miss_needs_no_postgres() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let (client, origin) = serve_shared_generation(&db, Some(&redis), None).await;
    // Reader's piece and the generation's piece reach Redis with the first decision.
    let (_, first) = origin.authorize(read_question()).await;
    assert_eq!(first["source"], "db", "{first}");
    let keys = redis.wait_for_keys(4, "").await;
    assert!(keys.iter().any(|k| k.contains(":user:u/")), "{keys:?}");
    assert!(
        keys.iter().any(|k| k.contains(":generation:r/g")),
        "{keys:?}"
    );
    let before = origin.state.decider.facts_queries();
    // Another operation is another decision (an L1 and L2 miss) composed from cached pieces.
    for (operation, granted) in [("read", true), ("write", false), ("download", true)] {
        let mut body = read_question();
        body["operation"] = json!(operation);
        let (_, answer) = origin.authorize(body).await;
        assert_eq!(answer["granted"], granted, "{answer}");
        if operation != "download" {
            assert_eq!(answer["source"], "l2", "{answer}");
        }
    }
    // The owner's piece is not cached yet: one query, for it alone.
    let owner_question = json!({"user_id": OWNER, "resource_type": "generation", "resource_id": GENERATION, "operation": "admin"});
    let (_, answer) = origin.authorize(owner_question).await;
    assert_eq!(
        (answer["granted"].as_bool(), answer["source"].as_str()),
        (Some(true), Some("db")),
        "{answer}"
    );
    assert_eq!(origin.state.decider.facts_queries() - before, 1);
    // A change to the generation makes its cached piece stale: the next miss reads Postgres.
    client
        .execute(
            "UPDATE generation_shares SET permission_level = 'edit'",
            &[],
        )
        .await
        .expect("update");
    origin
        .wait_revision(support::current_revision(&client).await)
        .await;
    let mut body = read_question();
    body["operation"] = json!("write");
    let (_, answer) = origin.authorize(body).await;
    assert_eq!(
        (answer["granted"].as_bool(), answer["source"].as_str()),
        (Some(true), Some("db")),
        "{answer}"
    );
    origin.stop().await;
}

/// Keys under `prefix` in database `index` of the test Redis server.
async fn keys_in(index: u8, prefix: &str) -> Vec<(String, String)> {
    let url = format!("{}/{index}", support::redis_url());
    let client = redis::Client::open(url.as_str()).expect("redis url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut connection)
        .await
        .unwrap_or_default();
    let mut pairs = Vec::new();
    for key in keys {
        let value: String = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut connection)
            .await
            .unwrap_or_default();
        pairs.push((key, value));
    }
    if !pairs.is_empty() {
        let names: Vec<&String> = pairs.iter().map(|(key, _)| key).collect();
        let _: Result<(), _> = redis::cmd("DEL")
            .arg(names)
            .query_async(&mut connection)
            .await;
    }
    pairs
}

#[tokio::test]
async fn four_tiers_on_four_database_indexes_each_hold_their_own_data() {
    let db = TestDb::new().await;
    let client = db.client().await;
    shared_generation(&client, None).await;
    let prefix = format!("authz_tiers:{}:", uuid::Uuid::new_v4().simple());
    let mut vars = support::origin_vars(&db, None);
    let base = support::redis_url();
    for (variable, index) in [
        ("REDIS_AUTHORIZATION_URL", 4),
        ("REDIS_USER_URL", 5),
        ("REDIS_GENERATION_URL", 6),
        ("REDIS_SESSION_URL", 7),
    ] {
        vars.insert(variable.to_owned(), format!("{base}/{index}"));
    }
    vars.insert("AUTHZ_REDIS_PREFIX".to_owned(), prefix.clone());
    let origin = TestOrigin::start(vars).await;
    origin
        .wait_revision(support::current_revision(&client).await)
        .await;
    let key = authz_core::jwt::JwtKey::new(support::JWT_SECRET.as_bytes()).expect("key");
    let exp = authz_origin::clock::now().as_seconds() + 600;
    let token = authz_core::jwt::sign_hs256(&json!({"sub": READER, "exp": exp}).to_string(), &key);
    let (status, answer) = origin
        .post(
            "/v1/authorize",
            Some(&token),
            json!({"resource_type": "generation", "resource_id": GENERATION, "operation": "download"}),
        )
        .await;
    assert_eq!(
        (status, answer["granted"].as_bool()),
        (200, Some(true)),
        "{answer}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut tiers = Vec::new();
    for index in 4..=7 {
        // Each server holds its own marker of the prefix's owner, beside the tier's entries.
        let (markers, entries): (Vec<_>, Vec<_>) = keys_in(index, &prefix)
            .await
            .into_iter()
            .partition(|(key, _)| *key == format!("{prefix}owner"));
        assert_eq!(markers.len(), 1, "database {index}: {markers:?}");
        assert!(
            markers[0].1.ends_with(&format!("/{}", db.name)),
            "{markers:?}"
        );
        tiers.push(entries);
    }
    let [authorization, users, generations, sessions] =
        <[_; 4]>::try_from(tiers).expect("four tiers");
    assert!(
        authorization.len() == 1 && authorization[0].0.contains(":authorization:a1/"),
        "{authorization:?}"
    );
    assert!(
        authorization[0]
            .1
            .starts_with("e1;1;explicit_share;viewer;"),
        "{authorization:?}"
    );
    assert!(
        users.len() == 1 && users[0].0.contains(":user:u/"),
        "{users:?}"
    );
    assert!(
        generations.len() == 1 && generations[0].0.contains(":generation:r/g"),
        "{generations:?}"
    );
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let expected_key = format!(
        "{prefix}session:{}",
        authz_origin::cache::SessionTier::key(&token)
    );
    assert_eq!(sessions[0].0, expected_key);
    let session: serde_json::Value = serde_json::from_str(&sessions[0].1).expect("session json");
    assert_eq!(session, json!({"sub": READER, "exp": exp}));
    origin.stop().await;
}

#[tokio::test]
async fn a_min_revision_ahead_of_the_primary_is_never_answered() {
    let db = TestDb::new().await;
    let (client, origin) = serve_shared_generation(&db, None, None).await;
    let revision = support::current_revision(&client).await;
    // A revision the database has not reached (another database's token, or one from before a
    // failover that rewound the revision): 503, single and batch, and no cache entry below it.
    let ahead = revision + 1_000;
    let (status, answer) = origin
        .authorize(with_min_revision(read_question(), ahead))
        .await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["code"], "unavailable", "{answer}");
    let (status, answer) = origin
        .post(
            "/v1/authorize/batch",
            Some(support::SERVICE_TOKEN),
            json!({"checks": [read_question(), with_min_revision(read_question(), ahead)]}),
        )
        .await;
    assert_eq!(status, 503, "{answer}");
    // The same question at the database's own revision is answered at or above it.
    let (status, answer) = origin
        .authorize(with_min_revision(read_question(), revision))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["revision"].as_i64() >= Some(revision), "{answer}");
    let metrics = origin.metrics_text().await;
    assert!(
        metrics.contains("authz_below_min_revision_total"),
        "{metrics}"
    );
    origin.stop().await;
}

#[tokio::test]
async fn forged_and_unreadable_notices_neither_disable_caches_nor_go_unnoticed() {
    let db = TestDb::new().await;
    let (client, origin) = serve_shared_generation(&db, None, None).await;
    let (_, first) = origin.authorize(read_question()).await;
    assert_eq!(first["granted"], true, "{first}");
    let (_, second) = origin.authorize(read_question()).await;
    assert_eq!(second["source"], "l1", "{second}");
    let wait_for_metric = |name: &'static str| {
        let origin = &origin;
        async move {
            for _ in 0..200 {
                if origin.metrics_text().await.contains(name) {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            panic!("{name} never counted");
        }
    };

    // Any role may NOTIFY: a revision far ahead of the database is ignored, so the floor stays
    // and the cached answer is still served.
    client
        .execute(
            "SELECT pg_notify('authz_changes', '{\"r\": 9000000000000000000, \"all\": true}')",
            &[],
        )
        .await
        .expect("notify");
    wait_for_metric("authz_forged_notices_total").await;
    assert!(origin.state.invalidation.newest_revision() < 9_000_000_000_000_000_000);
    let (_, cached) = origin.authorize(read_question()).await;
    assert_eq!(cached["source"], "l1", "{cached}");

    // An unreadable notice: the listener reconnects (caches bypassed meanwhile) and changes
    // are still seen afterwards.
    let reconnects = origin.state.invalidation.reconnects();
    client
        .execute("SELECT pg_notify('authz_changes', 'not a notice')", &[])
        .await
        .expect("notify");
    wait_for_metric("authz_unreadable_notices_total").await;
    for _ in 0..200 {
        if origin.state.invalidation.reconnects() > reconnects
            && origin.state.invalidation.is_connected()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(origin.state.invalidation.reconnects() > reconnects);
    assert!(origin.state.invalidation.is_connected());
    client
        .execute("UPDATE generation_shares SET is_active = false", &[])
        .await
        .expect("revoke");
    let revision = support::current_revision(&client).await;
    origin.wait_revision(revision).await;
    let (_, after) = origin.authorize(read_question()).await;
    assert_eq!(after["granted"], false, "{after}");
    origin.stop().await;
}

/// A batch judges every answer at the instant it is sent back: a share grant L1 held when the
/// batch began, which expires while Postgres takes its time over another check of the same
/// batch, is asked again, not sent back after its expiry.
#[tokio::test]
async fn a_batch_never_sends_a_cached_share_grant_after_its_expiry() {
    let db = TestDb::new().await;
    let expires_at = std::time::SystemTime::now() + Duration::from_millis(2_000);
    let (_client, origin) = serve_shared_generation(&db, None, Some(expires_at)).await;
    let (_, cached) = origin.authorize(read_question()).await;
    assert_eq!(cached["granted"], true, "{cached}");
    let (_, again) = origin.authorize(read_question()).await;
    assert_eq!(again["source"], "l1", "{again}");
    let until = |at: std::time::SystemTime| {
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default()
    };
    tokio::time::sleep(until(expires_at - Duration::from_millis(500))).await;

    // Postgres cannot read the resource pieces until the lock is released, 150 ms after the
    // share's expiry (within the authorization pools' 1 s statement timeout).
    let locker = db.client().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE authz_resource_pieces IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let mut other = read_question();
    other["operation"] = json!("read");
    let request = support::http_client()
        .post(format!("{}/v1/authorize/batch", origin.base))
        .bearer_auth(support::SERVICE_TOKEN)
        .json(&json!({ "checks": [read_question(), other] }))
        .send();
    let batch = tokio::spawn(request);
    tokio::time::sleep(until(expires_at) + Duration::from_millis(150)).await;
    locker.batch_execute("COMMIT").await.expect("unlock");

    let response = batch.await.expect("join").expect("batch");
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, 200, "{body}");
    let shared = &body["results"][0];
    assert_eq!(
        shared["granted"], false,
        "a grant sent back after its share expired: {body}"
    );
    assert_eq!(shared["reason"], "share_expired", "{body}");
    assert_eq!(body["results"][1]["reason"], "share_expired", "{body}");
    origin.stop().await;
}
