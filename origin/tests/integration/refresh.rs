//! Refresh-ahead: an L1 hit late in its entry's life recomputes the entry in the background,
//! so a question asked more often than its TTL never misses; and a refresh never brings back
//! an answer that a revocation ended.

use std::time::Duration;

use serde_json::{Value, json};

use crate::consistency::{GENERATION, READER, shared_generation};
use crate::support::{self, TestDb, TestOrigin};

fn question() -> Value {
    json!({"user_id": READER, "resource_type": "generation", "resource_id": GENERATION, "operation": "download"})
}

/// An origin on `db` whose grants live one second, refreshing in the last `percent` %.
async fn origin(db: &TestDb, percent: &str) -> TestOrigin {
    let mut vars = support::origin_vars(db, None);
    vars.insert("AUTHZ_GRANT_TTL_MS".to_owned(), "1000".to_owned());
    vars.insert("AUTHZ_DENY_TTL_MS".to_owned(), "1000".to_owned());
    vars.insert("AUTHZ_REFRESH_AHEAD_PERCENT".to_owned(), percent.to_owned());
    let origin = TestOrigin::start(vars).await;
    let client = db.client().await;
    origin
        .wait_revision(support::current_revision(&client).await)
        .await;
    origin
}

/// Asks the question every 50 ms for `span`; the answering tier of each answer.
async fn ask_for(origin: &TestOrigin, span: Duration) -> Vec<(bool, String)> {
    let end = tokio::time::Instant::now() + span;
    let mut answers = Vec::new();
    while tokio::time::Instant::now() < end {
        let (status, body) = origin.authorize(question()).await;
        assert_eq!(status, 200, "{body}");
        answers.push((
            body["granted"].as_bool().expect("granted"),
            body["source"].as_str().expect("source").to_owned(),
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    answers
}

#[tokio::test]
async fn a_question_asked_more_often_than_its_ttl_stays_in_l1() {
    let db = TestDb::new().await;
    shared_generation(&db.client().await, None).await;

    // Without refresh-ahead: the entry expires every second and the next ask misses.
    let plain = origin(&db, "0").await;
    let answers = ask_for(&plain, Duration::from_millis(3_500)).await;
    let misses = answers.iter().filter(|(_, tier)| tier == "db").count();
    assert!(misses >= 3, "expected a miss a second, got {answers:?}");
    plain.stop().await;

    // With it: one miss (the first ask), then L1 only, while the facts are read again in
    // the background about every half second.
    let refreshing = origin(&db, "50").await;
    let before = refreshing.state.decider.facts_queries();
    let answers = ask_for(&refreshing, Duration::from_millis(3_500)).await;
    assert!(answers.iter().all(|(granted, _)| *granted), "{answers:?}");
    assert_eq!(answers[0].1, "db", "{answers:?}");
    assert!(
        answers[1..].iter().all(|(_, tier)| tier == "l1"),
        "a refreshed entry missed: {answers:?}"
    );
    let refreshes = refreshing.state.decider.facts_queries() - before - 1;
    assert!(
        (4..=12).contains(&refreshes),
        "expected about two refreshes a second, got {refreshes}"
    );
    let metrics = refreshing.metrics_text().await;
    assert!(
        metrics.contains("authz_refresh_ahead_total{outcome=\"refreshed\"}"),
        "{metrics}"
    );
    refreshing.stop().await;
}

#[tokio::test]
async fn a_refresh_never_brings_back_a_revoked_grant() {
    let db = TestDb::new().await;
    let client = db.client().await;
    shared_generation(&client, None).await;
    let origin = origin(&db, "90").await;
    // Hot and in its refresh window almost at once (90 %: after 100 ms of a 1 s life).
    let answers = ask_for(&origin, Duration::from_millis(600)).await;
    assert!(answers.iter().all(|(granted, _)| *granted), "{answers:?}");

    client
        .execute(
            "UPDATE generation_shares SET is_active = false WHERE generation_id = $1::text::uuid",
            &[&GENERATION],
        )
        .await
        .expect("revoke");
    origin
        .wait_revision(support::current_revision(&client).await)
        .await;
    // From the notice on, every answer is a deny, across several refresh windows.
    let answers = ask_for(&origin, Duration::from_millis(2_500)).await;
    assert!(
        answers.iter().all(|(granted, _)| !*granted),
        "a grant after the revocation: {answers:?}"
    );
    origin.stop().await;
}
