//! Persisting aggregates: every `AUTHZ_METRICS_PERSIST_SECONDS` the sealer takes what the
//! window recorded since its previous turn and the pools' health, and offers the batch to a
//! bounded queue with `try_send`; the writer turns each batch into ONE statement on the write
//! pool (`Workload::Write`): a row of `authorization_performance_metrics` (only when there was
//! traffic) and a row per pool of `connection_pool_health`. Never per request: no request
//! waits on it. When the writer falls behind (Postgres slow or down) the queue fills and
//! batches are dropped and counted (`authz_metrics_persist_dropped_total`), never blocking.

use std::time::{Duration, SystemTime};

use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::db::{Pools, Workload};
use crate::monitoring::Handles;
use crate::monitoring::background::pools::{PoolSnapshot, snapshot};
use crate::monitoring::measure::window::{Summary, unix_now};

/// Batches waiting for the writer at most (32 × 10 s: five minutes of Postgres trouble).
pub const QUEUE_CAPACITY: usize = 32;
/// The deadline of one write.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// One interval's aggregates.
#[derive(Debug)]
pub struct Batch {
    /// The end of the interval.
    pub recorded_at: SystemTime,
    /// What the window recorded during it.
    pub summary: Summary,
    /// Facts statements sent to Postgres during it.
    pub db_queries: u64,
    /// The pools at its end.
    pub pools: Vec<PoolSnapshot>,
}

/// Starts the sealer and the writer.
pub fn spawn(state: Handles) -> [JoinHandle<()>; 2] {
    let (batches, queue) = mpsc::channel(QUEUE_CAPACITY);
    let pools = state.decider.pools().clone();
    [
        tokio::spawn(seal_forever(state, batches)),
        tokio::spawn(write_forever(pools, queue)),
    ]
}

async fn seal_forever(state: Handles, batches: mpsc::Sender<Batch>) {
    let interval = state.monitoring.config().persist_interval;
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut facts_queries = state.decider.facts_queries();
    loop {
        ticks.tick().await;
        let now_queries = state.decider.facts_queries();
        let batch = Batch {
            recorded_at: SystemTime::now(),
            summary: state.monitoring.window().take_pending(unix_now()),
            db_queries: now_queries.saturating_sub(facts_queries),
            pools: snapshot(state.decider.pools()),
        };
        facts_queries = now_queries;
        match batches.try_send(batch) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("authz_metrics_persist_dropped_total").increment(1);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

async fn write_forever(pools: Pools, mut queue: mpsc::Receiver<Batch>) {
    while let Some(batch) = queue.recv().await {
        match tokio::time::timeout(WRITE_TIMEOUT, write(&pools, &batch)).await {
            Ok(Ok(rows)) => {
                metrics::counter!("authz_metrics_persisted_rows_total").increment(rows);
            }
            Ok(Err(error)) => {
                metrics::counter!("authz_metrics_persist_failures_total").increment(1);
                tracing::warn!(%error, "persisting performance metrics failed");
            }
            Err(_) => {
                metrics::counter!("authz_metrics_persist_failures_total").increment(1);
                tracing::warn!("persisting performance metrics timed out");
            }
        }
    }
}

const INSERT_SQL: &str = "\
WITH metrics AS (
    INSERT INTO authorization_performance_metrics
        (recorded_at, window_seconds, source, requests, errors, grants, denies,
         avg_latency_ms, p50_latency_ms, p95_latency_ms, p99_latency_ms, max_latency_ms,
         cache_hit_rate, l1_hit_rate, l2_hit_rate, db_queries, throughput_rps, details)
    SELECT $1::timestamptz, $2::integer, 'origin', $3::bigint, $4::bigint, $5::bigint, $6::bigint,
           $7::float8, $8::float8, $9::float8, $10::float8, $11::float8,
           $12::float8, $13::float8, $14::float8, $15::bigint, $16::float8, $17::jsonb
     WHERE $3::bigint > 0
    RETURNING 1)
INSERT INTO connection_pool_health
    (recorded_at, pool_name, size, max_size, in_use, idle, waiters, utilization, errors)
SELECT $1::timestamptz, p.name, p.size, p.max_size, p.in_use, p.idle, p.waiters,
       p.utilization, p.errors
  FROM unnest($18::text[], $19::integer[], $20::integer[], $21::integer[], $22::integer[],
              $23::integer[], $24::float8[], $25::bigint[])
       AS p(name, size, max_size, in_use, idle, waiters, utilization, errors)
RETURNING (SELECT count(*) FROM metrics)";

fn int(value: usize) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

fn big(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Writes one batch in one statement; the rows written.
async fn write(pools: &Pools, batch: &Batch) -> Result<u64, String> {
    let client = pools
        .named(Workload::Write)
        .get()
        .await
        .map_err(|error| error.to_string())?;
    let summary = &batch.summary;
    let counts = &summary.counts;
    let errors_by_code: serde_json::Map<String, serde_json::Value> = counts
        .errors
        .iter()
        .map(|(code, count)| ((*code).to_owned(), json!(count)))
        .collect();
    let details = json!({
        "sources": { "l1": counts.l1, "l2": counts.l2, "db": counts.db },
        "errors_by_code": errors_by_code,
        "pool_utilization": summary.pool_utilization,
    });
    let window_seconds = i32::try_from(summary.seconds.round() as i64)
        .unwrap_or(i32::MAX)
        .max(1);
    let names: Vec<&str> = batch.pools.iter().map(|pool| pool.name).collect();
    let sizes: Vec<i32> = batch.pools.iter().map(|pool| int(pool.size)).collect();
    let max_sizes: Vec<i32> = batch.pools.iter().map(|pool| int(pool.max_size)).collect();
    let in_use: Vec<i32> = batch.pools.iter().map(|pool| int(pool.in_use)).collect();
    let idle: Vec<i32> = batch.pools.iter().map(|pool| int(pool.idle)).collect();
    let waiters: Vec<i32> = batch.pools.iter().map(|pool| int(pool.waiters)).collect();
    let utilization: Vec<f64> = batch.pools.iter().map(|pool| pool.utilization).collect();
    let pool_errors: Vec<i64> = batch.pools.iter().map(|pool| big(pool.errors)).collect();
    let rows = client
        .query(
            INSERT_SQL,
            &[
                &batch.recorded_at,
                &window_seconds,
                &big(counts.requests()),
                &big(counts.server_errors),
                &big(counts.granted),
                &big(counts.denied),
                &summary.avg_ms,
                &summary.p50_ms,
                &summary.p95_ms,
                &summary.p99_ms,
                &summary.max_ms,
                &summary.cache_hit_rate,
                &summary.l1_hit_rate,
                &summary.l2_hit_rate,
                &big(batch.db_queries),
                &(counts.requests() > 0).then_some(summary.throughput_rps),
                &details,
                &names,
                &sizes,
                &max_sizes,
                &in_use,
                &idle,
                &waiters,
                &utilization,
                &pool_errors,
            ],
        )
        .await
        .map_err(|error| {
            client_error(pools);
            error.to_string()
        })?;
    let metrics_rows = rows
        .first()
        .and_then(|row| row.try_get::<_, i64>(0).ok())
        .unwrap_or(0);
    Ok(rows.len() as u64 + u64::try_from(metrics_rows).unwrap_or(0))
}

fn client_error(pools: &Pools) {
    pools.named(Workload::Write).stats.record_error();
}
