//! Scheduled database maintenance when the server has no `pg_cron`: refreshing the
//! materialized views (`refresh_authorization_materialized_views()`) and pruning old
//! performance history, on the maintenance pool. The views feed analytics only: no decision
//! ever reads them, so a refresh never delays a revocation. And, always, vacuuming the change
//! log (V11), whose rows are numbered once and pruned after 15 minutes: where autovacuum is off
//! or behind, its heap and indexes would otherwise only grow.

use std::time::Duration;

use crate::db::{Pools, Workload};

/// Whether `pg_cron` is installed (it then runs the same jobs, scheduled by migration V4).
async fn pg_cron_installed(pools: &Pools) -> bool {
    let Ok(client) = pools.pool(Workload::Maintenance).get().await else {
        return false;
    };
    client
        .query_opt("SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'", &[])
        .await
        .ok()
        .flatten()
        .is_some()
}

/// Refreshes the views now; the number of views refreshed.
pub async fn refresh_views(pools: &Pools) -> Result<usize, String> {
    let client = pools
        .pool(Workload::Maintenance)
        .get()
        .await
        .map_err(|error| error.to_string())?;
    let rows = client
        .query(
            "SELECT view_name FROM refresh_authorization_materialized_views()",
            &[],
        )
        .await
        .map_err(|error| error.to_string())?;
    Ok(rows.len())
}

/// Runs the refresh every `interval` and the pruning daily, unless `pg_cron` does.
pub async fn run_forever(pools: Pools, interval: Duration) {
    if interval.is_zero() {
        return;
    }
    if pg_cron_installed(&pools).await {
        tracing::info!("pg_cron schedules the maintenance jobs");
        return;
    }
    let mut refresh = tokio::time::interval(interval);
    let mut prune = tokio::time::interval(Duration::from_secs(24 * 3_600));
    loop {
        tokio::select! {
            _ = refresh.tick() => match refresh_views(&pools).await {
                Ok(views) => tracing::debug!(views, "materialized views refreshed"),
                Err(error) => tracing::warn!(%error, "materialized view refresh failed"),
            },
            _ = prune.tick() => {
                if let Ok(client) = pools.pool(Workload::Maintenance).get().await
                    && let Err(error) = client.execute("SELECT prune_performance_history()", &[]).await
                {
                    tracing::warn!(%error, "pruning performance history failed");
                }
            }
        }
    }
}

/// How often the change log is vacuumed.
const CHANGE_LOG_VACUUM: Duration = Duration::from_secs(60);

/// Vacuums `authz_change_log` every minute (skipped while another vacuum holds it). A role that
/// may not vacuum it gets one warning; autovacuum then has to keep up.
pub async fn vacuum_change_log_forever(pools: Pools) {
    let mut ticks = tokio::time::interval(CHANGE_LOG_VACUUM);
    ticks.tick().await;
    let mut warned = false;
    loop {
        ticks.tick().await;
        let Ok(client) = pools.pool(Workload::Maintenance).get().await else {
            continue;
        };
        if let Err(error) = client
            .batch_execute("VACUUM (SKIP_LOCKED) authz_change_log")
            .await
            && !warned
        {
            warned = true;
            tracing::warn!(%error, "vacuuming the change log failed; autovacuum must keep up");
        }
    }
}
