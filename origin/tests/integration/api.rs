//! API.md's error table and authentication, over HTTP against a real origin.

use serde_json::json;

use crate::support::{self, ADMIN_TOKEN, SERVICE_TOKEN, TestDb, TestOrigin};

const USER: &str = "a0000000-0000-4000-8000-000000000001";
const GENERATION: &str = "d0000000-0000-4000-8000-000000000001";

fn check_error(
    status: u16,
    body: &serde_json::Value,
    expected_status: u16,
    code: &str,
    field: Option<&str>,
) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    match field {
        Some(field) => assert_eq!(body["error"]["field"], field, "{body}"),
        None => assert!(body["error"].get("field").is_none(), "{body}"),
    }
}

fn question(
    user_id: &str,
    resource_type: &str,
    resource_id: &str,
    operation: &str,
) -> serde_json::Value {
    json!({"user_id": user_id, "resource_type": resource_type, "resource_id": resource_id, "operation": operation})
}

#[tokio::test]
async fn bad_input_gets_a_400_naming_the_field() {
    let db = TestDb::new().await;
    let origin = TestOrigin::start(support::origin_vars(&db, None)).await;
    let cases = [
        (
            question("not-a-uuid", "generation", GENERATION, "read"),
            "invalid_uuid",
            Some("user_id"),
        ),
        (
            question(
                "00000000-0000-0000-0000-000000000000",
                "generation",
                GENERATION,
                "read",
            ),
            "invalid_uuid",
            Some("user_id"),
        ),
        (
            question(USER, "file", GENERATION, "read"),
            "invalid_resource_type",
            Some("resource_type"),
        ),
        (
            question(
                USER,
                "generation",
                "{d0000000-0000-4000-8000-000000000001}",
                "read",
            ),
            "invalid_uuid",
            Some("resource_id"),
        ),
        (
            question(
                USER,
                "generation",
                "ffffffff-ffff-ffff-ffff-ffffffffffff",
                "read",
            ),
            "invalid_uuid",
            Some("resource_id"),
        ),
        (
            question(USER, "generation", GENERATION, "READ"),
            "invalid_operation",
            Some("operation"),
        ),
        (
            question(USER, "generation", GENERATION, "publish"),
            "invalid_operation",
            Some("operation"),
        ),
        (
            json!({"user_id": USER, "resource_id": GENERATION, "operation": "read"}),
            "invalid_request",
            Some("resource_type"),
        ),
        (
            json!({"user_id": USER, "resource_type": "generation", "resource_id": 42, "operation": "read"}),
            "invalid_request",
            Some("resource_id"),
        ),
        (
            json!({"user_id": USER, "resource_type": "generation", "resource_id": GENERATION, "operation": "read", "min_revision": -1}),
            "invalid_request",
            Some("min_revision"),
        ),
        (
            json!({"user_id": USER, "resource_type": "generation", "resource_id": GENERATION, "operation": "read", "extra": 1}),
            "invalid_request",
            Some("extra"),
        ),
        (json!([1, 2]), "invalid_request", None),
    ];
    for (body, code, field) in cases {
        let (status, answer) = origin.authorize(body.clone()).await;
        check_error(status, &answer, 400, code, field);
    }
    // Malformed JSON.
    let response = support::http_client()
        .post(format!("{}/v1/authorize", origin.base))
        .bearer_auth(SERVICE_TOKEN)
        .body("{\"user_id\":")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 400);
    let answer: serde_json::Value = response.json().await.expect("json");
    check_error(400, &answer, 400, "invalid_request", None);
    // A batch names the check at fault.
    let (status, answer) = origin
        .post(
            "/v1/authorize/batch",
            Some(SERVICE_TOKEN),
            json!({"checks": [question(USER, "generation", GENERATION, "read"), question(USER, "generation", GENERATION, "fly")]}),
        )
        .await;
    check_error(
        status,
        &answer,
        400,
        "invalid_operation",
        Some("checks[1].operation"),
    );
    origin.stop().await;
}

/// Issue 15: the OpenAPI document declares `min_revision` a JSON Schema `integer`, which counts
/// `2.0` and `2e0` as integers; the origin took only `2` and answered the others 400.
#[tokio::test]
async fn min_revision_may_be_written_with_a_fraction_or_an_exponent() {
    let db = TestDb::new().await;
    let origin = TestOrigin::start(support::origin_vars(&db, None)).await;
    let revision = support::current_revision(&db.client().await).await;
    let post = |path: &'static str, body: String| {
        let request = support::http_client()
            .post(format!("{}{path}", origin.base))
            .bearer_auth(SERVICE_TOKEN)
            .header("content-type", "application/json")
            .body(body);
        async move {
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            (
                status,
                response.json::<serde_json::Value>().await.expect("json"),
            )
        }
    };
    let check = |min_revision: &str| {
        format!(
            r#"{{"user_id":"{USER}","resource_type":"generation","resource_id":"{GENERATION}","operation":"read","min_revision":{min_revision}}}"#
        )
    };
    for written in [
        format!("{revision}"),
        format!("{revision}.0"),
        format!("{revision}e0"),
    ] {
        let (status, answer) = post("/v1/authorize", check(&written)).await;
        assert_eq!(status, 200, "{written}: {answer}");
        assert!(answer["revision"].as_i64() >= Some(revision), "{answer}");
        let batch = format!(r#"{{"checks":[{}]}}"#, check(&written));
        let (status, answer) = post("/v1/authorize/batch", batch).await;
        assert_eq!(status, 200, "{written}: {answer}");
    }
    let (status, answer) = post("/v1/authorize", check("1.5")).await;
    check_error(
        status,
        &answer,
        400,
        "invalid_request",
        Some("min_revision"),
    );
    origin.stop().await;
}

#[tokio::test]
async fn credentials_are_checked() {
    let db = TestDb::new().await;
    let origin = TestOrigin::start(support::origin_vars(&db, None)).await;
    let body = question(USER, "generation", GENERATION, "read");
    let (status, answer) = origin.post("/v1/authorize", None, body.clone()).await;
    check_error(status, &answer, 401, "unauthenticated", None);
    let (status, answer) = origin
        .post("/v1/authorize", Some("wrong-token"), body.clone())
        .await;
    check_error(status, &answer, 401, "unauthenticated", None);
    // Issue 15: the admin token is a valid credential that may not ask for decisions, API.md's
    // 403 (as the service token is on the admin endpoints), not a malformed JWT's 401.
    for path in ["/v1/authorize", "/v1/authorize/batch"] {
        let (status, answer) = origin
            .post(path, Some(ADMIN_TOKEN), json!({"checks": [body.clone()]}))
            .await;
        check_error(status, &answer, 403, "forbidden", None);
    }

    // An end-user JWT: the principal is its subject; asking for someone else is forbidden.
    let key = authz_core::jwt::JwtKey::new(support::JWT_SECRET.as_bytes()).expect("key");
    let exp = authz_origin::clock::now().as_seconds() + 600;
    let token = authz_core::jwt::sign_hs256(&json!({"sub": USER, "exp": exp}).to_string(), &key);
    let (status, answer) = origin
        .post(
            "/v1/authorize",
            Some(&token),
            json!({"resource_type": "generation", "resource_id": GENERATION, "operation": "read"}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["reason"], "user_not_found");
    let other = question(
        "a0000000-0000-4000-8000-000000000002",
        "generation",
        GENERATION,
        "read",
    );
    let (status, answer) = origin.post("/v1/authorize", Some(&token), other).await;
    check_error(status, &answer, 403, "forbidden", None);
    let expired =
        authz_core::jwt::sign_hs256(&json!({"sub": USER, "exp": exp - 3_600}).to_string(), &key);
    let (status, answer) = origin
        .post("/v1/authorize", Some(&expired), body.clone())
        .await;
    check_error(status, &answer, 401, "unauthenticated", None);
    let wrong_key = authz_core::jwt::JwtKey::new(b"another-secret-another-secret-xx").expect("key");
    let forged =
        authz_core::jwt::sign_hs256(&json!({"sub": USER, "exp": exp}).to_string(), &wrong_key);
    let (status, answer) = origin.post("/v1/authorize", Some(&forged), body).await;
    check_error(status, &answer, 401, "unauthenticated", None);
    origin.stop().await;
}

#[tokio::test]
async fn the_jwt_policy_variables_refuse_audience_issuer_and_lifetime() {
    let db = TestDb::new().await;
    let mut vars = support::origin_vars(&db, None);
    for (name, value) in [
        ("AUTHZ_JWT_AUDIENCE", "authz-test"),
        ("AUTHZ_JWT_ISSUER", "https://issuer.test"),
        ("AUTHZ_JWT_MAX_LIFETIME_SECONDS", "600"),
    ] {
        vars.insert(name.to_owned(), value.to_owned());
    }
    let origin = TestOrigin::start(vars).await;
    let key = authz_core::jwt::JwtKey::new(support::JWT_SECRET.as_bytes()).expect("key");
    let now = authz_origin::clock::now().as_seconds();
    let good = json!({"sub": USER, "aud": "authz-test", "iss": "https://issuer.test",
        "iat": now, "exp": now + 300});
    let body =
        json!({"resource_type": "generation", "resource_id": GENERATION, "operation": "read"});
    let with = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut claims = good.clone();
        change(&mut claims);
        authz_core::jwt::sign_hs256(&claims.to_string(), &key)
    };
    let (status, answer) = origin
        .post("/v1/authorize", Some(&with(&|_| {})), body.clone())
        .await;
    assert_eq!(status, 200, "{answer}");
    for (name, token) in [
        (
            "wrong audience",
            with(&|c| c["aud"] = json!("another-service")),
        ),
        (
            "wrong issuer",
            with(&|c| c["iss"] = json!("https://elsewhere.test")),
        ),
        (
            "lifetime over the maximum",
            with(&|c| c["exp"] = json!(now + 3_600)),
        ),
    ] {
        let (status, answer) = origin
            .post("/v1/authorize", Some(&token), body.clone())
            .await;
        assert_eq!(status, 401, "{name}: {answer}");
        assert_eq!(answer["error"]["code"], "unauthenticated", "{name}");
    }
    origin.stop().await;
}

#[tokio::test]
async fn oversized_bodies_and_batches_get_a_413() {
    let db = TestDb::new().await;
    let origin = TestOrigin::start(support::origin_vars(&db, None)).await;
    let padding = "x".repeat(70 * 1024);
    let (status, answer) = origin
        .authorize(json!({"user_id": USER, "resource_type": "generation", "resource_id": GENERATION, "operation": "read", "pad": padding}))
        .await;
    check_error(status, &answer, 413, "payload_too_large", None);
    let checks: Vec<_> = (0..101)
        .map(|_| question(USER, "generation", GENERATION, "read"))
        .collect();
    let (status, answer) = origin
        .post(
            "/v1/authorize/batch",
            Some(SERVICE_TOKEN),
            json!({ "checks": checks }),
        )
        .await;
    check_error(status, &answer, 413, "payload_too_large", None);
    let checks: Vec<_> = (0..100)
        .map(|_| question(USER, "generation", GENERATION, "read"))
        .collect();
    let (status, answer) = origin
        .post(
            "/v1/authorize/batch",
            Some(SERVICE_TOKEN),
            json!({ "checks": checks }),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"].as_array().map(Vec::len), Some(100));
    origin.stop().await;
}

#[tokio::test]
async fn a_deny_is_a_200_and_unknown_routes_a_json_404() {
    let db = TestDb::new().await;
    let origin = TestOrigin::start(support::origin_vars(&db, None)).await;
    let (status, answer) = origin
        .authorize(question(USER, "team", GENERATION, "admin"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer["granted"], false);
    assert_eq!(answer["reason"], "user_not_found");
    assert!(answer["access_method"].is_null() && answer["effective_role"].is_null());
    assert!(answer["revision"].as_u64().is_some());
    let (status, answer) = origin.get("/v1/nothing", None).await;
    check_error(status, &answer, 404, "not_found", None);
    let (status, answer) = origin.get("/api/v1/health", None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["status"], "ok",
        "no redis configured and the listener is up: {answer}"
    );
    origin.stop().await;
}

#[tokio::test]
async fn anonymous_health_is_the_status_only_probed_at_most_once_a_second() {
    let db = TestDb::new().await;
    let origin = TestOrigin::start(support::origin_vars(&db, None)).await;
    let probes = |text: &str| -> u64 {
        text.lines()
            .find(|line| line.starts_with("authz_health_probes_total"))
            .and_then(|line| line.split_whitespace().last())
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    };
    let before = probes(&origin.metrics_text().await);
    // Anonymous, and with a credential that is not the admin token: the status only.
    for token in [None, Some(support::SERVICE_TOKEN), Some("not-a-token")] {
        for _ in 0..10 {
            let (status, answer) = origin.get("/api/v1/health", token).await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer, json!({"status": "ok"}), "{token:?}");
        }
    }
    let anonymous = probes(&origin.metrics_text().await) - before;
    assert!(
        (1..=2).contains(&anonymous),
        "30 anonymous calls probed {anonymous} times"
    );
    // The admin token: every detail, probed for the call.
    let (status, answer) = origin
        .get("/api/v1/health", Some(support::ADMIN_TOKEN))
        .await;
    assert_eq!(status, 200, "{answer}");
    for field in [
        "version",
        "uptime_seconds",
        "postgres",
        "redis",
        "invalidation",
        "l1_entries",
    ] {
        assert!(answer.get(field).is_some(), "{field}: {answer}");
    }
    assert!(answer["invalidation"]["revision"].is_number(), "{answer}");
    origin.stop().await;
}
