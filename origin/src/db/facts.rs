//! The facts of decisions, read in one round trip: one statement returns the revision, the
//! user piece of every distinct principal and the resource piece of every distinct resource
//! of a batch, all from one snapshot (the functions are STABLE; see migrations/V5). The rules
//! are applied in Rust by `authz_core::decide` on facts composed from the pieces. A single
//! question (the common case) uses a statement specialised for it (migrations/V8).

use std::collections::HashMap;

use authz_core::pieces::{ResourcePiece, UserPiece};
use authz_core::{Resource, UserId};
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, Type};
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

/// The batch form: any number of users and resources (V5, V7).
const PIECES_SQL: &str = "SELECT authz_current_revision(), \
       (SELECT coalesce(jsonb_agg(authz_user_piece(u) ORDER BY n), '[]'::jsonb) \
          FROM unnest($1::uuid[]) WITH ORDINALITY AS x(u, n)), \
       (SELECT coalesce(jsonb_agg(authz_resource_piece(t, r) ORDER BY n), '[]'::jsonb) \
          FROM unnest($2::text[], $3::uuid[]) WITH ORDINALITY AS y(t, r, n))";

/// The single-question form (V8): at most one user and one resource, in one inlined plan,
/// about 40 % cheaper in Postgres than the batch form with one-element arrays.
const QUESTION_SQL: &str = "SELECT revision, user_piece, resource_piece \
       FROM authz_question_pieces($1::uuid, $2::text, $3::uuid)";

/// The undecoded text of a `json` or `jsonb` value, so pieces are deserialized straight into
/// their types (no `serde_json::Value` in between) and a bad document stays a
/// [`FactsError::Decode`].
struct JsonText<'a>(&'a [u8]);

impl<'a> FromSql<'a> for JsonText<'a> {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        if *ty == Type::JSONB {
            // jsonb's binary form: a version byte (1), then the text.
            match raw.split_first() {
                Some((1, text)) => Ok(Self(text)),
                _ => Err("unsupported jsonb encoding version".into()),
            }
        } else {
            Ok(Self(raw))
        }
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSON || *ty == Type::JSONB
    }
}

/// Deserializes column `index` of `row` (SQL NULL reads as JSON null).
fn column<T: serde::de::DeserializeOwned>(row: &Row, index: usize) -> Result<T, FactsError> {
    let text: Option<JsonText<'_>> = row.try_get(index)?;
    Ok(serde_json::from_slice(text.map_or(b"null", |text| text.0))?)
}

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
    if let ([] | [_], [] | [_]) = (users, resources) {
        return load_question(&client, users.first(), resources.first()).await;
    }
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
    let user_pieces: Vec<Option<UserPiece>> = column(&row, 1)?;
    let resource_pieces: Vec<Option<ResourcePiece>> = column(&row, 2)?;
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

/// The pieces of at most one user and one resource, with the single-question statement.
async fn load_question(
    client: &deadpool_postgres::Client,
    user: Option<&UserId>,
    resource: Option<&Resource>,
) -> Result<Pieces, FactsError> {
    let statement = client.prepare_cached(QUESTION_SQL).await?;
    let user_id = user.map(|user| *user.as_uuid());
    let resource_type = resource.map(|resource| resource.resource_type().as_str());
    let resource_id = resource.map(Resource::id);
    let row = client
        .query_one(&statement, &[&user_id, &resource_type, &resource_id])
        .await?;
    let revision: i64 = row.try_get(0)?;
    let mut pieces = Pieces {
        revision: u64::try_from(revision).unwrap_or(0),
        ..Pieces::default()
    };
    if let Some(user) = user {
        pieces.users.insert(*user, column(&row, 1)?);
    }
    if let Some(resource) = resource {
        pieces.resources.insert(*resource, column(&row, 2)?);
    }
    Ok(pieces)
}
