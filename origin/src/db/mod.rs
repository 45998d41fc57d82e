//! Postgres: one pool per `connection_pool_config` row, routed by workload, the migrations,
//! and the decision-facts query.
//!
//! Decisions use the authorization pools (the replica only when the answer proves it is fresh
//! enough), analytics the read pools, metric and alert writes the write pool, refreshes the
//! maintenance pool.

pub mod facts;
pub mod migrate;
pub mod replica;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};

use crate::config::{Config, POOL_NAMES};
use crate::postgres_tls::Target;

/// One `connection_pool_config` row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PoolSettings {
    /// `pool_name`.
    pub name: String,
    /// `max_size`.
    pub max_size: usize,
    /// `connect_timeout_ms`.
    pub connect_timeout_ms: u64,
    /// `statement_timeout_ms`.
    pub statement_timeout_ms: u64,
    /// `target`: `primary` or `replica`.
    pub target: String,
}

impl PoolSettings {
    fn fallback(name: &str, config: &Config) -> Self {
        let (max_size, target) = match name {
            "authorization_primary" => (16, "primary"),
            "authorization_replica" => (16, "replica"),
            "read_primary" => (4, "primary"),
            "read_replica" => (4, "replica"),
            "write_primary" => (4, "primary"),
            _ => (2, "primary"),
        };
        Self {
            name: name.to_owned(),
            max_size,
            connect_timeout_ms: 2_000,
            statement_timeout_ms: u64::try_from(config.statement_timeout.as_millis())
                .unwrap_or(2_000),
            target: target.to_owned(),
        }
    }
}

/// How taking connections from one pool went since start: waits and failures. Read by
/// monitoring; updated with relaxed atomics, so reading never blocks a request.
#[derive(Debug, Default)]
pub struct PoolStats {
    acquired: AtomicU64,
    wait_micros_total: AtomicU64,
    wait_micros_max: AtomicU64,
    errors: AtomicU64,
}

/// A copy of [`PoolStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStatsSnapshot {
    /// Connections handed out.
    pub acquired: u64,
    /// Total time callers waited for them, in µs.
    pub wait_micros_total: u64,
    /// The longest wait, in µs.
    pub wait_micros_max: u64,
    /// Failed acquisitions (timeouts, connection errors) and failed queries.
    pub errors: u64,
}

impl PoolStats {
    fn record_acquire(&self, waited: Duration, ok: bool) {
        let micros = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.wait_micros_total.fetch_add(micros, Ordering::Relaxed);
        self.wait_micros_max.fetch_max(micros, Ordering::Relaxed);
        if ok {
            self.acquired.fetch_add(1, Ordering::Relaxed);
        } else {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a failed query on a connection of this pool.
    pub fn record_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> PoolStatsSnapshot {
        PoolStatsSnapshot {
            acquired: self.acquired.load(Ordering::Relaxed),
            wait_micros_total: self.wait_micros_total.load(Ordering::Relaxed),
            wait_micros_max: self.wait_micros_max.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

/// A named pool and its settings.
#[derive(Debug, Clone)]
pub struct NamedPool {
    /// Its name (one of `POOL_NAMES`).
    pub name: &'static str,
    /// Its settings.
    pub settings: PoolSettings,
    /// The pool.
    pub pool: Pool,
    /// Waits and failures of taking its connections.
    pub stats: Arc<PoolStats>,
    /// `authz_pool_wait_seconds{pool}`, registered once (not looked up on every checkout).
    wait_seconds: metrics::Histogram,
}

impl NamedPool {
    /// Takes a connection, timing the wait (`authz_pool_wait_seconds`) and counting failures.
    pub async fn get(&self) -> Result<Object, PoolError> {
        let started = Instant::now();
        let result = self.pool.get().await;
        let waited = started.elapsed();
        self.stats.record_acquire(waited, result.is_ok());
        self.wait_seconds.record(waited.as_secs_f64());
        if result.is_err() {
            metrics::counter!("authz_pool_errors_total", "pool" => self.name, "kind" => "acquire")
                .increment(1);
        }
        result
    }
}

/// Every pool of the origin.
#[derive(Debug, Clone)]
pub struct Pools {
    pools: HashMap<String, NamedPool>,
    has_replica: bool,
}

/// Which pool a piece of work goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// A decision that may be answered by a replica if fresh enough.
    AuthorizationReplica,
    /// A decision on the primary.
    AuthorizationPrimary,
    /// Analytics and health reads.
    Read,
    /// Metric and alert writes.
    Write,
    /// Refreshes and other maintenance.
    Maintenance,
}

impl Pools {
    /// Reads `connection_pool_config` from the primary (defaults when the table is missing or
    /// empty), applies the environment's overrides and builds the pools. Connections are made
    /// lazily, so the origin starts even while Postgres is down; but a server whose TLS
    /// certificate the URL's `sslmode` refuses (wrong CA, wrong host) stops the start with an
    /// error naming the variable.
    pub async fn connect(config: &Config) -> anyhow::Result<Self> {
        let rows = read_pool_config(&config.postgres_primary).await?;
        if let Some(replica) = &config.postgres_replica {
            refused_by_tls("POSTGRES_REPLICA_URL", replica).await?;
        }
        let mut pools = HashMap::new();
        for name in POOL_NAMES {
            let mut settings = rows
                .iter()
                .find(|row| row.name == name)
                .cloned()
                .unwrap_or_else(|| PoolSettings::fallback(name, config));
            if let Some(size) = config.pool_max_size_overrides.get(name) {
                settings.max_size = *size;
            }
            let target = match (&config.postgres_replica, settings.target.as_str()) {
                (Some(replica), "replica") => replica,
                _ => &config.postgres_primary,
            };
            let pool = build_pool(target, &settings, name, config.request_timeout)?;
            pools.insert(
                name.to_owned(),
                NamedPool {
                    name,
                    settings,
                    pool,
                    stats: Arc::default(),
                    wait_seconds: metrics::histogram!("authz_pool_wait_seconds", "pool" => name),
                },
            );
        }
        Ok(Self {
            pools,
            has_replica: config.postgres_replica_url.is_some(),
        })
    }

    /// The pool for `workload`.
    pub fn pool(&self, workload: Workload) -> &Pool {
        &self.named(workload).pool
    }

    /// The pool for `workload`, with its name and counters.
    pub fn named(&self, workload: Workload) -> &NamedPool {
        let name = match workload {
            Workload::AuthorizationReplica if self.has_replica => "authorization_replica",
            Workload::AuthorizationReplica | Workload::AuthorizationPrimary => {
                "authorization_primary"
            }
            Workload::Read if self.has_replica => "read_replica",
            Workload::Read => "read_primary",
            Workload::Write => "write_primary",
            Workload::Maintenance => "maintenance",
        };
        // Every name of POOL_NAMES is inserted by `connect`.
        &self.pools[name]
    }

    /// Whether a replica URL is configured.
    pub const fn has_replica(&self) -> bool {
        self.has_replica
    }

    /// Every pool, by name, sorted.
    pub fn all(&self) -> Vec<&NamedPool> {
        let mut all: Vec<_> = self.pools.values().collect();
        all.sort_by(|a, b| a.settings.name.cmp(&b.settings.name));
        all
    }
}

/// A pool for `settings`. Waiting for a free connection is bounded by the request deadline
/// (`request_timeout`), not by `connect_timeout_ms`: a burst of misses that queues behind the
/// pool for longer than a connect attempt but within its deadline is answered, not refused.
fn build_pool(
    target: &Target,
    settings: &PoolSettings,
    name: &str,
    request_timeout: Duration,
) -> anyhow::Result<Pool> {
    let mut pg_config = target.config.clone();
    // The decision pools run only the facts statements, whose plans do not depend on their
    // arguments: the generic plan, always (see migrations/V8: a custom plan of the
    // single-question statement looks cheaper, but planning it again costs milliseconds).
    let plan_cache = if name.starts_with("authorization_") {
        " -c plan_cache_mode=force_generic_plan"
    } else {
        ""
    };
    pg_config
        .application_name(format!("authz-origin/{name}"))
        .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
        .options(format!(
            "-c statement_timeout={}{plan_cache}",
            settings.statement_timeout_ms
        ));
    let manager = Manager::from_config(
        pg_config,
        target.tls.clone(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(settings.max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(
            request_timeout.max(Duration::from_millis(settings.connect_timeout_ms)),
        ))
        .create_timeout(Some(Duration::from_millis(settings.connect_timeout_ms)))
        .recycle_timeout(Some(Duration::from_millis(settings.connect_timeout_ms)))
        .build()?;
    Ok(pool)
}

/// Fails when connecting to `url` is refused by TLS verification (an unreachable server is
/// not an error here: the pools connect lazily).
async fn refused_by_tls(variable: &str, target: &Target) -> anyhow::Result<()> {
    if let Ok(Err(error)) =
        tokio::time::timeout(Duration::from_secs(5), crate::postgres_tls::connect(target)).await
        && crate::postgres_tls::is_tls_refusal(&error)
    {
        anyhow::bail!("invalid {variable}: the server's TLS certificate is refused: {error}");
    }
    Ok(())
}

async fn read_pool_config(target: &Target) -> anyhow::Result<Vec<PoolSettings>> {
    let attempt = async {
        let (client, driver) = crate::postgres_tls::connect(target).await?;
        let rows = client
            .query(
                "SELECT pool_name, max_size::bigint, connect_timeout_ms::bigint, \
                 statement_timeout_ms::bigint, target FROM connection_pool_config",
                &[],
            )
            .await;
        driver.abort();
        rows
    };
    Ok(
        match tokio::time::timeout(Duration::from_secs(5), attempt).await {
            Ok(Ok(rows)) => rows
                .iter()
                .map(|row| PoolSettings {
                    name: row.get(0),
                    max_size: usize::try_from(row.get::<_, i64>(1)).unwrap_or(4).max(1),
                    connect_timeout_ms: u64::try_from(row.get::<_, i64>(2)).unwrap_or(2_000),
                    statement_timeout_ms: u64::try_from(row.get::<_, i64>(3)).unwrap_or(2_000),
                    target: row.get(4),
                })
                .collect(),
            Ok(Err(error)) if crate::postgres_tls::is_tls_refusal(&error) => {
                anyhow::bail!(
                    "invalid POSTGRES_PRIMARY_URL: the server's TLS certificate is refused: {error}"
                );
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "connection_pool_config unreadable; using default pool sizes");
                Vec::new()
            }
            Err(_) => {
                tracing::warn!("connection_pool_config read timed out; using default pool sizes");
                Vec::new()
            }
        },
    )
}
