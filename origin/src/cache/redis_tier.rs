//! One Redis tier: a multiplexed connection (reconnecting on its own), a key prefix claimed for
//! one database (see [`super::owner`]), a short deadline on every command and a circuit
//! breaker. Every failure is a miss or a skipped write, never an error for the caller: Redis is
//! an accelerator, Postgres is the truth.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use tokio::sync::OnceCell;

use super::breaker::{Breaker, BreakerState};
use super::owner::{DatabaseIdentity, Ownership, owner_key};
use super::redis_connection::{TierClient, TierConnection};
use crate::config::RedisTierName;

/// A tier's counters since start, read by monitoring (relaxed atomics).
#[derive(Debug, Default)]
pub struct TierStats {
    hits: AtomicU64,
    misses: AtomicU64,
    commands: AtomicU64,
    command_micros_total: AtomicU64,
    errors: AtomicU64,
}

/// A copy of [`TierStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TierStatsSnapshot {
    /// Keys read that held a value.
    pub hits: u64,
    /// Keys read that held none (or could not be read).
    pub misses: u64,
    /// Commands sent.
    pub commands: u64,
    /// Their total duration, in µs.
    pub command_micros_total: u64,
    /// Commands that failed or timed out.
    pub errors: u64,
}

impl TierStats {
    fn lookups(&self, tier: &'static str, hits: u64, misses: u64) {
        self.hits.fetch_add(hits, Ordering::Relaxed);
        self.misses.fetch_add(misses, Ordering::Relaxed);
        metrics::counter!("authz_redis_lookups_total", "tier" => tier, "result" => "hit")
            .increment(hits);
        metrics::counter!("authz_redis_lookups_total", "tier" => tier, "result" => "miss")
            .increment(misses);
    }

    /// The counters now.
    pub fn snapshot(&self) -> TierStatsSnapshot {
        TierStatsSnapshot {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            commands: self.commands.load(Ordering::Relaxed),
            command_micros_total: self.command_micros_total.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

/// A Redis tier.
pub struct RedisTier {
    name: RedisTierName,
    client: TierClient,
    connection: OnceCell<TierConnection>,
    /// `AUTHZ_REDIS_PREFIX`, when set.
    configured_prefix: Option<String>,
    /// Set once the marker was read: ours (with the tier's full key prefix) or another's.
    claim: OnceLock<Ownership>,
    /// `<prefix><tier>:`, once claimed.
    keys: OnceLock<String>,
    timeout: Duration,
    breaker: Breaker,
    stats: TierStats,
}

impl std::fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTier")
            .field("name", &self.name)
            .field("breaker", &self.breaker.state())
            .finish_non_exhaustive()
    }
}

impl RedisTier {
    /// A tier on `url` (one server, or a Redis Cluster: see [`super::redis_connection`]).
    /// Connects lazily, so a Redis that is down at start only opens the breaker.
    /// A `rediss://` URL speaks TLS, verified against `ca_pem` (PEM certificates) when given,
    /// else against the system's roots. `prefix` is `AUTHZ_REDIS_PREFIX` (`None`: the
    /// database's identity); the tier serves nothing until [`Self::claim`] found it ours.
    pub fn new(
        name: RedisTierName,
        url: &str,
        ca_pem: Option<&[u8]>,
        prefix: Option<&str>,
        timeout: Duration,
        breaker: Breaker,
    ) -> Result<Arc<Self>, redis::RedisError> {
        let client = TierClient::open(url, ca_pem, timeout)?;
        Ok(Arc::new(Self {
            name,
            client,
            connection: OnceCell::new(),
            configured_prefix: prefix.map(str::to_owned),
            claim: OnceLock::new(),
            keys: OnceLock::new(),
            timeout,
            breaker,
            stats: TierStats::default(),
        }))
    }

    /// The tier's name.
    pub const fn name(&self) -> RedisTierName {
        self.name
    }

    /// The breaker's state.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// The tier's counters.
    pub const fn stats(&self) -> &TierStats {
        &self.stats
    }

    /// Where the tier stands with its prefix's marker.
    pub fn ownership(&self) -> Ownership {
        self.claim.get().cloned().unwrap_or(Ownership::Unclaimed)
    }

    /// Reads (or writes, when absent) the marker of this deployment's prefix on the tier's
    /// server. Once the marker was read the answer is final: ours, or another database's.
    ///
    /// The attempt goes through the breaker: an open breaker skips it (`Unclaimed`), a failure
    /// counts towards opening it, so attempts back off as commands do.
    ///
    /// # Errors
    /// Redis unreachable, or slower than a second: the tier stays unclaimed (skipped).
    pub async fn claim(&self, identity: &DatabaseIdentity) -> Result<Ownership, redis::RedisError> {
        if let Some(done) = self.claim.get() {
            return Ok(done.clone());
        }
        if !self.breaker.allow() {
            return Ok(Ownership::Unclaimed);
        }
        let read = self.read_marker(identity).await;
        match &read {
            Ok(_) => self.breaker.success(),
            Err(error) => {
                tracing::debug!(%error, tier = self.name.as_str(), "reading the prefix's owner failed");
                self.breaker.failure();
            }
        }
        read
    }

    async fn read_marker(
        &self,
        identity: &DatabaseIdentity,
    ) -> Result<Ownership, redis::RedisError> {
        let prefix = identity.prefix(self.configured_prefix.as_deref());
        let marker = owner_key(&prefix);
        let ours = identity.owner();
        let read = tokio::time::timeout(self.timeout.max(Duration::from_secs(1)), async {
            let mut connection = self.connection().await?;
            redis::cmd("SET")
                .arg(&marker)
                .arg(&ours)
                .arg("NX")
                .query_async::<Option<String>>(&mut connection)
                .await?;
            connection.get::<_, Option<String>>(&marker).await
        })
        .await
        .map_err(|_| {
            redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "reading the prefix's owner timed out",
            ))
        })??;
        let ownership = match read {
            Some(owner) if owner == ours => Ownership::Claimed { prefix },
            Some(owner) => Ownership::Foreign { prefix, owner },
            // Deleted between the two commands (a flush): try again later.
            None => return Ok(Ownership::Unclaimed),
        };
        if let Ownership::Claimed { prefix } = &ownership {
            let _ = self.keys.set(format!("{prefix}{}:", self.name.as_str()));
        }
        let _ = self.claim.set(ownership);
        Ok(self.ownership())
    }

    /// The full Redis key of `key` in this tier; `None` until the prefix is claimed.
    fn key(&self, key: &str) -> Option<String> {
        self.keys.get().map(|prefix| format!("{prefix}{key}"))
    }

    /// Counts a command skipped because the prefix is not (or not ours) claimed.
    fn unclaimed(&self) {
        metrics::counter!("authz_redis_skipped_total", "tier" => self.name.as_str()).increment(1);
    }

    async fn connection(&self) -> Result<TierConnection, redis::RedisError> {
        self.connection
            .get_or_try_init(|| self.client.connect(self.timeout))
            .await
            .cloned()
    }

    /// Runs one command under the breaker and the deadline. `None` when skipped or failed.
    async fn run<T, F, Fut>(&self, operation: &'static str, command: F) -> Option<T>
    where
        F: FnOnce(TierConnection) -> Fut,
        Fut: std::future::Future<Output = Result<T, redis::RedisError>>,
    {
        if !self.breaker.allow() {
            metrics::counter!("authz_redis_skipped_total", "tier" => self.name.as_str())
                .increment(1);
            return None;
        }
        let started = Instant::now();
        let outcome = tokio::time::timeout(self.timeout, async {
            let connection = self.connection().await?;
            command(connection).await
        })
        .await;
        let tier = self.name.as_str();
        let elapsed = started.elapsed();
        metrics::histogram!("authz_redis_command_seconds", "tier" => tier, "operation" => operation)
            .record(elapsed.as_secs_f64());
        self.stats.commands.fetch_add(1, Ordering::Relaxed);
        self.stats.command_micros_total.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if !matches!(outcome, Ok(Ok(_))) {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        match outcome {
            Ok(Ok(value)) => {
                self.breaker.success();
                Some(value)
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, tier, operation, "redis command failed");
                metrics::counter!("authz_redis_errors_total", "tier" => tier, "kind" => "error")
                    .increment(1);
                self.breaker.failure();
                None
            }
            Err(_) => {
                metrics::counter!("authz_redis_errors_total", "tier" => tier, "kind" => "timeout")
                    .increment(1);
                self.breaker.failure();
                None
            }
        }
    }

    /// `GET` one key (unprefixed).
    pub async fn get(&self, key: &str) -> Option<String> {
        let value = match self.key(key) {
            Some(key) => self
                .run("get", |mut connection| async move {
                    connection.get::<_, Option<String>>(key).await
                })
                .await
                .flatten(),
            None => {
                self.unclaimed();
                None
            }
        };
        let hit = u64::from(value.is_some());
        self.stats.lookups(self.name.as_str(), hit, 1 - hit);
        value
    }

    /// `MGET` keys (unprefixed), in order; all `None` when Redis is unavailable.
    pub async fn mget(&self, keys: &[String]) -> Vec<Option<String>> {
        if keys.is_empty() {
            return Vec::new();
        }
        let full: Option<Vec<String>> = keys.iter().map(|key| self.key(key)).collect();
        let values = match full {
            Some(full) => {
                self.run("mget", |mut connection| async move {
                    // MGET of one key answers a single value, not an array: ask for a Vec anyway.
                    redis::cmd("MGET")
                        .arg(&full)
                        .query_async::<Vec<Option<String>>>(&mut connection)
                        .await
                })
                .await
            }
            None => {
                self.unclaimed();
                None
            }
        };
        let values = values
            .filter(|values| values.len() == keys.len())
            .unwrap_or_else(|| vec![None; keys.len()]);
        let hits = values.iter().filter(|value| value.is_some()).count() as u64;
        self.stats
            .lookups(self.name.as_str(), hits, keys.len() as u64 - hits);
        values
    }

    /// `SET key value PX ttl` for each item, in one pipeline.
    pub async fn set_many(&self, items: Vec<(String, String, u64)>) {
        let Some(prefix) = self.keys.get() else {
            self.unclaimed();
            return;
        };
        let items: Vec<_> = items
            .into_iter()
            .filter(|(_, _, ttl_ms)| *ttl_ms > 0)
            .map(|(key, value, ttl_ms)| (format!("{prefix}{key}"), value, ttl_ms))
            .collect();
        if items.is_empty() {
            return;
        }
        self.run("set", |mut connection| async move {
            if connection.is_cluster() {
                // Keys spread over slots and one pipeline may not span them: one command each,
                // sent together over the multiplexed connection.
                let writes = items.iter().map(|(key, value, ttl_ms)| {
                    let mut connection = connection.clone();
                    async move {
                        redis::cmd("SET")
                            .arg(key)
                            .arg(value)
                            .arg("PX")
                            .arg(*ttl_ms)
                            .query_async::<()>(&mut connection)
                            .await
                    }
                });
                return futures_util::future::try_join_all(writes).await.map(|_| ());
            }
            let mut pipe = redis::pipe();
            for (key, value, ttl_ms) in &items {
                pipe.cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("PX")
                    .arg(*ttl_ms)
                    .ignore();
            }
            pipe.query_async::<()>(&mut connection).await
        })
        .await;
    }

    /// `PING`, with its round-trip time; `None` when unreachable (or the breaker is open).
    pub async fn ping(&self) -> Option<Duration> {
        let started = Instant::now();
        self.run("ping", |mut connection| async move {
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
        })
        .await
        .map(|_| started.elapsed())
    }
}
