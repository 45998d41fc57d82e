//! Whose keys a Redis prefix holds. Two deployments on one Redis (staging beside production, or
//! a Redis restored from another deployment's dump) must never read each other's entries, so:
//!
//! - the default prefix carries the database's identity: `authz:<system identifier>:<database>:`
//!   (the cluster's system identifier from `pg_control_system()`, the same on its streaming
//!   replicas, and `current_database()`);
//! - every Redis server a tier uses holds one marker, `<prefix>owner`, whose value names the
//!   database (`<system identifier>/<database>`), written once with `SET NX`;
//! - a tier serves nothing until its marker is ours: a marker naming another database stops the
//!   start (or, found later, turns the tier off for good); until the marker can be read the tier
//!   is skipped like an open breaker, so an unknown owner is a miss, never a hit.

use std::sync::Arc;
use std::time::Duration;

use super::RedisTier;
use crate::db::{NamedPool, Pools, Workload};

/// How long reading the identity may take at start (the origin still starts when Postgres is
/// down; its tiers are claimed later).
const START_DEADLINE: Duration = Duration::from_secs(5);
/// How often unclaimed tiers are tried again.
const RETRY: Duration = Duration::from_secs(1);

/// The database whose revisions and facts a deployment's keys are derived from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseIdentity {
    /// `pg_control_system().system_identifier`, in decimal.
    pub system_identifier: String,
    /// `current_database()`.
    pub database: String,
}

impl DatabaseIdentity {
    /// Reads the identity over one pooled connection, within `deadline`.
    pub async fn read(pool: &NamedPool, deadline: Duration) -> anyhow::Result<Self> {
        let attempt = async {
            let client = pool.get().await?;
            let row = client
                .query_one(
                    "SELECT system_identifier::text, current_database()::text \
                     FROM pg_control_system()",
                    &[],
                )
                .await?;
            anyhow::Ok(Self {
                system_identifier: row.get(0),
                database: row.get(1),
            })
        };
        tokio::time::timeout(deadline, attempt)
            .await
            .map_err(|_| anyhow::anyhow!("reading the database's identity timed out"))?
    }

    /// The marker's value: `<system identifier>/<database>`.
    pub fn owner(&self) -> String {
        format!("{}/{}", self.system_identifier, self.database)
    }

    /// The prefix used when `AUTHZ_REDIS_PREFIX` is unset.
    pub fn default_prefix(&self) -> String {
        format!("authz:{}:{}:", self.system_identifier, self.database)
    }

    /// The prefix of a deployment: `configured`, else [`Self::default_prefix`].
    pub fn prefix(&self, configured: Option<&str>) -> String {
        configured.map_or_else(|| self.default_prefix(), str::to_owned)
    }
}

/// The marker key under `prefix`.
pub fn owner_key(prefix: &str) -> String {
    format!("{prefix}owner")
}

/// Where a tier stands with its marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// Not read yet (Postgres or Redis unreachable so far): the tier is skipped.
    Unclaimed,
    /// The marker is ours: the tier serves under this prefix.
    Claimed {
        /// The deployment's prefix (without the tier's name).
        prefix: String,
    },
    /// The marker names another database: the tier stays off.
    Foreign {
        /// The deployment's prefix.
        prefix: String,
        /// The marker's value.
        owner: String,
    },
}

impl Ownership {
    /// `unclaimed`, `claimed` or `foreign`, for health documents and metrics.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Unclaimed => "unclaimed",
            Self::Claimed { .. } => "claimed",
            Self::Foreign { .. } => "foreign",
        }
    }

    /// The deployment's prefix, once the marker was read.
    pub fn prefix(&self) -> Option<&str> {
        match self {
            Self::Unclaimed => None,
            Self::Claimed { prefix } | Self::Foreign { prefix, .. } => Some(prefix),
        }
    }
}

/// Claims every tier before the origin serves. A marker naming another database is an error
/// (the origin refuses to start); Postgres or Redis unreachable only leaves the tier unclaimed
/// for [`claim_forever`].
///
/// # Errors
/// A tier's prefix belongs to another database.
pub async fn claim_at_start<'a>(
    pools: &Pools,
    tiers: impl Iterator<Item = &'a Arc<RedisTier>>,
) -> anyhow::Result<()> {
    let identity = match DatabaseIdentity::read(pools.named(Workload::Maintenance), START_DEADLINE)
        .await
    {
        Ok(identity) => identity,
        Err(error) => {
            tracing::warn!(%error, "the database's identity is unknown: Redis is skipped until it is read");
            return Ok(());
        }
    };
    for tier in tiers {
        match claim_logged(tier, &identity).await {
            Ownership::Foreign { prefix, owner } => anyhow::bail!(
                "the Redis prefix {prefix:?} of the {} tier belongs to database {owner}, not {}: \
                 set AUTHZ_REDIS_PREFIX to a prefix of this deployment's own (or unset it)",
                tier.name().as_str(),
                identity.owner()
            ),
            Ownership::Unclaimed => tracing::warn!(
                tier = tier.name().as_str(),
                "Redis unreachable at start: the tier is skipped until its prefix is claimed"
            ),
            Ownership::Claimed { .. } => {}
        }
    }
    Ok(())
}

/// Claims `tier` and logs a claim; a failed attempt is `Unclaimed`.
async fn claim_logged(tier: &RedisTier, identity: &DatabaseIdentity) -> Ownership {
    let ownership = tier.claim(identity).await.unwrap_or(Ownership::Unclaimed);
    if let Ownership::Claimed { prefix } = &ownership {
        tracing::info!(tier = tier.name().as_str(), %prefix, "Redis prefix claimed");
    }
    ownership
}

/// Tries the unclaimed `tiers` every second until each is claimed or found foreign. A foreign
/// marker found now turns its tier off for good (the origin is already serving; every lookup
/// of that tier is a miss) and is logged as an error.
pub async fn claim_forever(pools: Pools, mut tiers: Vec<Arc<RedisTier>>) {
    while !tiers.is_empty() {
        tokio::time::sleep(RETRY).await;
        let Ok(identity) =
            DatabaseIdentity::read(pools.named(Workload::Maintenance), START_DEADLINE).await
        else {
            continue;
        };
        for tier in &tiers {
            if let Ownership::Foreign { prefix, owner } = claim_logged(tier, &identity).await {
                tracing::error!(
                    tier = tier.name().as_str(),
                    %prefix,
                    %owner,
                    ours = %identity.owner(),
                    "the Redis prefix belongs to another database: the tier stays off"
                );
            }
        }
        tiers.retain(|tier| tier.ownership() == Ownership::Unclaimed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_prefix_and_the_marker_name_the_database() {
        let identity = DatabaseIdentity {
            system_identifier: "7441234567890123456".to_owned(),
            database: "media".to_owned(),
        };
        assert_eq!(
            identity.default_prefix(),
            "authz:7441234567890123456:media:"
        );
        assert_eq!(identity.owner(), "7441234567890123456/media");
        assert_eq!(identity.prefix(Some("prod:")), "prod:");
        assert_eq!(identity.prefix(None), identity.default_prefix());
        assert_eq!(owner_key("prod:"), "prod:owner");
    }
}
