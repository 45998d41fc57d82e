//! How far the read replica is behind the primary: WAL bytes not yet replayed, seconds since
//! the last replayed transaction while something is waiting to be replayed, and revisions.
//! Sampled by monitoring (gauges) and read live by the database health document.

use std::time::Duration;

use super::{Pools, Workload};

/// One reading of the replica's lag.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ReplicaLag {
    /// The replica answered (and is in recovery, that is, a replica).
    pub reachable: bool,
    /// WAL the primary has written that the replica has not replayed, in bytes.
    pub lag_bytes: Option<f64>,
    /// Seconds since the replica replayed its last transaction, when WAL is waiting to be
    /// replayed; 0 when it has replayed all it received; unknown (`None`) while WAL waits and
    /// it has replayed no transaction since it started.
    pub lag_seconds: Option<f64>,
    /// Revisions the primary has numbered that the replica has not replayed.
    pub revisions_behind: Option<i64>,
    /// Replay paused (`pg_wal_replay_pause()`).
    pub replay_paused: Option<bool>,
    /// What went wrong, when something did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How long one side of the reading may take.
const DEADLINE: Duration = Duration::from_secs(2);

/// Reads the replica's position, then the primary's distance to it. `None` without a replica.
pub async fn measure(pools: &Pools) -> Option<ReplicaLag> {
    if !pools.has_replica() {
        return None;
    }
    let replica = async {
        let client = pools.pool(Workload::Read).get().await?;
        let row = client
            .query_one(
                "SELECT pg_is_in_recovery(), \
                        coalesce(pg_last_wal_replay_lsn(), '0/0'::pg_lsn)::text, \
                        CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM \
                                  pg_last_wal_replay_lsn() THEN 0::float8 \
                             ELSE extract(epoch FROM clock_timestamp() \
                                  - pg_last_xact_replay_timestamp())::float8 END, \
                        CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END, \
                        (SELECT value FROM authz_revision WHERE id = 1)",
                &[],
            )
            .await?;
        anyhow::Ok((
            row.get::<_, bool>(0),
            row.get::<_, String>(1),
            row.get::<_, Option<f64>>(2),
            row.get::<_, Option<bool>>(3),
            row.get::<_, Option<i64>>(4),
        ))
    };
    let (in_recovery, replayed, seconds, paused, replica_revision) =
        match tokio::time::timeout(DEADLINE, replica).await {
            Ok(Ok(reading)) => reading,
            Ok(Err(error)) => return Some(unreachable(error.to_string())),
            Err(_) => return Some(unreachable("timed out".to_owned())),
        };
    let mut lag = ReplicaLag {
        reachable: in_recovery,
        lag_seconds: seconds.map(|s| s.max(0.0)),
        replay_paused: paused,
        error: (!in_recovery).then(|| "the replica URL is not in recovery".to_owned()),
        ..ReplicaLag::default()
    };
    let primary = async {
        let client = pools.pool(Workload::Maintenance).get().await?;
        let row = client
            .query_one(
                "SELECT greatest(pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn), 0)::float8, \
                        (SELECT value FROM authz_revision WHERE id = 1)",
                &[&replayed],
            )
            .await?;
        anyhow::Ok((row.get::<_, f64>(0), row.get::<_, Option<i64>>(1)))
    };
    match tokio::time::timeout(DEADLINE, primary).await {
        Ok(Ok((bytes, primary_revision))) => {
            lag.lag_bytes = in_recovery.then_some(bytes);
            lag.revisions_behind = match (primary_revision, replica_revision) {
                (Some(primary), Some(replica)) if in_recovery => Some((primary - replica).max(0)),
                _ => None,
            };
        }
        Ok(Err(error)) => lag.error = Some(format!("primary: {error}")),
        Err(_) => lag.error = Some("primary: timed out".to_owned()),
    }
    Some(lag)
}

fn unreachable(error: String) -> ReplicaLag {
    ReplicaLag {
        error: Some(error),
        ..ReplicaLag::default()
    }
}

/// Publishes `authz_replica_up`, `authz_replica_lag_bytes`, `authz_replica_lag_seconds` and
/// `authz_replica_revisions_behind` (the lag gauges are left as they were when unknown).
pub fn publish(lag: &ReplicaLag) {
    metrics::gauge!("authz_replica_up").set(if lag.reachable { 1.0 } else { 0.0 });
    if let Some(bytes) = lag.lag_bytes {
        metrics::gauge!("authz_replica_lag_bytes").set(bytes);
    }
    if let Some(seconds) = lag.lag_seconds {
        metrics::gauge!("authz_replica_lag_seconds").set(seconds);
    }
    if let Some(revisions) = lag.revisions_behind {
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("authz_replica_revisions_behind").set(revisions as f64);
    }
}
