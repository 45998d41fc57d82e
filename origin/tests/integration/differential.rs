//! Differential test: on random datasets, the origin's answers (facts read in one statement,
//! rules applied by the Rust core) and the SQL function's agree on every question.

use authz_core::strategies::{self, NOW};
use authz_core::{Principal, Question};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config as ProptestConfig, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};

use crate::support::{self, TestDb, TestOrigin};

const DATASETS: usize = 110;
const QUESTIONS_PER_DATASET: usize = 100;

fn body(question: &Question) -> Value {
    json!({
        "user_id": question.principal.user_id().map(|id| id.to_string()),
        "resource_type": question.resource.resource_type().as_str(),
        "resource_id": question.resource.id().to_string(),
        "operation": question.operation.as_str(),
    })
}

fn rfc3339(at: std::time::SystemTime) -> String {
    let micros = at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).expect("micros"))
        .unwrap_or_else(|before| -i64::try_from(before.duration().as_micros()).expect("micros"));
    authz_core::Timestamp::from_micros(micros).to_string()
}

#[tokio::test]
async fn origin_and_sql_function_agree_on_random_datasets() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let origin = TestOrigin::start(support::origin_vars(&db, None)).await;
    let mut runner = TestRunner::new_with_rng(
        ProptestConfig::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let statement = client
        .prepare(
            "SELECT c.granted, c.access_method, c.effective_role, c.reason, c.valid_until \
             FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[]) WITH ORDINALITY \
                  AS q(user_id, resource_type, resource_id, operation, n) \
             CROSS JOIN LATERAL check_user_authorization_enterprise( \
                  q.user_id, q.resource_type, q.resource_id, q.operation) AS c \
             ORDER BY q.n",
        )
        .await
        .expect("prepare");
    let mut compared = 0usize;
    let mut granted = 0usize;
    for round in 0..DATASETS {
        let data = strategies::dataset()
            .new_tree(&mut runner)
            .expect("dataset")
            .current();
        let questions = strategies::questions(QUESTIONS_PER_DATASET)
            .new_tree(&mut runner)
            .expect("questions")
            .current();
        let shift = authz_origin::clock::now().as_micros() - NOW.as_micros();
        support::truncate(&client).await;
        support::load(&client, &data, shift).await;
        origin
            .wait_revision(support::current_revision(&client).await)
            .await;

        let (status, answer) = origin
            .post(
                "/v1/authorize/batch",
                Some(support::SERVICE_TOKEN),
                json!({ "checks": questions.iter().map(body).collect::<Vec<_>>() }),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        let results = answer["results"].as_array().expect("results");
        assert_eq!(results.len(), questions.len());

        let users: Vec<Option<uuid::Uuid>> = questions
            .iter()
            .map(|q| match q.principal {
                Principal::Anonymous => None,
                Principal::User(id) => Some(*id.as_uuid()),
            })
            .collect();
        let types: Vec<&str> = questions
            .iter()
            .map(|q| q.resource.resource_type().as_str())
            .collect();
        let resources: Vec<uuid::Uuid> = questions.iter().map(|q| q.resource.id()).collect();
        let operations: Vec<&str> = questions.iter().map(|q| q.operation.as_str()).collect();
        let rows = client
            .query(&statement, &[&users, &types, &resources, &operations])
            .await
            .expect("sql function");
        for ((question, result), row) in questions.iter().zip(results).zip(&rows) {
            let expected = json!({
                "granted": row.get::<_, bool>(0),
                "access_method": row.get::<_, Option<&str>>(1),
                "effective_role": row.get::<_, Option<&str>>(2),
                "reason": row.get::<_, Option<&str>>(3),
                "valid_until": row.get::<_, Option<std::time::SystemTime>>(4).map(rfc3339),
            });
            let got = json!({
                "granted": result["granted"],
                "access_method": result["access_method"],
                "effective_role": result["effective_role"],
                "reason": result["reason"],
                "valid_until": result["valid_until"],
            });
            assert_eq!(
                got,
                expected,
                "round {round}: {question:?}\ndataset: {}",
                serde_json::to_string(&data).expect("json")
            );
            granted += usize::from(expected["granted"] == true);
            compared += 1;
        }
    }
    assert!(compared >= 10_000, "only {compared} questions compared");
    // The generator must exercise both outcomes substantially for the comparison to mean much.
    assert!(
        granted > compared / 10 && granted < compared * 9 / 10,
        "{granted} of {compared} granted"
    );
    origin.stop().await;
}
