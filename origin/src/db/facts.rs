//! The facts of decisions, read in one round trip: one statement for one question or a whole
//! batch, so every fact and the revision come from one snapshot (`authz_decision_facts` is
//! STABLE; see migrations/README.md). The rules are applied in Rust by `authz_core::decide`.

use authz_core::{Facts, Principal, Question};
use deadpool_postgres::Pool;
use uuid::Uuid;

/// Why facts could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    /// No connection (pool exhausted, Postgres down).
    #[error("postgres pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The query failed.
    #[error("postgres query: {0}")]
    Query(#[from] tokio_postgres::Error),
    /// The database answered something the core cannot read (a schema mismatch).
    #[error("unreadable facts: {0}")]
    Decode(#[from] serde_json::Error),
    /// The database answered a different number of rows than questions.
    #[error("expected {expected} fact rows, got {got}")]
    RowCount {
        /// Questions sent.
        expected: usize,
        /// Rows received.
        got: usize,
    },
}

const BATCH_SQL: &str = "SELECT f FROM unnest($1::uuid[], $2::text[], $3::uuid[]) \
     WITH ORDINALITY AS q(user_id, resource_type, resource_id, n) \
     CROSS JOIN LATERAL authz_decision_facts(q.user_id, q.resource_type, q.resource_id) AS f \
     ORDER BY q.n";

/// Reads the facts of every question, in order, in one statement.
pub async fn load(pool: &Pool, questions: &[Question]) -> Result<Vec<Facts>, FactsError> {
    if questions.is_empty() {
        return Ok(Vec::new());
    }
    let client = pool.get().await?;
    let statement = client.prepare_cached(BATCH_SQL).await?;
    let users: Vec<Option<Uuid>> = questions
        .iter()
        .map(|question| match question.principal {
            Principal::Anonymous => None,
            Principal::User(user) => Some(*user.as_uuid()),
        })
        .collect();
    let types: Vec<&str> = questions
        .iter()
        .map(|question| question.resource.resource_type().as_str())
        .collect();
    let resources: Vec<Uuid> = questions
        .iter()
        .map(|question| question.resource.id())
        .collect();
    let rows = client
        .query(&statement, &[&users, &types, &resources])
        .await?;
    if rows.len() != questions.len() {
        return Err(FactsError::RowCount {
            expected: questions.len(),
            got: rows.len(),
        });
    }
    rows.iter()
        .map(|row| {
            let value: serde_json::Value = row.try_get(0)?;
            Ok(serde_json::from_value(value)?)
        })
        .collect()
}
