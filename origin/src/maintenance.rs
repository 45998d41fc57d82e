//! Scheduled database maintenance when the server has no `pg_cron`: refreshing the
//! materialized views (`refresh_authorization_materialized_views()`) and pruning old
//! performance history, on the maintenance pool. The views feed analytics only: no decision
//! ever reads them, so a refresh never delays a revocation.

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
