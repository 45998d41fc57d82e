//! The fact-piece tiers: each user's piece in the Redis `user` tier (`u/<id>`), each resource's
//! piece in the `generation` tier (`r/<type letter><id>`), stored as `p1;` + JSON
//! `{"revision", "piece"}` (`piece` null records that the row does not exist). A piece is used
//! only when fresh by the invalidation oracle and at or above the caller's `min_revision`; any
//! other version or garbage is a miss.

use std::collections::HashMap;
use std::sync::Arc;

use authz_core::pieces::{ResourcePiece, UserPiece, resource_dependencies};
use authz_core::{Resource, UserId};
use serde::{Deserialize, Serialize};

use super::RedisTier;
use crate::db::facts::Pieces;
use crate::invalidation::Invalidation;

const FORMAT: &str = "p1;";

#[derive(Serialize, Deserialize)]
struct Stored<T> {
    revision: u64,
    piece: Option<T>,
}

fn user_key(user: &UserId) -> String {
    format!("u/{}", user.as_uuid().simple())
}

fn resource_key(resource: &Resource) -> String {
    let letter = match resource {
        Resource::Generation(_) => 'g',
        Resource::Project(_) => 'p',
        Resource::Team(_) => 't',
    };
    format!("r/{letter}{}", resource.id().simple())
}

fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Option<Stored<T>> {
    serde_json::from_str(text.strip_prefix(FORMAT)?).ok()
}

fn encode<T: Serialize>(revision: u64, piece: Option<&T>) -> Option<String> {
    serde_json::to_string(&Stored { revision, piece })
        .ok()
        .map(|json| format!("{FORMAT}{json}"))
}

/// Pieces known for a batch, each with the revision it was read at.
#[derive(Debug, Default)]
pub struct KnownPieces {
    /// User pieces.
    pub users: HashMap<UserId, (u64, Option<UserPiece>)>,
    /// Resource pieces.
    pub resources: HashMap<Resource, (u64, Option<ResourcePiece>)>,
}

/// The two fact-piece tiers (either may be absent).
#[derive(Debug, Clone)]
pub struct PieceCache {
    users: Option<Arc<RedisTier>>,
    resources: Option<Arc<RedisTier>>,
    invalidation: Arc<Invalidation>,
    ttl_ms: u64,
}

impl PieceCache {
    /// Pieces cached for `ttl_ms` at most in the given tiers.
    pub fn new(
        users: Option<Arc<RedisTier>>,
        resources: Option<Arc<RedisTier>>,
        invalidation: Arc<Invalidation>,
        ttl_ms: u64,
    ) -> Self {
        Self {
            users,
            resources,
            invalidation,
            ttl_ms,
        }
    }

    /// The fresh cached pieces among those asked, in two parallel `MGET`s.
    pub async fn get(
        &self,
        users: &[UserId],
        resources: &[Resource],
        min_revision: Option<u64>,
    ) -> KnownPieces {
        if self.users.is_none() && self.resources.is_none() {
            return KnownPieces::default();
        }
        let user_keys: Vec<String> = users.iter().map(user_key).collect();
        let resource_keys: Vec<String> = resources.iter().map(resource_key).collect();
        let (user_values, resource_values) = tokio::join!(
            async {
                match &self.users {
                    Some(tier) => tier.mget(&user_keys).await,
                    None => Vec::new(),
                }
            },
            async {
                match &self.resources {
                    Some(tier) => tier.mget(&resource_keys).await,
                    None => Vec::new(),
                }
            }
        );
        let usable = |revision: u64, dependencies: &[uuid::Uuid]| {
            min_revision.is_none_or(|min| revision >= min)
                && self.invalidation.is_fresh_at(revision, dependencies)
        };
        let mut known = KnownPieces::default();
        for (user, value) in users.iter().zip(user_values) {
            if let Some(stored) = value.as_deref().and_then(decode::<UserPiece>)
                && usable(stored.revision, &[*user.as_uuid()])
            {
                known.users.insert(*user, (stored.revision, stored.piece));
            }
        }
        for (resource, value) in resources.iter().zip(resource_values) {
            if let Some(stored) = value.as_deref().and_then(decode::<ResourcePiece>)
                && usable(
                    stored.revision,
                    &resource_dependencies(resource, stored.piece.as_ref()),
                )
            {
                known
                    .resources
                    .insert(*resource, (stored.revision, stored.piece));
            }
        }
        known
    }

    /// Writes pieces read from Postgres, in the background.
    pub fn put(&self, pieces: &Pieces) {
        let revision = pieces.revision;
        if let Some(tier) = self.users.clone() {
            let items: Vec<_> = pieces
                .users
                .iter()
                .filter_map(|(user, piece)| {
                    Some((
                        user_key(user),
                        encode(revision, piece.as_ref())?,
                        self.ttl_ms,
                    ))
                })
                .collect();
            tokio::spawn(async move { tier.set_many(items).await });
        }
        if let Some(tier) = self.resources.clone() {
            let items: Vec<_> = pieces
                .resources
                .iter()
                .filter_map(|(resource, piece)| {
                    Some((
                        resource_key(resource),
                        encode(revision, piece.as_ref())?,
                        self.ttl_ms,
                    ))
                })
                .collect();
            tokio::spawn(async move { tier.set_many(items).await });
        }
    }
}
