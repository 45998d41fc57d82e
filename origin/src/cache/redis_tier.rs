//! One Redis tier: a multiplexed connection (reconnecting on its own), a key prefix, a short
//! deadline on every command and a circuit breaker. Every failure is a miss or a skipped
//! write, never an error for the caller: Redis is an accelerator, Postgres is the truth.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

use super::breaker::{Breaker, BreakerState};
use crate::config::RedisTierName;

/// A Redis tier.
pub struct RedisTier {
    name: RedisTierName,
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
    prefix: String,
    timeout: Duration,
    breaker: Breaker,
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
    /// A tier on `url`. Connects lazily, so a Redis that is down at start only opens the breaker.
    pub fn new(
        name: RedisTierName,
        url: &str,
        prefix: &str,
        timeout: Duration,
        breaker: Breaker,
    ) -> Result<Arc<Self>, redis::RedisError> {
        Ok(Arc::new(Self {
            name,
            client: redis::Client::open(url)?,
            connection: OnceCell::new(),
            prefix: format!("{prefix}{}:", name.as_str()),
            timeout,
            breaker,
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

    /// The full Redis key of `key` in this tier.
    pub fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    async fn connection(&self) -> Result<ConnectionManager, redis::RedisError> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout.max(Duration::from_millis(200)))
            .set_response_timeout(self.timeout)
            .set_number_of_retries(0);
        self.connection
            .get_or_try_init(|| ConnectionManager::new_with_config(self.client.clone(), config))
            .await
            .cloned()
    }

    /// Runs one command under the breaker and the deadline. `None` when skipped or failed.
    async fn run<T, F, Fut>(&self, operation: &'static str, command: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
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
        metrics::histogram!("authz_redis_command_seconds", "tier" => tier, "operation" => operation)
            .record(started.elapsed().as_secs_f64());
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
        let key = self.key(key);
        self.run("get", |mut connection| async move {
            connection.get::<_, Option<String>>(key).await
        })
        .await
        .flatten()
    }

    /// `MGET` keys (unprefixed), in order; all `None` when Redis is unavailable.
    pub async fn mget(&self, keys: &[String]) -> Vec<Option<String>> {
        if keys.is_empty() {
            return Vec::new();
        }
        let full: Vec<String> = keys.iter().map(|key| self.key(key)).collect();
        let values = self
            .run("mget", |mut connection| async move {
                // MGET of one key answers a single value, not an array: ask for a Vec anyway.
                redis::cmd("MGET")
                    .arg(&full)
                    .query_async::<Vec<Option<String>>>(&mut connection)
                    .await
            })
            .await;
        values
            .filter(|values| values.len() == keys.len())
            .unwrap_or_else(|| vec![None; keys.len()])
    }

    /// `SET key value PX ttl` for each item, in one pipeline.
    pub async fn set_many(&self, items: Vec<(String, String, u64)>) {
        let items: Vec<_> = items
            .into_iter()
            .filter(|(_, _, ttl_ms)| *ttl_ms > 0)
            .map(|(key, value, ttl_ms)| (self.key(&key), value, ttl_ms))
            .collect();
        if items.is_empty() {
            return;
        }
        self.run("set", |mut connection| async move {
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
