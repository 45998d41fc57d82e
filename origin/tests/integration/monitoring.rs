//! Monitoring against a real origin, Postgres and Redis: an alert opened by real traffic,
//! kept single while it stays open, sent to a webhook (through a retry) and resolved; the
//! admin endpoints' authentication; `/metrics` in Prometheus text format; aggregates persisted
//! to the performance tables; the dashboard page rendered by headless Chromium.
//!
//! The page test drives Debian's `chromium` (override with `AUTHZ_CHROMIUM`). Chromium cannot
//! send an `Authorization` header or fill a form from its command line, so the test asks the
//! origin for a one-time login link (`POST /admin/login-link` with the admin token) and points
//! Chromium at it: the link is valid once for 60 s, its redemption sets the page's HttpOnly,
//! SameSite=Strict session cookie and redirects to `/admin/`. The admin token itself never
//! appears on Chromium's command line.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    self, ADMIN_TOKEN, JWT_SECRET, SERVICE_TOKEN, TestDb, TestOrigin, TestRedis, http_client,
};

/// A user, a generation they own and a stranger, inserted with SQL.
struct Fixture {
    owner: Uuid,
    stranger: Uuid,
    generation: Uuid,
}

async fn fixture(db: &TestDb) -> Fixture {
    let client = db.client().await;
    let fixture = Fixture {
        owner: Uuid::new_v4(),
        stranger: Uuid::new_v4(),
        generation: Uuid::new_v4(),
    };
    for user in [fixture.owner, fixture.stranger] {
        client
            .execute("INSERT INTO users (id) VALUES ($1)", &[&user])
            .await
            .expect("insert user");
    }
    client
        .execute(
            "INSERT INTO generations (id, user_id, status) VALUES ($1, $2, 'completed')",
            &[&fixture.generation, &fixture.owner],
        )
        .await
        .expect("insert generation");
    fixture
}

fn question(user: Uuid, generation: Uuid) -> Value {
    json!({
        "user_id": user.to_string(),
        "resource_type": "generation",
        "resource_id": generation.to_string(),
        "operation": "read",
    })
}

/// Real traffic: repeated questions (cache hits), new ones (Postgres), grants and denies, a
/// batch, and one malformed request (an error by code).
async fn traffic(origin: &TestOrigin, fixture: &Fixture, rounds: usize) {
    for round in 0..rounds {
        let (status, body) = origin
            .authorize(question(fixture.owner, fixture.generation))
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = origin
            .authorize(question(fixture.stranger, fixture.generation))
            .await;
        assert_eq!(status, 200, "{body}");
        if round % 5 == 0 {
            let (status, body) = origin
                .authorize(question(fixture.owner, Uuid::new_v4()))
                .await;
            assert_eq!(status, 200, "{body}");
        }
    }
    let (status, body) = origin
        .post(
            "/v1/authorize/batch",
            Some(SERVICE_TOKEN),
            json!({"checks": [
                question(fixture.owner, fixture.generation),
                question(fixture.stranger, Uuid::new_v4()),
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = origin
        .authorize(json!({"user_id": "nope", "resource_type": "generation",
                          "resource_id": fixture.generation.to_string(), "operation": "read"}))
        .await;
    assert_eq!(status, 400);
}

async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A webhook receiver on a free port: it answers 503 to its very first call (so delivery
/// must retry) and 200 afterwards, keeping every body it received.
struct Webhook {
    url: String,
    received: Arc<Mutex<Vec<Value>>>,
    calls: Arc<Mutex<usize>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Receiver {
    received: Arc<Mutex<Vec<Value>>>,
    calls: Arc<Mutex<usize>>,
}

async fn receive(State(receiver): State<Receiver>, Json(body): Json<Value>) -> StatusCode {
    let first = {
        let mut calls = receiver.calls.lock().expect("calls");
        *calls += 1;
        *calls == 1
    };
    if first {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    receiver.received.lock().expect("received").push(body);
    StatusCode::OK
}

impl Webhook {
    async fn start() -> Self {
        let receiver = Receiver {
            received: Arc::default(),
            calls: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            received: receiver.received,
            calls: receiver.calls,
            task,
        }
    }

    fn events(&self, event: &str, metric: &str) -> Vec<Value> {
        self.received
            .lock()
            .expect("received")
            .iter()
            .filter(|body| body["event"] == event && body["alert"]["metric_name"] == metric)
            .cloned()
            .collect()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_crossed_threshold_alerts_once_calls_the_webhook_and_resolves() {
    let db = TestDb::new().await;
    let sql = db.client().await;
    // Only p99 latency is judged, with a warning limit any real request crosses.
    sql.batch_execute(
        "UPDATE performance_thresholds SET enabled = (metric_name = 'p99_latency_ms'); \
         UPDATE performance_thresholds SET warning_value = 0.000001, critical_value = 1000000 \
          WHERE metric_name = 'p99_latency_ms'",
    )
    .await
    .expect("thresholds");
    let fixture = fixture(&db).await;
    let webhook = Webhook::start().await;
    let mut vars = support::origin_vars(&db, None);
    for (name, value) in [
        ("AUTHZ_ALERT_INTERVAL_SECONDS", "1"),
        ("AUTHZ_ALERT_WINDOW_SECONDS", "300"),
        ("AUTHZ_ALERT_WEBHOOK_URL", webhook.url.as_str()),
        ("AUTHZ_ALERT_WEBHOOK_TIMEOUT_MS", "2000"),
        ("AUTHZ_ALERT_WEBHOOK_RETRIES", "3"),
    ] {
        vars.insert(name.to_owned(), value.to_owned());
    }
    let origin = TestOrigin::start(vars).await;
    traffic(&origin, &fixture, 20).await;

    let opened = wait_for("the opened webhook", Duration::from_secs(15), || async {
        webhook
            .events("opened", "p99_latency_ms")
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(opened["service"], "authz-origin", "{opened}");
    assert_eq!(opened["alert"]["level"], "warning", "{opened}");
    assert!(
        opened["alert"]["value"]
            .as_f64()
            .is_some_and(|v| v > 0.000001),
        "{opened}"
    );
    assert_eq!(opened["alert"]["threshold"], 0.000001, "{opened}");
    assert_eq!(opened["alert"]["comparison"], "gt", "{opened}");
    assert_eq!(opened["alert"]["resolved_at"], Value::Null, "{opened}");
    assert!(
        *webhook.calls.lock().expect("calls") >= 2,
        "the first call failed and was retried"
    );

    let open_rows = "SELECT id, level, started_at IS NOT NULL, resolved_at IS NULL, occurrences \
                       FROM performance_alerts WHERE metric_name = 'p99_latency_ms'";
    let rows = sql.query(open_rows, &[]).await.expect("alerts");
    assert_eq!(rows.len(), 1);
    let id: i64 = rows[0].get(0);
    assert_eq!(opened["alert"]["id"], id);
    assert_eq!(rows[0].get::<_, String>(1), "warning");
    assert!(rows[0].get::<_, bool>(2), "started_at is set");
    assert!(rows[0].get::<_, bool>(3), "resolved_at is null");

    // Several evaluations later the condition is still open: still one row, seen again.
    let occurrences = wait_for(
        "three more evaluations",
        Duration::from_secs(15),
        || async {
            let rows = sql.query(open_rows, &[]).await.expect("alerts");
            assert_eq!(rows.len(), 1, "one row while the alert stays open");
            assert!(rows[0].get::<_, bool>(3), "still open");
            let occurrences: i32 = rows[0].get(4);
            (occurrences >= 4).then_some(occurrences)
        },
    )
    .await;
    assert!(occurrences >= 4);
    assert_eq!(
        webhook.events("opened", "p99_latency_ms").len(),
        1,
        "opened once"
    );
    let (status, dashboard) = origin
        .get("/api/v1/system/performance/dashboard", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        dashboard["open_alerts"][0]["metric_name"], "p99_latency_ms",
        "{dashboard}"
    );

    // Relaxed: the next evaluation resolves it.
    sql.execute(
        "UPDATE performance_thresholds SET warning_value = 1000000, critical_value = 2000000 \
          WHERE metric_name = 'p99_latency_ms'",
        &[],
    )
    .await
    .expect("relax");
    let resolved = wait_for("the resolved webhook", Duration::from_secs(15), || async {
        webhook
            .events("resolved", "p99_latency_ms")
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(resolved["alert"]["id"], id, "{resolved}");
    assert!(resolved["alert"]["resolved_at"].is_string(), "{resolved}");
    let rows = sql
        .query(
            "SELECT resolved_at IS NOT NULL, alert_resolved_at IS NOT NULL, resolved_at >= started_at \
               FROM performance_alerts WHERE metric_name = 'p99_latency_ms'",
            &[],
        )
        .await
        .expect("alerts");
    assert_eq!(rows.len(), 1, "resolved in place, no new row");
    assert!(rows[0].get::<_, bool>(0) && rows[0].get::<_, bool>(1) && rows[0].get::<_, bool>(2));
    origin.stop().await;
}

fn user_jwt(user: Uuid) -> String {
    let key = authz_core::jwt::JwtKey::new(JWT_SECRET.as_bytes()).expect("key");
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 600;
    authz_core::jwt::sign_hs256(
        &json!({"sub": user.to_string(), "exp": exp}).to_string(),
        &key,
    )
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client")
}

/// The body is API.md's error and nothing else.
fn check_error_only(body: &str, code: &str, context: &str) {
    let value: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{context}: {body}"));
    let keys: BTreeSet<&str> = value
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, BTreeSet::from(["error"]), "{context}: {body}");
    let error_keys: BTreeSet<&str> = value["error"]
        .as_object()
        .expect("error object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        error_keys,
        BTreeSet::from(["code", "message"]),
        "{context}: {body}"
    );
    assert_eq!(value["error"]["code"], code, "{context}: {body}");
}

#[tokio::test]
async fn admin_endpoints_need_the_admin_token() {
    let db = TestDb::new().await;
    let fixture = fixture(&db).await;
    let origin = TestOrigin::start(support::origin_vars(&db, None)).await;
    traffic(&origin, &fixture, 3).await;
    let client = no_redirects();
    let user = user_jwt(fixture.owner);
    let paths = [
        "/api/v1/system/performance/dashboard",
        "/api/v1/system/performance/targets",
        "/api/v1/system/cache/health",
        "/api/v1/system/database/health",
        "/admin/performance-dashboard",
        "/admin/",
    ];
    for path in paths {
        let url = format!("{}{path}", origin.base);
        for (token, status, code) in [
            (None, 401, "unauthenticated"),
            (Some("not-the-admin-token-at-all"), 401, "unauthenticated"),
            (Some(SERVICE_TOKEN), 403, "forbidden"),
            (Some(user.as_str()), 403, "forbidden"),
        ] {
            let mut request = client.get(&url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("request");
            assert_eq!(response.status().as_u16(), status, "{path} {token:?}");
            let body = response.text().await.expect("body");
            check_error_only(&body, code, path);
        }
        let response = client
            .get(&url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let body = response.text().await.expect("body");
        if path == "/admin/" {
            assert!(
                body.contains("<svg") && body.contains("performance tier"),
                "{body}"
            );
        } else {
            serde_json::from_str::<Value>(&body).expect("json");
        }
    }

    // The one-time login link is for admins only.
    let url = format!("{}/admin/login-link", origin.base);
    let response = client.post(&url).send().await.expect("request");
    assert_eq!(response.status().as_u16(), 401);
    check_error_only(
        &response.text().await.expect("body"),
        "unauthenticated",
        "link",
    );
    let response = client
        .post(&url)
        .bearer_auth(SERVICE_TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 403);
    check_error_only(&response.text().await.expect("body"), "forbidden", "link");

    // A browser without credentials gets the login form, which shows nothing of the service.
    let page = format!("{}/admin/", origin.base);
    let response = client
        .get(&page)
        .header("accept", "text/html")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 401);
    let body = response.text().await.expect("body");
    assert!(body.contains("<form") && !body.contains("<svg"), "{body}");

    // The login form: a wrong token is refused; the right one sets an HttpOnly, SameSite=Strict
    // cookie for /admin/ that the page accepts and the JSON endpoints do not.
    let login = format!("{}/admin/login", origin.base);
    let response = client
        .post(&login)
        .form(&[("token", "wrong-token-wrong-token")])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 401);
    assert!(response.headers().get("set-cookie").is_none());
    let response = client
        .post(&login)
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(response.headers()["location"], "/admin/");
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    assert!(
        set_cookie.contains("HttpOnly")
            && set_cookie.contains("SameSite=Strict")
            && set_cookie.contains("Path=/admin/")
            && !set_cookie.contains(ADMIN_TOKEN),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().expect("pair").to_owned();
    let response = client
        .get(&page)
        .header("cookie", &cookie)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    let response = client
        .get(format!(
            "{}/api/v1/system/performance/dashboard",
            origin.base
        ))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("request");
    assert_eq!(
        response.status().as_u16(),
        401,
        "the cookie is for the page only"
    );
    let forged = format!("{}x", cookie);
    let response = client
        .get(&page)
        .header("cookie", &forged)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 401);
    origin.stop().await;
}

#[tokio::test]
async fn the_admin_documents_report_real_traffic() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let fixture = fixture(&db).await;
    let origin = TestOrigin::start(support::origin_vars(&db, Some(&redis))).await;
    traffic(&origin, &fixture, 10).await;
    let (status, all) = origin
        .get("/admin/performance-dashboard", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(status, 200);
    let performance = &all["performance_analytics"];
    assert!(
        performance["decisions"].as_u64().is_some_and(|n| n >= 24),
        "{performance}"
    );
    assert!(
        performance["latency_ms"]["p99"]
            .as_f64()
            .is_some_and(|v| v > 0.0),
        "{performance}"
    );
    assert!(
        performance["hit_rates"]["l1"]
            .as_f64()
            .is_some_and(|v| v > 0.0),
        "{performance}"
    );
    assert!(performance["hit_rates"]["edge"].is_null());
    assert_eq!(
        performance["errors_by_code"]["invalid_uuid"], 1,
        "{performance}"
    );
    let tier = performance["performance_tier"].as_str().expect("tier");
    assert!(
        ["excellent", "good", "acceptable", "needs_optimization"].contains(&tier),
        "{tier}"
    );
    assert_eq!(performance["current_performance"]["performance_tier"], tier);

    let targets = &all["current_targets"];
    assert_eq!(targets["thresholds_source"], "database", "{targets}");
    assert!(
        targets["performance_tier_acceptable"].is_boolean(),
        "{targets}"
    );
    let p99 = targets["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .find(|target| target["metric_name"] == "p99_latency_ms")
        .expect("p99 target");
    assert!(p99["measured_value"].as_f64().is_some(), "{p99}");
    assert!(p99["met"].is_boolean(), "{p99}");

    let cache = &all["cache_health"];
    assert_eq!(
        cache["tiers"]["authorization"]["reachable"], true,
        "{cache}"
    );
    assert_eq!(
        cache["tiers"]["authorization"]["breaker"], "closed",
        "{cache}"
    );
    assert!(
        cache["tiers"]["l1"]["hit_rate"].as_f64().is_some(),
        "{cache}"
    );

    let database = &all["database_health"];
    assert_eq!(database["postgres"]["reachable"], true, "{database}");
    let pools = database["pools"].as_array().expect("pools");
    assert_eq!(pools.len(), 6);
    let authorization = pools
        .iter()
        .find(|pool| pool["name"] == "authorization_primary")
        .expect("pool");
    assert!(
        authorization["acquired_total"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{authorization}"
    );
    for field in ["size", "in_use", "idle", "waiters", "utilization", "errors"] {
        assert!(authorization[field].is_number(), "{field}: {authorization}");
    }
    origin.stop().await;
}

/// One sample line of the Prometheus text format: `name{labels} value`.
fn parse_sample(line: &str) -> (String, Vec<(String, String)>, f64) {
    let (series, value) = line
        .rsplit_once(' ')
        .unwrap_or_else(|| panic!("no value: {line}"));
    let value: f64 = value
        .parse()
        .unwrap_or_else(|_| panic!("not a float: {line}"));
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => {
            let inner = rest
                .strip_suffix('}')
                .unwrap_or_else(|| panic!("unclosed labels: {line}"));
            let mut labels = Vec::new();
            let mut rest = inner;
            while !rest.is_empty() {
                let (key, after) = rest
                    .split_once("=\"")
                    .unwrap_or_else(|| panic!("bad label: {line}"));
                let mut value = String::new();
                let mut chars = after.char_indices();
                let end = loop {
                    match chars.next() {
                        Some((_, '\\')) => {
                            value.push(chars.next().map(|(_, c)| c).expect("escape"));
                        }
                        Some((at, '"')) => break at,
                        Some((_, c)) => value.push(c),
                        None => panic!("unterminated label value: {line}"),
                    }
                };
                labels.push((key.to_owned(), value));
                rest = after[end + 1..].trim_start_matches(',');
            }
            (name, labels)
        }
        None => (series, Vec::new()),
    };
    assert!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
        "bad name: {line}"
    );
    (name.to_owned(), labels, value)
}

fn looks_like_an_id(value: &str) -> bool {
    let hex = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit());
    let dashed = value.len() == 36
        && value.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    dashed || (value.len() == 32 && hex(value))
}

#[tokio::test]
async fn metrics_parse_with_low_cardinality_labels() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let fixture = fixture(&db).await;
    let origin = TestOrigin::start(support::origin_vars(&db, Some(&redis))).await;
    traffic(&origin, &fixture, 5).await;
    // Unknown paths with ids in them must not become labels.
    let response = http_client()
        .get(format!("{}/v1/things/{}", origin.base, Uuid::new_v4()))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 404);
    // One sampler turn publishes the pool and cache gauges.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let response = http_client()
        .get(format!("{}/metrics", origin.base))
        .send()
        .await
        .expect("metrics");
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/plain")
    );
    let text = response.text().await.expect("body");
    let mut families = BTreeSet::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, labels, _) = parse_sample(line);
        for (key, value) in &labels {
            assert!(!looks_like_an_id(value), "{key}=\"{value}\" in {line}");
            assert!(!value.contains("/v1/things"), "raw path in {line}");
        }
        families.insert(name);
    }
    for expected in [
        "authz_decisions_total",
        "authz_decision_duration_seconds_bucket",
        "authz_errors_total",
        "authz_http_requests_total",
        "authz_http_request_duration_seconds_bucket",
        "authz_pool_size",
        "authz_pool_in_use",
        "authz_pool_idle",
        "authz_pool_waiters",
        "authz_pool_utilization_ratio",
        "authz_pool_wait_seconds_bucket",
        "authz_redis_command_seconds_bucket",
        "authz_redis_lookups_total",
        "authz_redis_breaker_state",
        "authz_cache_hit_ratio",
        "authz_window_latency_ms",
        "authz_performance_tier",
    ] {
        assert!(
            families.contains(expected),
            "{expected} missing from {families:?}"
        );
    }
    assert!(looks_like_an_id(&Uuid::new_v4().to_string()));
    assert!(looks_like_an_id(&Uuid::new_v4().simple().to_string()));
    origin.stop().await;
}

#[tokio::test]
async fn aggregates_and_pool_health_are_persisted() {
    let db = TestDb::new().await;
    let fixture = fixture(&db).await;
    let mut vars = support::origin_vars(&db, None);
    vars.insert("AUTHZ_METRICS_PERSIST_SECONDS".to_owned(), "1".to_owned());
    let origin = TestOrigin::start(vars).await;
    traffic(&origin, &fixture, 10).await;
    let sql = db.client().await;
    let row = wait_for("a metrics row", Duration::from_secs(10), || async {
        sql.query_opt(
            "SELECT sum(requests)::bigint, sum(grants)::bigint, sum(denies)::bigint, \
                    max(p99_latency_ms), min(window_seconds), \
                    sum((details -> 'errors_by_code' ->> 'invalid_uuid')::bigint)::bigint, \
                    bool_and(l1_hit_rate BETWEEN 0 AND 1) \
               FROM authorization_performance_metrics HAVING sum(requests) >= 25",
            &[],
        )
        .await
        .expect("metrics rows")
    })
    .await;
    let (requests, grants, denies): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert!(
        requests >= 25 && grants >= 10 && denies >= 10,
        "{requests} {grants} {denies}"
    );
    assert!(row.get::<_, f64>(3) > 0.0);
    assert!(row.get::<_, i32>(4) >= 1);
    assert_eq!(row.get::<_, i64>(5), 1, "the malformed request, by code");
    assert!(row.get::<_, bool>(6));
    let pools: i64 = wait_for("pool health rows", Duration::from_secs(10), || async {
        let count: i64 = sql
            .query_one(
                "SELECT count(DISTINCT pool_name) FROM connection_pool_health \
                  WHERE max_size > 0 AND utilization >= 0",
                &[],
            )
            .await
            .expect("pool rows")
            .get(0);
        (count == 6).then_some(count)
    })
    .await;
    assert_eq!(pools, 6);
    // The analytics function reads what was persisted.
    let analytics = sql
        .query_one(
            "SELECT requests, p99_latency_ms FROM get_authorization_performance_analytics('1 hour')",
            &[],
        )
        .await
        .expect("analytics");
    assert!(analytics.get::<_, i64>(0) >= 25);
    origin.stop().await;
}

fn chromium() -> String {
    if let Ok(path) = std::env::var("AUTHZ_CHROMIUM") {
        return path;
    }
    for candidate in ["chromium", "chromium-browser", "google-chrome"] {
        let found = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {candidate}"))
            .output()
            .is_ok_and(|output| output.status.success());
        if found {
            return candidate.to_owned();
        }
    }
    panic!("headless Chromium is needed: apt-get install -y chromium (or set AUTHZ_CHROMIUM)");
}

/// Runs headless Chromium on a fresh one-time login link with `mode` (`--dump-dom` or
/// `--screenshot=...`); its standard output.
async fn chromium_on_page(origin: &TestOrigin, profile: &std::path::Path, mode: &str) -> String {
    let (status, link) = origin
        .post("/admin/login-link", Some(ADMIN_TOKEN), json!({}))
        .await;
    assert_eq!(status, 200, "{link}");
    let url = format!("{}{}", origin.base, link["path"].as_str().expect("path"));
    let mut command = tokio::process::Command::new(chromium());
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1280,1600",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(mode)
        .arg(&url)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(90), command.output())
        .await
        .expect("chromium timed out")
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The `data-points` of the chart `id` in a DOM.
fn chart_points(dom: &str, id: &str) -> usize {
    let marker = format!("id=\"chart-{id}\" data-points=\"");
    let at = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("chart {id} missing"));
    dom[at + marker.len()..]
        .split('"')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn the_dashboard_page_renders_charts_in_headless_chromium() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let fixture = fixture(&db).await;
    let mut vars = support::origin_vars(&db, Some(&redis));
    vars.insert("AUTHZ_ALERT_INTERVAL_SECONDS".to_owned(), "1".to_owned());
    let origin = TestOrigin::start(vars).await;
    // Traffic across more than one 10 s bucket, so the lines have several points.
    traffic(&origin, &fixture, 15).await;
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(11) {
        traffic(&origin, &fixture, 5).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let profile = std::env::temp_dir().join(format!("authz-chromium-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&profile).expect("profile dir");
    let dom = chromium_on_page(&origin, &profile, "--dump-dom").await;
    assert!(
        dom.contains("Authorization origin: performance"),
        "not signed in: {dom}"
    );
    for chart in ["latency", "throughput", "hit-rate", "pools"] {
        assert!(chart_points(&dom, chart) > 0, "chart {chart} is empty");
    }
    assert!(
        chart_points(&dom, "latency") >= 6,
        "p50/p95/p99 over two buckets"
    );
    let polylines: Vec<&str> = dom
        .match_indices("<polyline")
        .filter_map(|(at, _)| dom[at..].split("points=\"").nth(1)?.split('"').next())
        .collect();
    assert!(polylines.len() >= 4, "{polylines:?}");
    assert!(
        polylines
            .iter()
            .any(|points| points.split(' ').count() >= 2),
        "a line with two points at least: {polylines:?}"
    );
    let tier_card = dom
        .split("id=\"tier\"")
        .nth(1)
        .and_then(|rest| rest.split("<b>").nth(1))
        .and_then(|rest| rest.split("</b>").next())
        .expect("tier card");
    assert!(
        ["excellent", "good", "acceptable", "needs_optimization"].contains(&tier_card),
        "{tier_card}"
    );
    assert!(
        !dom.contains("<b>0</b></div>"),
        "decisions in window are counted"
    );

    let screenshot = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/monitoring-dashboard.png"
    ));
    // A build with CARGO_TARGET_DIR elsewhere has no target/ here.
    if let Some(folder) = screenshot.parent() {
        std::fs::create_dir_all(folder).expect("screenshot folder");
    }
    let _ = std::fs::remove_file(&screenshot);
    chromium_on_page(
        &origin,
        &profile,
        &format!("--screenshot={}", screenshot.display()),
    )
    .await;
    let png = std::fs::read(&screenshot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    println!("dashboard screenshot: {}", screenshot.display());
    let _ = std::fs::remove_dir_all(&profile);
    origin.stop().await;
}

/// Two origins on one database: the one whose cache hit rate is 0 breaches a `cache_hit_rate`
/// warning, the other (L1 on, the same question again and again) does not. One process judges
/// (the holder of the evaluator's advisory lock), so the alert opens once and stays open while
/// the other keeps answering from L1; when the judge stops, the other takes over.
#[tokio::test]
async fn one_alert_per_condition_across_two_origins() {
    use authz_origin::monitoring::background::alerts::Evaluator;
    let db = TestDb::new().await;
    let sql = db.client().await;
    sql.batch_execute(
        "UPDATE performance_thresholds SET enabled = (metric_name = 'cache_hit_rate'); \
         UPDATE performance_thresholds SET warning_value = 0.5, critical_value = -1 \
          WHERE metric_name = 'cache_hit_rate'",
    )
    .await
    .expect("thresholds");
    let fixture = fixture(&db).await;
    let webhook = Webhook::start().await;
    let mut vars = support::origin_vars(&db, None);
    for (name, value) in [
        ("AUTHZ_ALERT_INTERVAL_SECONDS", "1"),
        ("AUTHZ_ALERT_WINDOW_SECONDS", "300"),
        ("AUTHZ_ALERT_WEBHOOK_URL", webhook.url.as_str()),
        ("AUTHZ_ALERT_WEBHOOK_TIMEOUT_MS", "2000"),
    ] {
        vars.insert(name.to_owned(), value.to_owned());
    }
    let evaluator = |origin: &TestOrigin| origin.state.monitoring.alerts().view().evaluator;
    // The cold one: no L1, no Redis, every answer from Postgres.
    let mut cold_vars = vars.clone();
    cold_vars.insert("AUTHZ_L1_CAPACITY".to_owned(), "0".to_owned());
    let cold = TestOrigin::start(cold_vars).await;
    wait_for(
        "the first origin to judge",
        Duration::from_secs(15),
        || async { (evaluator(&cold) == Some(Evaluator::ThisProcess)).then_some(()) },
    )
    .await;
    let warm = TestOrigin::start(vars).await;
    wait_for(
        "the second origin to follow",
        Duration::from_secs(15),
        || async { (evaluator(&warm) == Some(Evaluator::AnotherProcess)).then_some(()) },
    )
    .await;
    for _ in 0..50 {
        let (status, _) = warm
            .authorize(question(fixture.owner, fixture.generation))
            .await;
        assert_eq!(status, 200);
    }
    traffic(&cold, &fixture, 10).await;

    let rows = "SELECT count(*)::bigint, count(*) FILTER (WHERE resolved_at IS NULL)::bigint, \
                       max(occurrences) FROM performance_alerts WHERE metric_name = 'cache_hit_rate'";
    let occurrences = wait_for(
        "five evaluations of the open alert",
        Duration::from_secs(20),
        || async {
            let row = sql.query_one(rows, &[]).await.expect("alerts");
            let (all, open, occurrences): (i64, i64, Option<i32>) =
                (row.get(0), row.get(1), row.get(2));
            assert!(
                all <= 1 && open == all,
                "one row, never resolved: {all} rows, {open} open"
            );
            occurrences.filter(|n| *n >= 5)
        },
    )
    .await;
    // The follower keeps answering from L1 all the while, and never judged.
    for _ in 0..20 {
        let (status, _) = warm
            .authorize(question(fixture.owner, fixture.generation))
            .await;
        assert_eq!(status, 200);
    }
    assert!(occurrences >= 5);
    assert_eq!(webhook.events("opened", "cache_hit_rate").len(), 1);
    assert!(webhook.events("resolved", "cache_hit_rate").is_empty());
    let (_, dashboard) = warm
        .get("/api/v1/system/performance/dashboard", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(
        dashboard["open_alerts"][0]["metric_name"], "cache_hit_rate",
        "{dashboard}"
    );
    assert_eq!(
        dashboard["alerts_evaluator"], "another_process",
        "{dashboard}"
    );

    // The judge stops; the other takes over and, with its own window within bounds, resolves.
    cold.stop().await;
    wait_for(
        "the second origin to judge",
        Duration::from_secs(15),
        || async { (evaluator(&warm) == Some(Evaluator::ThisProcess)).then_some(()) },
    )
    .await;
    wait_for("the resolved webhook", Duration::from_secs(15), || async {
        webhook
            .events("resolved", "cache_hit_rate")
            .into_iter()
            .next()
    })
    .await;
    let row = sql.query_one(rows, &[]).await.expect("alerts");
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (1, 0));
    assert_eq!(webhook.events("opened", "cache_hit_rate").len(), 1);
    warm.stop().await;
}
