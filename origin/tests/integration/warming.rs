//! Cache warming from `cache_warming_patterns`: after a start, the patterns' questions are
//! answered from L1 before anyone asked them.

use std::time::Duration;

use authz_seed::{self as seed, Scale, SeedOptions};
use serde_json::json;

use crate::support::{self, TestDb, TestOrigin, TestRedis};

#[tokio::test]
async fn warming_fills_l1_and_redis_with_the_patterns_questions() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let mut client = db.client().await;
    seed::run(
        &mut client,
        &SeedOptions {
            scale: Scale::Small,
            seed: 11,
            progress: false,
        },
    )
    .await
    .expect("seed");
    // Only two patterns, small, so the pass is quick and its questions are known.
    client
        .batch_execute(
            "UPDATE cache_warming_patterns SET enabled = pattern_name IN \
               ('recent_generations_owner_read', 'public_completed_generations'), max_items = 50",
        )
        .await
        .expect("patterns");
    let owner_row = client
        .query_one(
            "SELECT user_id, id FROM generations ORDER BY created_at DESC LIMIT 1",
            &[],
        )
        .await
        .expect("a generation");
    let public_row = client
        .query_one(
            "SELECT g.id FROM generations g JOIN projects p ON p.id = g.project_id \
             WHERE p.visibility = 'public' AND g.status = 'completed' ORDER BY g.created_at DESC LIMIT 1",
            &[],
        )
        .await
        .expect("a public generation");
    let (owner, generation): (uuid::Uuid, uuid::Uuid) = (owner_row.get(0), owner_row.get(1));
    let public: uuid::Uuid = public_row.get(0);

    let mut vars = support::origin_vars(&db, Some(&redis));
    vars.insert(
        "AUTHZ_WARMING_INTERVAL_SECONDS".to_owned(),
        "3600".to_owned(),
    );
    let origin = TestOrigin::start(vars).await;
    let mut report = None;
    for _ in 0..200 {
        report = origin.state.last_warming.lock().expect("lock").clone();
        if report.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let report = report.expect("a warming pass ran");
    assert_eq!(report.patterns, 2);
    assert!(report.questions >= 51, "{report:?}");
    let queries = origin.state.decider.facts_queries();
    for body in [
        json!({"user_id": owner, "resource_type": "generation", "resource_id": generation, "operation": "read"}),
        json!({"user_id": null, "resource_type": "generation", "resource_id": public, "operation": "read"}),
    ] {
        let (status, answer) = origin.authorize(body).await;
        assert_eq!(status, 200);
        assert_eq!(
            (answer["granted"].as_bool(), answer["source"].as_str()),
            (Some(true), Some("l1")),
            "{answer}"
        );
    }
    assert_eq!(
        origin.state.decider.facts_queries(),
        queries,
        "no query was needed"
    );
    let decisions = redis
        .keys()
        .await
        .into_iter()
        .filter(|key| key.contains(":authorization:"))
        .count();
    assert!(decisions >= 51, "{decisions} decisions in Redis");
    origin.stop().await;
}
