//! The facts of decisions, read in one round trip: one statement returns the revision, the
//! user piece of every distinct principal and the resource piece of every distinct resource
//! of a batch, all from one snapshot (the functions are STABLE; see migrations/V5). The rules
//! are applied in Rust by `authz_core::decide` on facts composed from the pieces.

use std::collections::HashMap;

use authz_core::pieces::{ResourcePiece, UserPiece};
use authz_core::{Resource, UserId};
use uuid::Uuid;

use super::NamedPool;

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
    /// The database answered a different number of pieces than asked.
    #[error("expected {expected} pieces, got {got}")]
    Count {
        /// Pieces asked.
        expected: usize,
        /// Pieces received.
        got: usize,
    },
}

/// Pieces read at one revision.
#[derive(Debug, Default)]
pub struct Pieces {
    /// The revision of the snapshot.
    pub revision: u64,
    /// Each asked user's piece (`None`: no row).
    pub users: HashMap<UserId, Option<UserPiece>>,
    /// Each asked resource's piece (`None`: no row).
    pub resources: HashMap<Resource, Option<ResourcePiece>>,
}

const PIECES_SQL: &str = "SELECT authz_current_revision(), \
       (SELECT coalesce(jsonb_agg(authz_user_piece(u) ORDER BY n), '[]'::jsonb) \
          FROM unnest($1::uuid[]) WITH ORDINALITY AS x(u, n)), \
       (SELECT coalesce(jsonb_agg(authz_resource_piece(t, r) ORDER BY n), '[]'::jsonb) \
          FROM unnest($2::text[], $3::uuid[]) WITH ORDINALITY AS y(t, r, n))";

/// Reads the pieces of `users` and `resources` in one statement. The wait for a connection
/// and failed queries are counted in the pool's stats.
pub async fn load(
    pool: &NamedPool,
    users: &[UserId],
    resources: &[Resource],
) -> Result<Pieces, FactsError> {
    let result = load_on(pool, users, resources).await;
    if matches!(result, Err(FactsError::Query(_))) {
        pool.stats.record_error();
    }
    result
}

async fn load_on(
    pool: &NamedPool,
    users: &[UserId],
    resources: &[Resource],
) -> Result<Pieces, FactsError> {
    let client = pool.get().await?;
    let statement = client.prepare_cached(PIECES_SQL).await?;
    let user_ids: Vec<Uuid> = users.iter().map(|user| *user.as_uuid()).collect();
    let types: Vec<&str> = resources
        .iter()
        .map(|resource| resource.resource_type().as_str())
        .collect();
    let resource_ids: Vec<Uuid> = resources.iter().map(Resource::id).collect();
    let row = client
        .query_one(&statement, &[&user_ids, &types, &resource_ids])
        .await?;
    let revision: i64 = row.try_get(0)?;
    let user_pieces: Vec<Option<UserPiece>> = serde_json::from_value(row.try_get(1)?)?;
    let resource_pieces: Vec<Option<ResourcePiece>> = serde_json::from_value(row.try_get(2)?)?;
    if user_pieces.len() != users.len() || resource_pieces.len() != resources.len() {
        return Err(FactsError::Count {
            expected: users.len() + resources.len(),
            got: user_pieces.len() + resource_pieces.len(),
        });
    }
    Ok(Pieces {
        revision: u64::try_from(revision).unwrap_or(0),
        users: users.iter().copied().zip(user_pieces).collect(),
        resources: resources.iter().copied().zip(resource_pieces).collect(),
    })
}
