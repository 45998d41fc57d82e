//! The core's decision corpus through the SQL function and through `POST /v1/authorize`.

use authz_core::dataset::{CorpusCase, CorpusFile, ExpectedDecision};
use authz_core::{AccessMethod, DenyReason, Role, Timestamp};
use serde_json::json;

use crate::support::{self, TestDb, TestOrigin};

pub fn corpus() -> Vec<CorpusCase> {
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/tests/corpus");
    let mut paths: Vec<_> = std::fs::read_dir(folder)
        .expect("corpus folder")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .flat_map(|path| {
            let file: CorpusFile =
                serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("parse");
            file.cases
        })
        .collect()
}

fn parse_optional<T>(value: Option<&str>, parse: impl Fn(&str) -> T) -> Option<T> {
    value.map(parse)
}

#[tokio::test]
async fn corpus_through_the_sql_function() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let cases = corpus();
    let mut failures = Vec::new();
    for case in &cases {
        support::truncate(&client).await;
        support::load(&client, &case.data, 0).await;
        let question = &case.question;
        let user_id = question
            .user_id
            .as_deref()
            .map(|id| uuid::Uuid::parse_str(id).expect("uuid"));
        let resource_id = uuid::Uuid::parse_str(&question.resource_id).expect("uuid");
        let now = support::micros_to_system_time(case.now.as_micros());
        let row = client
            .query_one(
                "SELECT granted, access_method, effective_role, reason, valid_until \
                 FROM check_user_authorization_enterprise($1, $2, $3, $4, $5)",
                &[
                    &user_id,
                    &question.resource_type,
                    &resource_id,
                    &question.operation,
                    &now,
                ],
            )
            .await
            .unwrap_or_else(|error| panic!("{}: {error}", case.name));
        let valid_until: Option<std::time::SystemTime> = row.get(4);
        let got = ExpectedDecision {
            granted: row.get(0),
            access_method: parse_optional(row.get::<_, Option<&str>>(1), |s| {
                AccessMethod::parse(s, "access_method").expect("method")
            }),
            effective_role: parse_optional(row.get::<_, Option<&str>>(2), |s| {
                Role::parse(s, "role").expect("role")
            }),
            reason: parse_optional(row.get::<_, Option<&str>>(3), |s| {
                DenyReason::parse(s, "reason").expect("reason")
            }),
            valid_until: valid_until.map(|at| {
                let micros = match at.duration_since(std::time::UNIX_EPOCH) {
                    Ok(after) => i64::try_from(after.as_micros()).expect("micros"),
                    Err(before) => -i64::try_from(before.duration().as_micros()).expect("micros"),
                };
                Timestamp::from_micros(micros)
            }),
        };
        if got != case.expected {
            failures.push(format!(
                "{}: expected {:?}, got {got:?}",
                case.name, case.expected
            ));
        }
    }
    assert!(cases.len() >= 60);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn corpus_through_the_http_api() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let origin = TestOrigin::start(support::origin_vars(&db, None)).await;
    let cases = corpus();
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in cases.iter().filter(|case| !case.exact_time) {
        // The server's clock is real: move every expiry so that `now` is the case's instant.
        let shift = authz_origin::clock::now().as_micros() - case.now.as_micros();
        support::truncate(&client).await;
        support::load(&client, &case.data, shift).await;
        origin
            .wait_revision(support::current_revision(&client).await)
            .await;
        let (status, body) = origin
            .authorize(json!({
                "user_id": case.question.user_id,
                "resource_type": case.question.resource_type,
                "resource_id": case.question.resource_id,
                "operation": case.question.operation,
            }))
            .await;
        assert_eq!(status, 200, "{}: {body}", case.name);
        let mut expected = case.expected;
        expected.valid_until = expected
            .valid_until
            .map(|at| Timestamp::from_micros(at.as_micros() + shift));
        let got = ExpectedDecision {
            granted: body["granted"].as_bool().expect("granted"),
            access_method: serde_json::from_value(body["access_method"].clone()).expect("method"),
            effective_role: serde_json::from_value(body["effective_role"].clone()).expect("role"),
            reason: serde_json::from_value(body["reason"].clone()).expect("reason"),
            valid_until: serde_json::from_value(body["valid_until"].clone()).expect("valid_until"),
        };
        if got != expected {
            failures.push(format!("{}: expected {expected:?}, got {got:?}", case.name));
        }
        assert_eq!(
            body["source"], "db",
            "{}: every case is a fresh question",
            case.name
        );
        ran += 1;
    }
    assert!(ran >= 60, "only {ran} cases ran");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    origin.stop().await;
}
