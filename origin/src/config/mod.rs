//! The origin's configuration: read once from the environment at start, validated, with a
//! message naming the variable when a value is wrong. Two stages: the raw strings read
//! through the table of variables and their defaults ([`vars`]), then [`Config`]. Every
//! configuration type lives here; nothing else in the origin reads the environment.

mod identity;
mod monitoring;
mod rate_limit;
mod redis_url;
mod server;
mod tls;
pub mod vars;

pub use monitoring::MonitoringConfig;
pub use rate_limit::RateLimitConfig;
pub use redis_url::cluster_seeds;
pub use server::ServerLimits;
use tls::{check_postgres_url, redis_ca_pem};
pub use vars::Env;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use authz_core::TtlPolicy;
use authz_core::jwt::{JwtConfig, JwtKey};

use crate::jwks::KeyStore;

/// A configuration error naming the variable at fault.
#[derive(Debug, thiserror::Error)]
#[error("invalid {variable}: {message}")]
pub struct ConfigError {
    variable: &'static str,
    message: String,
}

/// A [`ConfigError`] for `variable`.
pub(crate) fn invalid(variable: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        message: message.into(),
    }
}

/// The four Redis tiers of `redis_cache_config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RedisTierName {
    /// Decisions.
    Authorization,
    /// Verified token → principal.
    Session,
    /// Resource facts by id.
    Generation,
    /// A user's active flag and memberships.
    User,
}

impl RedisTierName {
    /// All tiers.
    pub const ALL: [Self; 4] = [
        Self::Authorization,
        Self::Session,
        Self::Generation,
        Self::User,
    ];

    /// The tier's name in `redis_cache_config` and in metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Authorization => "authorization",
            Self::Session => "session",
            Self::Generation => "generation",
            Self::User => "user",
        }
    }

    const fn variable(self) -> &'static str {
        match self {
            Self::Authorization => "REDIS_AUTHORIZATION_URL",
            Self::Session => "REDIS_SESSION_URL",
            Self::Generation => "REDIS_GENERATION_URL",
            Self::User => "REDIS_USER_URL",
        }
    }
}

/// What a cache may answer when Postgres cannot (`AUTHZ_SERVE_STALE_ON_ERROR`).
///
/// While the change listener is down and Postgres errors, nothing tells this process about
/// revocations. API.md asks that cached answers go on within their TTL when Postgres is down
/// (`all`, the default): then a revocation committed during a partition between this origin
/// and a still-running Postgres can be served until the grant's TTL (30 s by default), which is
/// the published bound for that fault. `denies` serves only cached denies (a deny served late
/// never grants anything); `none` answers 503 to everything not provably fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleOnError {
    /// Grants and denies within their TTL.
    All,
    /// Denies only.
    Denies,
    /// Nothing.
    None,
}

/// Everything the origin reads from its environment.
#[derive(Clone)]
pub struct Config {
    /// `POSTGRES_PRIMARY_URL`, else `DATABASE_URL`.
    pub postgres_primary_url: String,
    /// `POSTGRES_REPLICA_URL`, else the primary.
    pub postgres_replica_url: Option<String>,
    /// The primary's driver settings and TLS connector, parsed once (its roots read once).
    pub postgres_primary: crate::postgres_tls::Target,
    /// The replica's, when one is configured.
    pub postgres_replica: Option<crate::postgres_tls::Target>,
    /// Per tier: its Redis URL (`REDIS_<TIER>_URL`, else `REDIS_URL`), or none (Redis off).
    pub redis_urls: HashMap<RedisTierName, String>,
    /// `AUTHZ_REDIS_CA_FILE`: the PEM certificates of the CAs trusted for `rediss://` tiers
    /// (read at start), else the system's roots.
    pub redis_ca_pem: Option<Vec<u8>>,
    /// `AUTHZ_REDIS_PREFIX`: prepended to every Redis key, so several deployments or test runs
    /// can share one server; unset, the database's identity
    /// (`authz:<system identifier>:<database>:`, see [`crate::cache::owner`]).
    pub redis_prefix: Option<String>,
    /// `AUTHZ_REDIS_TIMEOUT_MS`: the deadline of one Redis command (default 50 ms).
    pub redis_timeout: Duration,
    /// `AUTHZ_BREAKER_FAILURES`: consecutive failures that open a tier's breaker (default 5).
    pub breaker_failures: u32,
    /// `AUTHZ_BREAKER_PROBE_MS`: the longest wait before a probe (default 30 s; from 100 ms, growing by half).
    pub breaker_probe: Duration,
    /// `AUTHZ_LISTEN` (default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// `AUTHZ_SERVICE_TOKEN`.
    pub service_token: Option<String>,
    /// `AUTHZ_ADMIN_TOKEN`.
    pub admin_token: Option<String>,
    /// `AUTHZ_JWT_SECRET`, ready to verify with.
    pub jwt_key: Option<JwtKey>,
    /// `AUTHZ_JWKS` or `AUTHZ_JWKS_URL` (with `AUTHZ_JWKS_REFRESH_SECONDS` and
    /// `AUTHZ_JWKS_MIN_REFRESH_SECONDS`): the identity provider's keys, shared by every clone
    /// of the configuration (a fetched set is replaced in place).
    pub jwks: Option<Arc<KeyStore>>,
    /// `AUTHZ_JWT_LEEWAY_SECONDS` (default 30) and `AUTHZ_JWT_AUDIENCE` (default none).
    pub jwt: JwtConfig,
    /// `AUTHZ_GRANT_TTL_MS`, `AUTHZ_DENY_TTL_MS`, `AUTHZ_NOT_FOUND_TTL_MS`.
    pub ttl: TtlPolicy,
    /// `AUTHZ_EDGE_TTL_MS`: the longest `ttl_ms` an answer carries (default 4,000).
    pub edge_ttl_ms: u64,
    /// `AUTHZ_L1_CAPACITY`: decisions held in process (default 100,000).
    pub l1_capacity: u64,
    /// `AUTHZ_REFRESH_AHEAD_PERCENT`: an L1 hit in the last this-many percent of its entry's
    /// lifetime refreshes the entry in the background (default 25; 0 turns it off; at most 90).
    pub refresh_ahead_percent: u8,
    /// `AUTHZ_STATEMENT_TIMEOUT_MS` (default 2,000), applied to every pooled connection.
    pub statement_timeout: Duration,
    /// `AUTHZ_REQUEST_TIMEOUT_MS`: the deadline of one decision or batch (default 5,000).
    pub request_timeout: Duration,
    /// `AUTHZ_POOL_<NAME>_MAX_SIZE`: overrides of `connection_pool_config.max_size`.
    pub pool_max_size_overrides: HashMap<String, usize>,
    /// `AUTHZ_MIGRATE_ON_START`: apply migrations before serving (default false).
    pub migrate_on_start: bool,
    /// `AUTHZ_RATE_LIMIT*`: the rate limits of `/v1/*` (see `rate_limit`).
    pub rate_limit: RateLimitConfig,
    /// The HTTP server's timeouts and connection limit (see `crate::connection`).
    pub server: ServerLimits,
    /// `AUTHZ_METRICS_*`, `AUTHZ_ALERT_*`, `AUTHZ_ADMIN_SESSION_SECONDS`: monitoring.
    pub monitoring: MonitoringConfig,
    /// `AUTHZ_SERVE_STALE_ON_ERROR`: `all` (default), `denies` or `none`.
    pub serve_stale_on_error: StaleOnError,
    /// `AUTHZ_LISTENER_HEARTBEAT_MS`: the listener's liveness probe, interval and timeout (1 s).
    pub listener_heartbeat: Duration,
    /// `AUTHZ_SEQUENCER_INTERVAL_MS`: how often the listener numbers committed changes (10 ms).
    pub sequencer_interval: Duration,
    /// `AUTHZ_WARMING_INTERVAL_SECONDS`: warming from `cache_warming_patterns` (300 s; 0: off).
    pub warming_interval: Duration,
    /// `AUTHZ_VIEW_REFRESH_SECONDS`: how often the origin refreshes the materialized views when
    /// the server has no `pg_cron` (default 900; 0 turns it off).
    pub view_refresh_interval: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("redis_tiers", &self.redis_urls.keys().collect::<Vec<_>>())
            .field(
                "service_token",
                &self.service_token.as_ref().map(|_| "<set>"),
            )
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<set>"))
            .field("jwt_key", &self.jwt_key.as_ref().map(|_| "<set>"))
            .field("jwks", &self.jwks.as_ref().map(|store| store.source()))
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// Pool names of `connection_pool_config`.
pub const POOL_NAMES: [&str; 6] = [
    "authorization_primary",
    "authorization_replica",
    "read_primary",
    "read_replica",
    "write_primary",
    "maintenance",
];

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Reads a given environment (tests build configs without touching the process's).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let env = Env::new(vars);
        let (postgres_primary_url, postgres_primary) = primary_database(env)?;
        let postgres_primary_url = postgres_primary_url.to_owned();
        let postgres_replica_url = env.get("POSTGRES_REPLICA_URL").map(str::to_owned);
        let postgres_replica = postgres_replica_url
            .as_deref()
            .map(|url| check_postgres_url("POSTGRES_REPLICA_URL", url))
            .transpose()?;

        let mut redis_urls = HashMap::new();
        for tier in RedisTierName::ALL {
            let (variable, url) = match env.get(tier.variable()) {
                Some(url) => (tier.variable(), url),
                None => match env.get("REDIS_URL") {
                    Some(url) => ("REDIS_URL", url),
                    None => continue,
                },
            };
            match cluster_seeds(url) {
                Some(seeds) => {
                    let seeds = seeds.map_err(|error| invalid(variable, error))?;
                    for seed in &seeds {
                        redis::parse_redis_url(seed).ok_or_else(|| {
                            invalid(variable, format!("not a redis url: \"{seed}\""))
                        })?;
                    }
                }
                None => {
                    redis::parse_redis_url(url)
                        .ok_or_else(|| invalid(variable, format!("not a redis url: \"{url}\"")))?;
                }
            }
            redis_urls.insert(tier, url.to_owned());
        }

        let jwt_key = env
            .get("AUTHZ_JWT_SECRET")
            .map(|secret| {
                if secret.len() < 32 {
                    return Err(invalid("AUTHZ_JWT_SECRET", "must be at least 32 bytes"));
                }
                JwtKey::new(secret.as_bytes())
                    .ok_or_else(|| invalid("AUTHZ_JWT_SECRET", "must not be empty"))
            })
            .transpose()?;
        let jwks = identity::jwks(env)?;
        // The core parses the claims policy, so the edge reads the same variables alike.
        let jwt = JwtConfig::from_vars(|name| env.get(name))
            .map_err(|(variable, message)| invalid(variable, message))?;
        for name in ["AUTHZ_SERVICE_TOKEN", "AUTHZ_ADMIN_TOKEN"] {
            if env.get(name).is_some_and(|token| token.len() < 16) {
                return Err(invalid(name, "must be at least 16 characters"));
            }
        }

        let ttl = TtlPolicy {
            grant_ttl_ms: env.number("AUTHZ_GRANT_TTL_MS")?,
            deny_ttl_ms: env.number("AUTHZ_DENY_TTL_MS")?,
            not_found_ttl_ms: env.number("AUTHZ_NOT_FOUND_TTL_MS")?,
        };

        let mut pool_max_size_overrides = HashMap::new();
        for name in POOL_NAMES {
            let variable = format!("AUTHZ_POOL_{}_MAX_SIZE", name.to_uppercase());
            if let Some(text) = env.set(&variable) {
                let size = text
                    .parse::<usize>()
                    .ok()
                    .filter(|size| *size > 0)
                    .ok_or_else(|| {
                        invalid(
                            "AUTHZ_POOL_<NAME>_MAX_SIZE",
                            format!("{variable}: expected a positive number, got \"{text}\""),
                        )
                    })?;
                pool_max_size_overrides.insert(name.to_owned(), size);
            }
        }

        let breaker_failures = u32::try_from(env.number("AUTHZ_BREAKER_FAILURES")?)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| invalid("AUTHZ_BREAKER_FAILURES", "expected a positive number"))?;

        Ok(Self {
            postgres_primary_url,
            postgres_replica_url,
            postgres_primary,
            postgres_replica,
            redis_urls,
            redis_ca_pem: redis_ca_pem(env)?,
            redis_prefix: env.get("AUTHZ_REDIS_PREFIX").map(str::to_owned),
            redis_timeout: env.millis("AUTHZ_REDIS_TIMEOUT_MS")?,
            breaker_failures,
            breaker_probe: env.millis("AUTHZ_BREAKER_PROBE_MS")?,
            listen: env.parse("AUTHZ_LISTEN", "host:port")?,
            service_token: env.get("AUTHZ_SERVICE_TOKEN").map(str::to_owned),
            admin_token: env.get("AUTHZ_ADMIN_TOKEN").map(str::to_owned),
            jwt_key,
            jwks,
            jwt,
            ttl,
            edge_ttl_ms: env.number("AUTHZ_EDGE_TTL_MS")?,
            l1_capacity: env.number("AUTHZ_L1_CAPACITY")?,
            refresh_ahead_percent: u8::try_from(env.number_in(
                "AUTHZ_REFRESH_AHEAD_PERCENT",
                0,
                90,
            )?)
            .unwrap_or(0),
            statement_timeout: env.millis("AUTHZ_STATEMENT_TIMEOUT_MS")?,
            request_timeout: env.millis("AUTHZ_REQUEST_TIMEOUT_MS")?,
            pool_max_size_overrides,
            serve_stale_on_error: match env.get("AUTHZ_SERVE_STALE_ON_ERROR") {
                Some("all") => StaleOnError::All,
                Some("denies") => StaleOnError::Denies,
                Some("none") => StaleOnError::None,
                other => {
                    return Err(invalid(
                        "AUTHZ_SERVE_STALE_ON_ERROR",
                        format!(
                            "expected all, denies or none, got \"{}\"",
                            other.unwrap_or_default()
                        ),
                    ));
                }
            },
            listener_heartbeat: env
                .millis("AUTHZ_LISTENER_HEARTBEAT_MS")?
                .max(Duration::from_millis(10)),
            sequencer_interval: env.millis("AUTHZ_SEQUENCER_INTERVAL_MS")?,
            warming_interval: env.seconds("AUTHZ_WARMING_INTERVAL_SECONDS")?,
            view_refresh_interval: env.seconds("AUTHZ_VIEW_REFRESH_SECONDS")?,
            migrate_on_start: env.switch("AUTHZ_MIGRATE_ON_START")?,
            monitoring: MonitoringConfig::from_env(env)?,
            rate_limit: RateLimitConfig::from_env(env)?,
            server: ServerLimits::from_env(env)?,
        })
    }
}

/// `POSTGRES_PRIMARY_URL`, else `DATABASE_URL`, and its parsed settings: the database of
/// [`Config`], and of the commands that need only a database (`migrate`, `seed`).
pub fn primary_database<'a>(
    env: Env<'a>,
) -> Result<(&'a str, crate::postgres_tls::Target), ConfigError> {
    let url = env
        .get("POSTGRES_PRIMARY_URL")
        .or_else(|| env.get("DATABASE_URL"))
        .ok_or_else(|| invalid("POSTGRES_PRIMARY_URL", "required (or DATABASE_URL)"))?;
    Ok((url, check_postgres_url("POSTGRES_PRIMARY_URL", url)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn check_error(pairs: &[(&str, &str)], expected: &str) {
        let error = Config::from_vars(&vars(pairs)).unwrap_err();
        assert_eq!(error.to_string(), expected);
    }

    #[test]
    fn defaults_and_fallbacks() {
        let config = Config::from_vars(&vars(&[
            ("DATABASE_URL", "postgres://postgres@127.0.0.1/db"),
            ("REDIS_URL", "redis://127.0.0.1:6379/0"),
            ("REDIS_SESSION_URL", "redis://127.0.0.1:6379/1"),
        ]))
        .unwrap();
        assert_eq!(
            config.postgres_primary_url,
            "postgres://postgres@127.0.0.1/db"
        );
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.redis_urls.len(), 4);
        assert_eq!(
            config.redis_urls[&RedisTierName::Session],
            "redis://127.0.0.1:6379/1"
        );
        assert_eq!(
            config.redis_urls[&RedisTierName::User],
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(config.ttl, TtlPolicy::default());
        assert!(config.service_token.is_none());
    }

    #[test]
    fn errors_name_the_variable() {
        check_error(
            &[],
            "invalid POSTGRES_PRIMARY_URL: required (or DATABASE_URL)",
        );
        check_error(
            &[
                ("DATABASE_URL", "postgres://x@127.0.0.1/db"),
                ("AUTHZ_LISTEN", "nowhere"),
            ],
            "invalid AUTHZ_LISTEN: expected host:port, got \"nowhere\"",
        );
        check_error(
            &[
                ("DATABASE_URL", "postgres://x@127.0.0.1/db"),
                ("REDIS_URL", "http://x"),
            ],
            "invalid REDIS_URL: not a redis url: \"http://x\"",
        );
        check_error(
            &[
                ("DATABASE_URL", "postgres://x@127.0.0.1/db"),
                ("AUTHZ_GRANT_TTL_MS", "soon"),
            ],
            "invalid AUTHZ_GRANT_TTL_MS: expected a number, got \"soon\"",
        );
        check_error(
            &[
                ("DATABASE_URL", "postgres://x@127.0.0.1/db"),
                ("AUTHZ_JWT_SECRET", "short"),
            ],
            "invalid AUTHZ_JWT_SECRET: must be at least 32 bytes",
        );
    }

    #[test]
    fn monitoring_defaults_and_errors() {
        let config = MonitoringConfig::from_env(Env::new(&vars(&[]))).unwrap();
        assert_eq!(config.persist_interval, Duration::from_secs(10));
        assert_eq!(config.alert_interval, Duration::from_secs(30));
        assert_eq!(config.alert_window, Duration::from_secs(300));
        assert_eq!(config.alert_webhook_url, None);
        assert_eq!(config.alert_webhook_retries, 3);
        let db = ("DATABASE_URL", "postgres://x@127.0.0.1/db");
        check_error(
            &[db, ("AUTHZ_ALERT_WINDOW_SECONDS", "5")],
            "invalid AUTHZ_ALERT_WINDOW_SECONDS: expected 10 to 3600, got 5",
        );
        check_error(
            &[db, ("AUTHZ_ALERT_WINDOW_SECONDS", "0")],
            "invalid AUTHZ_ALERT_WINDOW_SECONDS: expected 10 to 3600, got 0",
        );
        check_error(
            &[db, ("AUTHZ_ALERT_INTERVAL_SECONDS", "often")],
            "invalid AUTHZ_ALERT_INTERVAL_SECONDS: expected a number, got \"often\"",
        );
        check_error(
            &[db, ("AUTHZ_ALERT_WEBHOOK_URL", "ftp://example.test/hook")],
            "invalid AUTHZ_ALERT_WEBHOOK_URL: expected an http:// url, got \"ftp://example.test/hook\"",
        );
        check_error(
            &[db, ("AUTHZ_MIGRATE_ON_START", "maybe")],
            "invalid AUTHZ_MIGRATE_ON_START: expected on or off, got \"maybe\"",
        );
        check_error(
            &[db, ("AUTHZ_ALERT_WEBHOOK_URL", "https://example.test/hook")],
            "invalid AUTHZ_ALERT_WEBHOOK_URL: https is not supported (the origin is built without \
             TLS); point it at an http relay",
        );
        let config = Config::from_vars(&vars(&[
            db,
            ("AUTHZ_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/hook"),
            ("AUTHZ_METRICS_PERSIST_SECONDS", "0"),
        ]))
        .unwrap();
        assert_eq!(
            config.monitoring.alert_webhook_url.as_deref(),
            Some("http://127.0.0.1:9/hook")
        );
        assert!(config.monitoring.persist_interval.is_zero());
    }
}
