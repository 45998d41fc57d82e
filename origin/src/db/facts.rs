//! The facts of decisions, read in one round trip: one statement returns the revision, the
//! user piece of every distinct principal and the resource piece of every distinct resource
//! of a batch, all from one snapshot, from the piece tables that writers keep current
//! (migrations/V9). The rules are applied in Rust by `authz_core::decide` on facts composed
//! from the pieces. A single question (the common case) uses a statement specialised for it.

use std::collections::HashMap;

use authz_core::pieces::{ProjectPiece, ResourcePiece, UserPiece};
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
    /// Even the primary is below the caller's `min_revision` (a revision from another
    /// database, or from before a failover that rewound it): no answer may be given.
    #[error("the database is at revision {have}, below min_revision {asked}")]
    BelowMinRevision {
        /// The caller's `min_revision`.
        asked: u64,
        /// The primary's revision when it was read.
        have: u64,
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

/// The batch form: any number of users and resources, in the order asked (V9's piece tables,
/// with each resource's project piece beside it).
const PIECES_SQL: &str = "SELECT (SELECT r.value FROM authz_revision r WHERE r.id = 1), \
       (SELECT coalesce(json_agg(u.piece ORDER BY x.n), '[]'::json) \
          FROM unnest($1::uuid[]) WITH ORDINALITY AS x(id, n) \
          LEFT JOIN authz_user_pieces u ON u.user_id = x.id), \
       (SELECT coalesce(json_agg(json_build_array(f.piece, p.piece) ORDER BY y.n), '[]'::json) \
          FROM unnest($2::text[], $3::uuid[]) WITH ORDINALITY AS y(type, id, n) \
          LEFT JOIN authz_resource_pieces f ON f.resource_type = y.type AND f.resource_id = y.id \
          LEFT JOIN authz_resource_pieces p \
                 ON p.resource_type = 'project' AND p.resource_id = f.project_id)";

/// The single-question form: at most one user and one resource, four primary-key probes (the
/// revision, the user's piece, the resource's piece, a generation's project piece) in one
/// plan. A NULL user id (anonymous), a missing row or an unknown type reads as NULL.
const QUESTION_SQL: &str = "SELECT r.value, u.piece, f.piece, p.piece \
       FROM authz_revision r \
       LEFT JOIN authz_user_pieces u ON u.user_id = $1::uuid \
       LEFT JOIN authz_resource_pieces f \
              ON f.resource_type = $2::text AND f.resource_id = $3::uuid \
       LEFT JOIN authz_resource_pieces p \
              ON p.resource_type = 'project' AND p.resource_id = f.project_id \
      WHERE r.id = 1";

/// A resource's piece with its project's: V9 stores a generation's project apart (a change to
/// the project rewrites one row, not each of its generations).
fn with_project(
    resource: Option<ResourcePiece>,
    project: Option<ProjectPiece>,
) -> Option<ResourcePiece> {
    match resource {
        Some(ResourcePiece::Generation {
            owner_id,
            status,
            project: _,
            shares,
        }) => Some(ResourcePiece::Generation {
            owner_id,
            status,
            project,
            shares,
        }),
        other => other,
    }
}

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

/// How fresh the pieces must be before they are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// As the last sequencer round left them (the listener runs rounds every few ms).
    LastRound,
    /// Run a sequencer round first, on the same connection (V11): for when this process's
    /// listener, which runs the rounds, is down and no other round may come.
    RoundFirst,
}

/// Reads the pieces of `users` and `resources` in one statement. The wait for a connection
/// and failed queries are counted in the pool's stats.
pub async fn load(
    pool: &NamedPool,
    users: &[UserId],
    resources: &[Resource],
    freshness: Freshness,
) -> Result<Pieces, FactsError> {
    let result = load_on(pool, users, resources, freshness).await;
    if matches!(result, Err(FactsError::Query(_))) {
        pool.stats.record_error();
    }
    result
}

async fn load_on(
    pool: &NamedPool,
    users: &[UserId],
    resources: &[Resource],
    freshness: Freshness,
) -> Result<Pieces, FactsError> {
    let client = pool.get().await?;
    if freshness == Freshness::RoundFirst {
        let statement = client
            .prepare_cached("SELECT authz_sequence_changes()")
            .await?;
        client.query_one(&statement, &[]).await?;
    }
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
    let resource_pieces: Vec<(Option<ResourcePiece>, Option<ProjectPiece>)> = column(&row, 2)?;
    let resource_pieces: Vec<Option<ResourcePiece>> = resource_pieces
        .into_iter()
        .map(|(resource, project)| with_project(resource, project))
        .collect();
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
        pieces
            .resources
            .insert(*resource, with_project(column(&row, 2)?, column(&row, 3)?));
    }
    Ok(pieces)
}
