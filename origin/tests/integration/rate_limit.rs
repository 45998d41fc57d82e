//! Rate limits of `/v1/*` over HTTP (`authz_origin::rate_limit`): per end user, per client IP,
//! service-token callers exempt by default or limited by their own setting, batches costing
//! their checks, and `AUTHZ_RATE_LIMIT=off`.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::support::{self, JWT_SECRET, SERVICE_TOKEN, TestDb, TestOrigin};

const GENERATION: &str = "d0000000-0000-4000-8000-000000000001";

fn user(n: u32) -> String {
    format!("a0000000-0000-4000-8000-{n:012x}")
}

fn jwt(user: &str) -> String {
    let key = authz_core::jwt::JwtKey::new(JWT_SECRET.as_bytes()).expect("key");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    authz_core::jwt::sign_hs256(&json!({"sub": user, "exp": now + 600}).to_string(), &key)
}

fn question() -> Value {
    json!({"resource_type": "generation", "resource_id": GENERATION, "operation": "read"})
}

/// One POST: the status, the `Retry-After` header and the JSON body.
async fn post(
    origin: &TestOrigin,
    path: &str,
    token: &str,
    body: &Value,
) -> (u16, Option<String>, Value) {
    let response = support::http_client()
        .post(format!("{}{path}", origin.base))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().expect("ascii").to_owned());
    (
        status,
        retry_after,
        response.json().await.unwrap_or(Value::Null),
    )
}

/// Asserts API.md's 429: code, message, and `Retry-After` in whole seconds, at least 1 and at
/// most `max_seconds`.
fn check_rate_limited(status: u16, retry_after: Option<&str>, body: &Value, max_seconds: u64) {
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    let seconds: u64 = retry_after
        .expect("Retry-After is set")
        .parse()
        .expect("Retry-After is whole seconds");
    assert!(
        (1..=max_seconds).contains(&seconds),
        "Retry-After {seconds}"
    );
}

async fn origin(db: &TestDb, settings: &[(&str, &str)]) -> TestOrigin {
    let mut vars: HashMap<String, String> = support::origin_vars(db, None);
    for (name, value) in settings {
        vars.insert((*name).to_owned(), (*value).to_owned());
    }
    TestOrigin::start(vars).await
}

#[tokio::test]
async fn the_sixth_jwt_request_of_a_user_gets_429() {
    let db = TestDb::new().await;
    let origin = origin(&db, &[("AUTHZ_RATE_LIMIT_USER_PER_MINUTE", "5")]).await;
    let alice = jwt(&user(1));
    for attempt in 1..=5 {
        let (status, _, body) = post(&origin, "/v1/authorize", &alice, &question()).await;
        assert_eq!(status, 200, "attempt {attempt}: {body}");
    }
    let (status, retry_after, body) = post(&origin, "/v1/authorize", &alice, &question()).await;
    // 5 per minute: the next unit comes 12 s after the burst began.
    check_rate_limited(status, retry_after.as_deref(), &body, 12);

    // Another user is not affected.
    let (status, _, body) = post(&origin, "/v1/authorize", &jwt(&user(2)), &question()).await;
    assert_eq!(status, 200, "{body}");

    // The service token is exempt by default, however much it asks.
    for _ in 0..30 {
        let (status, _, body) = post(
            &origin,
            "/v1/authorize",
            SERVICE_TOKEN,
            &json!({"user_id": user(1), "resource_type": "generation", "resource_id": GENERATION, "operation": "read"}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    // And the refusals are counted.
    let metrics = origin.metrics_text().await;
    assert!(
        metrics.contains("authz_rate_limited_total{scope=\"user\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_batch_costs_one_unit_per_check() {
    let db = TestDb::new().await;
    let origin = origin(&db, &[("AUTHZ_RATE_LIMIT_USER_PER_MINUTE", "5")]).await;
    let alice = jwt(&user(1));
    let batch = json!({"checks": [question(), question(), question()]});
    let (status, _, body) = post(&origin, "/v1/authorize/batch", &alice, &batch).await;
    assert_eq!(status, 200, "{body}");
    let (status, retry_after, body) = post(&origin, "/v1/authorize/batch", &alice, &batch).await;
    check_rate_limited(status, retry_after.as_deref(), &body, 12);
    // Two units are left for single checks.
    for _ in 0..2 {
        let (status, _, body) = post(&origin, "/v1/authorize", &alice, &question()).await;
        assert_eq!(status, 200, "{body}");
    }
    // A batch over the whole allowance can never pass: Retry-After is the full minute.
    let bob = jwt(&user(2));
    let big = json!({"checks": vec![question(); 6]});
    let (status, retry_after, body) = post(&origin, "/v1/authorize/batch", &bob, &big).await;
    check_rate_limited(status, retry_after.as_deref(), &body, 60);
    assert_eq!(retry_after.as_deref(), Some("60"));
}

#[tokio::test]
async fn the_client_ip_has_its_own_limit() {
    let db = TestDb::new().await;
    let origin = origin(&db, &[("AUTHZ_RATE_LIMIT_IP_PER_MINUTE", "5")]).await;
    // Five users from one address (the test's 127.0.0.1): each under its own limit of 100.
    for n in 1..=5 {
        let (status, _, body) = post(&origin, "/v1/authorize", &jwt(&user(n)), &question()).await;
        assert_eq!(status, 200, "user {n}: {body}");
    }
    let (status, retry_after, body) =
        post(&origin, "/v1/authorize", &jwt(&user(6)), &question()).await;
    check_rate_limited(status, retry_after.as_deref(), &body, 12);
    // A forged X-Forwarded-For does not escape the limit: the peer address is what counts.
    let response = support::http_client()
        .post(format!("{}/v1/authorize", origin.base))
        .bearer_auth(jwt(&user(7)))
        .header("x-forwarded-for", "198.51.100.7")
        .json(&question())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 429);
}

#[tokio::test]
async fn service_callers_get_their_own_limit_when_configured() {
    let db = TestDb::new().await;
    let origin = origin(
        &db,
        &[
            ("AUTHZ_RATE_LIMIT_USER_PER_MINUTE", "1"),
            ("AUTHZ_RATE_LIMIT_SERVICE_PER_MINUTE", "5"),
        ],
    )
    .await;
    let body = json!({"user_id": user(1), "resource_type": "generation", "resource_id": GENERATION, "operation": "read"});
    // The service's allowance is its own: the per-user limit of 1 does not apply to it.
    for attempt in 1..=5 {
        let (status, _, response) = post(&origin, "/v1/authorize", SERVICE_TOKEN, &body).await;
        assert_eq!(status, 200, "attempt {attempt}: {response}");
    }
    let (status, retry_after, response) =
        post(&origin, "/v1/authorize", SERVICE_TOKEN, &body).await;
    check_rate_limited(status, retry_after.as_deref(), &response, 12);
}

#[tokio::test]
async fn rate_limit_off_disables_every_limit() {
    let db = TestDb::new().await;
    let origin = origin(
        &db,
        &[
            ("AUTHZ_RATE_LIMIT", "off"),
            ("AUTHZ_RATE_LIMIT_USER_PER_MINUTE", "2"),
            ("AUTHZ_RATE_LIMIT_IP_PER_MINUTE", "2"),
            ("AUTHZ_RATE_LIMIT_SERVICE_PER_MINUTE", "2"),
        ],
    )
    .await;
    let alice = jwt(&user(1));
    for attempt in 1..=10 {
        let (status, _, body) = post(&origin, "/v1/authorize", &alice, &question()).await;
        assert_eq!(status, 200, "attempt {attempt}: {body}");
    }
    let (status, _, body) = post(
        &origin,
        "/v1/authorize/batch",
        &alice,
        &json!({"checks": vec![question(); 10]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}
