//! What a Redis tier talks to: one server (a reconnecting multiplexed connection) or a Redis
//! Cluster (the `redis` crate's cluster client: slot routing, `MOVED`/`ASK` redirects, topology
//! refresh after a failover), behind one [`redis::aio::ConnectionLike`].
//!
//! A tier URL names a cluster as [`cluster_seeds`] reads it.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};

use crate::config::cluster_seeds;

/// A tier's client: not connected yet.
#[derive(Clone)]
pub enum TierClient {
    /// One server.
    Single(redis::Client),
    /// A Redis Cluster.
    Cluster(ClusterClient),
}

/// A tier's connection, cheap to clone (both kinds multiplex).
#[derive(Clone)]
pub enum TierConnection {
    /// One server.
    Single(ConnectionManager),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

impl TierClient {
    /// The client of `url`; a `rediss` URL is verified against `ca_pem` when given, else the
    /// system's roots.
    ///
    /// # Errors
    /// An unreadable URL.
    pub fn open(url: &str, ca_pem: Option<&[u8]>, timeout: Duration) -> Result<Self, RedisError> {
        let certificates = |pem: &[u8]| redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.to_vec()),
        };
        if let Some(seeds) = cluster_seeds(url) {
            let seeds = seeds.map_err(|detail| {
                RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "invalid Redis Cluster URL",
                    detail,
                ))
            })?;
            let mut builder = ClusterClientBuilder::new(seeds.clone())
                .connection_timeout(timeout.max(Duration::from_millis(200)))
                .response_timeout(timeout)
                // One retry, soon: a redirect or a refreshed slot map after a failover; the
                // tier's deadline bounds the whole command anyway.
                .retries(1)
                .min_retry_wait(5)
                .max_retry_wait(50);
            if let Some(pem) = ca_pem
                && seeds.iter().all(|seed| seed.starts_with("rediss://"))
            {
                builder = builder.certs(certificates(pem));
            }
            return Ok(Self::Cluster(builder.build()?));
        }
        Ok(Self::Single(match ca_pem {
            Some(pem) if url.starts_with("rediss://") => {
                redis::Client::build_with_tls(url, certificates(pem))?
            }
            _ => redis::Client::open(url)?,
        }))
    }

    /// Connects (the cluster client reads the slot map from a seed).
    ///
    /// # Errors
    /// Unreachable, refused, or too slow.
    pub async fn connect(&self, timeout: Duration) -> Result<TierConnection, RedisError> {
        match self {
            Self::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(timeout.max(Duration::from_millis(200)))
                    .set_response_timeout(timeout)
                    .set_number_of_retries(0);
                ConnectionManager::new_with_config(client.clone(), config)
                    .await
                    .map(TierConnection::Single)
            }
            Self::Cluster(client) => client
                .get_async_connection()
                .await
                .map(TierConnection::Cluster),
        }
    }
}

impl TierConnection {
    /// Whether this is a cluster, where one pipeline may not span slots.
    pub const fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

impl ConnectionLike for TierConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(connection) => connection.req_packed_commands(cmd, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}
