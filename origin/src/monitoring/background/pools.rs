//! The pools' health: deadpool's `status()` (size, idle, waiters) with the wait and error
//! counters of `db::PoolStats`, published as gauges by the sampler every
//! [`crate::monitoring::SAMPLE_INTERVAL`], which also feeds the window's utilisation samples and refreshes
//! the cache and window gauges. Reading a pool's status takes no connection.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::POOL_NAMES;
use crate::db::{Pools, Workload};
use crate::monitoring::Handles;
use crate::monitoring::measure::window::{POOLS, unix_now};

/// One pool, now.
#[derive(Debug, Clone, Serialize)]
pub struct PoolSnapshot {
    /// `connection_pool_config.pool_name`.
    pub name: &'static str,
    /// `primary` or `replica`.
    pub target: String,
    /// Connections open.
    pub size: usize,
    /// The most it may open.
    pub max_size: usize,
    /// Connections handed out.
    pub in_use: usize,
    /// Connections open and free.
    pub idle: usize,
    /// Callers waiting for a connection.
    pub waiters: usize,
    /// `in_use / max_size`.
    pub utilization: f64,
    /// Connections handed out since start.
    pub acquired_total: u64,
    /// Mean wait for a connection since start, in ms.
    pub wait_ms_avg: f64,
    /// Longest wait since start, in ms.
    pub wait_ms_max: f64,
    /// Failed acquisitions and queries since start.
    pub errors: u64,
}

/// Every pool, in `POOL_NAMES` order.
pub fn snapshot(pools: &Pools) -> Vec<PoolSnapshot> {
    pools
        .all()
        .into_iter()
        .map(|named| {
            let status = named.pool.status();
            let in_use = status.size.saturating_sub(status.available);
            let stats = named.stats.snapshot();
            let attempts = stats.acquired + stats.errors;
            PoolSnapshot {
                name: named.name,
                target: named.settings.target.clone(),
                size: status.size,
                max_size: status.max_size,
                in_use,
                idle: status.available,
                waiters: status.waiting,
                utilization: if status.max_size > 0 {
                    in_use as f64 / status.max_size as f64
                } else {
                    0.0
                },
                acquired_total: stats.acquired,
                wait_ms_avg: if attempts > 0 {
                    stats.wait_micros_total as f64 / attempts as f64 / 1_000.0
                } else {
                    0.0
                },
                wait_ms_max: stats.wait_micros_max as f64 / 1_000.0,
                errors: stats.errors,
            }
        })
        .collect()
}

/// The utilisation of each pool in `POOL_NAMES` order (the window's layout).
pub fn utilizations(snapshots: &[PoolSnapshot]) -> [f64; POOLS] {
    let mut values = [0.0; POOLS];
    for (slot, name) in values.iter_mut().zip(POOL_NAMES) {
        if let Some(pool) = snapshots.iter().find(|pool| pool.name == name) {
            *slot = pool.utilization;
        }
    }
    values
}

fn publish(snapshots: &[PoolSnapshot]) {
    for pool in snapshots {
        let name = pool.name;
        metrics::gauge!("authz_pool_size", "pool" => name).set(pool.size as f64);
        metrics::gauge!("authz_pool_max_size", "pool" => name).set(pool.max_size as f64);
        metrics::gauge!("authz_pool_in_use", "pool" => name).set(pool.in_use as f64);
        metrics::gauge!("authz_pool_idle", "pool" => name).set(pool.idle as f64);
        metrics::gauge!("authz_pool_waiters", "pool" => name).set(pool.waiters as f64);
        metrics::gauge!("authz_pool_utilization_ratio", "pool" => name).set(pool.utilization);
    }
}

/// Samples the pools and the caches every [`crate::monitoring::SAMPLE_INTERVAL`], forever.
pub async fn sample_forever(state: Handles) {
    let mut ticks = tokio::time::interval(crate::monitoring::SAMPLE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let snapshots = snapshot(state.decider.pools());
        publish(&snapshots);
        state
            .monitoring
            .window()
            .record_pools(&utilizations(&snapshots), unix_now());
        crate::monitoring::background::caches::publish(&state);
        if let Some(lag) = crate::db::replica::measure(state.decider.pools()).await {
            crate::db::replica::publish(&lag);
        }
    }
}

/// Probes Postgres with the revision query; its round trip in milliseconds.
pub async fn postgres_round_trip(pools: &Pools) -> Result<f64, String> {
    let started = Instant::now();
    let probe = async {
        let client = pools
            .pool(Workload::Read)
            .get()
            .await
            .map_err(|error| error.to_string())?;
        client
            .query_one("SELECT authz_current_revision()", &[])
            .await
            .map_err(|error| error.to_string())
    };
    match tokio::time::timeout(Duration::from_secs(2), probe).await {
        Ok(Ok(_)) => Ok(started.elapsed().as_secs_f64() * 1_000.0),
        Ok(Err(error)) => Err(error),
        Err(_) => Err("timed out".to_owned()),
    }
}
