//! `authz-origin validate` (`authz_validate`): passes on a healthy, seeded deployment
//! (through the library and through the real binary), and fails with the right ❌ line when an
//! authorization index is dropped or a Redis tier is unreachable.

use std::collections::HashMap;
use tokio::process::Command;

use authz_seed::{self as seed, Scale, SeedOptions};
use authz_validate::{self as validate, Phase, Report, ValidateOptions};

use crate::support::{self, SERVICE_TOKEN, TestDb, TestOrigin, TestRedis};

async fn seeded() -> TestDb {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    seed::run(
        &mut client,
        &SeedOptions {
            scale: Scale::Small,
            seed: 42,
            progress: false,
        },
    )
    .await
    .expect("seed");
    db
}

fn options(
    vars: HashMap<String, String>,
    origin: Option<&TestOrigin>,
    phases: &[Phase],
) -> ValidateOptions {
    let mut options = ValidateOptions::new(vars);
    options.origin = origin.map(|origin| origin.base.clone());
    options.service_token = Some(SERVICE_TOKEN.to_owned());
    options.phases = phases.to_vec();
    options
}

fn check_failed(report: &Report, name: &str, detail_contains: &[&str]) {
    let text = report.render_text();
    let check = report
        .check(name)
        .unwrap_or_else(|| panic!("no check {name}:\n{text}"));
    assert!(!check.passed, "{name} passed:\n{text}");
    for needle in detail_contains {
        assert!(
            check.detail.contains(needle),
            "{name}: no \"{needle}\" in:\n{text}"
        );
    }
    assert!(
        check.line().starts_with(&format!("❌ {name}: ")),
        "{}",
        check.line()
    );
    assert!(!report.passed);
    assert!(
        text.lines()
            .last()
            .is_some_and(|line| line.starts_with("validation failed: ")),
        "{text}"
    );
}

#[tokio::test]
async fn a_healthy_seeded_deployment_passes_every_phase() {
    let db = seeded().await;
    let redis = TestRedis::new();
    let vars = support::origin_vars(&db, Some(&redis));
    let origin = TestOrigin::start(vars.clone()).await;

    let report = validate::run(&options(vars.clone(), Some(&origin), &[])).await;
    let text = report.render_text();
    assert!(report.passed, "{text}");
    assert_eq!(report.phases, Phase::ALL.to_vec());
    for name in [
        "materialized_views_created",
        "authorization_indexes_created",
        "supporting_indexes_created",
        "redis_cache_configs",
        "connection_pool_configs",
        "performance_thresholds",
        "functions_created",
        "connection_pools_connect",
        "redis_tiers_configured",
        "redis_authorization_tier",
        "redis_session_tier",
        "redis_generation_tier",
        "redis_user_tier",
        "sub_100ms_authorization",
        "concurrent_request_capability",
        "improvement_over_naive_baseline",
    ] {
        let check = report
            .check(name)
            .unwrap_or_else(|| panic!("no check {name}:\n{text}"));
        assert!(check.line().starts_with(&format!("✅ {name}: ")), "{text}");
    }
    // The load sent is the bar printed.
    let concurrency = report
        .check("concurrent_request_capability")
        .expect("check");
    assert_eq!(concurrency.measurements["peak_in_flight"], 200, "{text}");
    assert_eq!(concurrency.measurements["requests"], 2_000, "{text}");
    assert_eq!(concurrency.measurements["errors"], 0, "{text}");
    let performance = report.check("sub_100ms_authorization").expect("check");
    assert_eq!(performance.measurements["requests"], 1_000, "{text}");
    // The baseline and the origin answered alike, at the 95 % cache-hit target.
    let improvement = report
        .check("improvement_over_naive_baseline")
        .expect("check");
    assert_eq!(improvement.measurements["disagreements"], 0, "{text}");
    assert_eq!(improvement.measurements["repeats"], 19, "{text}");
    println!("{text}");

    // The real binary, once, every phase (smaller loads), with the environment only.
    let output = Command::new(env!("CARGO_BIN_EXE_authz-origin"))
        .env_clear()
        .envs(&vars)
        .env("RUST_LOG", "warn")
        .args([
            "validate",
            "--origin",
            &origin.base,
            "--requests",
            "200",
            "--concurrency",
            "50",
            "--concurrent-requests",
            "400",
            "--samples",
            "50",
        ])
        .output()
        .await
        .expect("run authz-origin validate");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.len() >= 17, "{stdout}");
    let (summary, checks) = lines.split_last().expect("lines");
    assert!(
        checks.iter().all(|line| line.starts_with("✅ ")),
        "{stdout}"
    );
    assert!(summary.starts_with("validation passed: "), "{stdout}");
    assert!(
        stdout.contains("50 clients at once (bar: 50 in flight"),
        "{stdout}"
    );

    // --json, one phase.
    let output = Command::new(env!("CARGO_BIN_EXE_authz-origin"))
        .env_clear()
        .envs(&vars)
        .args(["validate", "--json", "--phase", "database_structure"])
        .output()
        .await
        .expect("run authz-origin validate --json");
    assert!(output.status.success());
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json report");
    assert_eq!(json["passed"], true);
    assert_eq!(json["phases"], serde_json::json!(["database_structure"]));
    assert!(
        json["checks"]
            .as_array()
            .is_some_and(|checks| checks.len() >= 9)
    );

    // The deployment guide's names: DATABASE_URL and API_BASE_URL, no flags.
    let mut guide = vars.clone();
    let database = guide.remove("POSTGRES_PRIMARY_URL").expect("database url");
    guide.insert("DATABASE_URL".to_owned(), database);
    guide.insert("API_BASE_URL".to_owned(), origin.base.clone());
    let output = Command::new(env!("CARGO_BIN_EXE_authz-origin"))
        .env_clear()
        .envs(&guide)
        .args(["validate", "--json", "--phase", "performance"])
        .args(["--requests", "100", "--samples", "20"])
        .output()
        .await
        .expect("run authz-origin validate with the guide's variables");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json report");
    assert_eq!(json["passed"], true, "{json}");
    assert_eq!(json["phases"], serde_json::json!(["performance"]));
}

#[tokio::test]
async fn a_dropped_authorization_index_fails_database_structure() {
    let db = seeded().await;
    let vars = support::origin_vars(&db, None);
    db.client()
        .await
        .batch_execute("DROP INDEX idx_team_members_user_team_auth")
        .await
        .expect("drop index");
    let report = validate::run(&options(vars.clone(), None, &[Phase::DatabaseStructure])).await;
    check_failed(
        &report,
        "authorization_indexes_created",
        &[
            "Found 2/3 composite authorization indexes",
            "team_members (user_id, team_id) INCLUDE (role, is_active)",
        ],
    );
    // Nothing else is blamed.
    let failed: Vec<&str> = report
        .checks
        .iter()
        .filter(|check| !check.passed)
        .map(|check| check.name.as_str())
        .collect();
    assert_eq!(
        failed,
        ["authorization_indexes_created"],
        "{}",
        report.render_text()
    );

    // An index with the right name but the wrong columns does not count either.
    db.client()
        .await
        .batch_execute("CREATE INDEX idx_team_members_user_team_auth ON team_members (team_id)")
        .await
        .expect("create wrong index");
    let report = validate::run(&options(vars.clone(), None, &[Phase::DatabaseStructure])).await;
    check_failed(&report, "authorization_indexes_created", &["Found 2/3"]);

    // The binary says so and exits non-zero.
    let output = Command::new(env!("CARGO_BIN_EXE_authz-origin"))
        .env_clear()
        .envs(&vars)
        .args(["validate", "--phase", "database_structure"])
        .output()
        .await
        .expect("run authz-origin validate");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|line| line.starts_with("❌ authorization_indexes_created: Found 2/3")),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_bulk_load_without_the_bump_fails_database_structure() {
    let db = seeded().await;
    let vars = support::origin_vars(&db, None);
    // Triggers off, and no authz_bump_all() after: the piece tables miss the change.
    db.client()
        .await
        .batch_execute(
            "BEGIN; SET LOCAL session_replication_role = replica; \
             UPDATE users SET is_active = NOT is_active; COMMIT",
        )
        .await
        .expect("bulk update");
    let report = validate::run(&options(vars.clone(), None, &[Phase::DatabaseStructure])).await;
    check_failed(
        &report,
        "piece_tables_current",
        &["Stale pieces: ", "authz_bump_all()"],
    );
    // The documented repair.
    db.client()
        .await
        .batch_execute("SELECT authz_bump_all()")
        .await
        .expect("bump");
    let report = validate::run(&options(vars, None, &[Phase::DatabaseStructure])).await;
    assert!(
        report.checks.iter().all(|check| check.passed),
        "{}",
        report.render_text()
    );
}

#[tokio::test]
async fn an_unreachable_redis_tier_fails_cache_infrastructure() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let mut vars = support::origin_vars(&db, Some(&redis));
    // A port nobody listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    vars.insert(
        "REDIS_SESSION_URL".to_owned(),
        format!("redis://127.0.0.1:{closed}"),
    );
    let report = validate::run(&options(vars, None, &[Phase::CacheInfrastructure])).await;
    check_failed(
        &report,
        "redis_session_tier",
        &[&format!("redis://127.0.0.1:{closed}"), "unreachable"],
    );
    for tier in ["authorization", "generation", "user"] {
        let name = format!("redis_{tier}_tier");
        assert!(
            report.check(&name).is_some_and(|check| check.passed),
            "{}",
            report.render_text()
        );
    }
    // No scratch key is left behind.
    assert!(redis.keys().await.is_empty());
}

#[tokio::test]
async fn phases_that_need_an_origin_say_so() {
    let db = TestDb::new().await;
    let mut options = options(support::origin_vars(&db, None), None, &[Phase::Performance]);
    options.service_token = None;
    let report = validate::run(&options).await;
    check_failed(&report, "origin_reachable", &["pass --origin URL"]);
}
