//! The one table of the origin's environment variables: name, default and meaning. The parser
//! ([`Env`]) takes every default from it, and a test renders it and compares it with the
//! README's configuration table, so the code, the defaults and the documentation cannot drift.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use super::{ConfigError, invalid};

/// What an unset variable means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Default {
    /// This value, parsed as if it had been set.
    Value(&'static str),
    /// No value; the text says what that means.
    Unset(&'static str),
}

/// One variable of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variable {
    /// Its name (`AUTHZ_POOL_<NAME>_MAX_SIZE` stands for one variable per pool).
    pub name: &'static str,
    /// What it sets.
    pub meaning: &'static str,
    /// Its default.
    pub default: Default,
}

const fn value(name: &'static str, meaning: &'static str, default: &'static str) -> Variable {
    Variable {
        name,
        meaning,
        default: Default::Value(default),
    }
}

const fn unset(name: &'static str, meaning: &'static str, when_unset: &'static str) -> Variable {
    Variable {
        name,
        meaning,
        default: Default::Unset(when_unset),
    }
}

/// Every variable the origin reads, in the README's order.
pub const VARIABLES: &[Variable] = &[
    unset(
        "POSTGRES_PRIMARY_URL",
        "primary database (falls back to `DATABASE_URL`); TLS as libpq: `sslmode` `disable`, `prefer` (default), `require`, `verify-ca`, `verify-full`, and `sslrootcert` (a PEM file of CAs; the system roots by default)",
        "required",
    ),
    unset(
        "DATABASE_URL",
        "the primary database when `POSTGRES_PRIMARY_URL` is unset",
        "none",
    ),
    unset(
        "POSTGRES_REPLICA_URL",
        "read replica for read-heavy pools",
        "the primary",
    ),
    unset(
        "REDIS_URL",
        "Redis of every tier that has no URL of its own; `redis+cluster://host:port[,host:port...]` (or `rediss+cluster://`) names a Redis Cluster by its seed nodes, for this and each tier's URL",
        "Redis off",
    ),
    unset(
        "REDIS_AUTHORIZATION_URL",
        "Redis of the `authorization` tier (decisions)",
        "`REDIS_URL`",
    ),
    unset(
        "REDIS_SESSION_URL",
        "Redis of the `session` tier (verified end-user tokens)",
        "`REDIS_URL`",
    ),
    unset(
        "REDIS_GENERATION_URL",
        "Redis of the `generation` tier (resource fact pieces)",
        "`REDIS_URL`",
    ),
    unset(
        "REDIS_USER_URL",
        "Redis of the `user` tier (user fact pieces)",
        "`REDIS_URL`",
    ),
    unset(
        "AUTHZ_REDIS_CA_FILE",
        "PEM file of the CAs that sign the Redis servers' certificates, for `rediss://` URLs (TLS; a `#insecure` URL fragment skips verification)",
        "the system roots",
    ),
    value("AUTHZ_LISTEN", "address to serve on", "127.0.0.1:8080"),
    value(
        "AUTHZ_HEADER_READ_TIMEOUT_MS",
        "from a request's first byte to the end of its headers; a slower connection is closed",
        "10000",
    ),
    value(
        "AUTHZ_BODY_READ_TIMEOUT_MS",
        "from the end of a request's headers to the end of its body; then 408 \
         `request_timeout` and the connection is closed",
        "10000",
    ),
    value(
        "AUTHZ_IDLE_TIMEOUT_MS",
        "how long a connection may wait for its next request (keep-alive) or make no progress \
         writing a response; then it is closed",
        "60000",
    ),
    value(
        "AUTHZ_MAX_CONNECTIONS",
        "client connections open at once; more wait in the listen backlog until one closes \
         (the process needs as many file descriptors, plus its pools')",
        "20000",
    ),
    unset(
        "AUTHZ_SERVICE_TOKEN",
        "bearer token for trusted callers (at least 16 characters)",
        "required for `/v1/*` with explicit `user_id`",
    ),
    unset(
        "AUTHZ_ADMIN_TOKEN",
        "bearer token for `/admin/*` and `/api/v1/system/*` (at least 16 characters)",
        "required to serve them",
    ),
    unset(
        "AUTHZ_JWT_SECRET",
        "HS256 secret of end-user JWTs (at least 32 bytes)",
        "HS256 tokens refused",
    ),
    unset(
        "AUTHZ_JWKS",
        "an identity provider's keys as a JWKS document (RS256, ES256, EdDSA; each key's own algorithm); not with `AUTHZ_JWKS_URL`",
        "none",
    ),
    unset(
        "AUTHZ_JWKS_URL",
        "the address of an identity provider's JWKS (`https`, or `http` to a loopback address), fetched at start, every `AUTHZ_JWKS_REFRESH_SECONDS` and on an unknown `kid`; a failed fetch keeps the last good set",
        "none",
    ),
    value(
        "AUTHZ_JWKS_REFRESH_SECONDS",
        "how often the `AUTHZ_JWKS_URL` set is fetched again",
        "300",
    ),
    value(
        "AUTHZ_JWKS_MIN_REFRESH_SECONDS",
        "the least time between two fetches of `AUTHZ_JWKS_URL` caused by unknown `kid`s (and the retry delay after a failed fetch)",
        "30",
    ),
    value(
        "AUTHZ_JWT_LEEWAY_SECONDS",
        "clock skew allowed on `exp` and `nbf`",
        "30",
    ),
    unset(
        "AUTHZ_JWT_AUDIENCE",
        "the `aud` end-user JWTs must carry",
        "none",
    ),
    unset(
        "AUTHZ_JWT_ISSUER",
        "the `iss` end-user JWTs must carry",
        "none",
    ),
    unset(
        "AUTHZ_JWT_MAX_LIFETIME_SECONDS",
        "longest lifetime (`exp` minus `iat`, else minus `nbf`) of an end-user JWT; one with neither is refused",
        "none",
    ),
    value(
        "AUTHZ_GRANT_TTL_MS",
        "decision cache TTL of grants (never past a share's expiry)",
        "30000",
    ),
    value("AUTHZ_DENY_TTL_MS", "decision cache TTL of denies", "10000"),
    value(
        "AUTHZ_NOT_FOUND_TTL_MS",
        "decision cache TTL of `resource_not_found` denies",
        "5000",
    ),
    value(
        "AUTHZ_EDGE_TTL_MS",
        "the longest `ttl_ms` an answer carries: how long the edge (or any client) may reuse it, and so the edge's staleness bound for plain requests; the origin's own caches keep the TTLs above, invalidated on every change",
        "4000",
    ),
    value(
        "AUTHZ_L1_CAPACITY",
        "decisions held in process (0 turns L1 off, for measurements)",
        "100000",
    ),
    value(
        "AUTHZ_REFRESH_AHEAD_PERCENT",
        "an L1 hit in the last this-many % of its entry's life refreshes it in the background \
         (0 turns it off; at most 90)",
        "25",
    ),
    unset(
        "AUTHZ_REDIS_PREFIX",
        "prefix of every Redis key; the marker `<prefix>owner` on each Redis server names the \
         database that owns the prefix, and an origin of another database refuses to start",
        "`authz:<system identifier>:<database>:`, the database's own",
    ),
    value(
        "AUTHZ_REDIS_TIMEOUT_MS",
        "deadline of one Redis command",
        "50",
    ),
    value(
        "AUTHZ_BREAKER_FAILURES",
        "consecutive failures that open a tier's breaker",
        "5",
    ),
    value(
        "AUTHZ_BREAKER_PROBE_MS",
        "the longest an open breaker waits before a probe (the first probe goes after 100 ms, \
         the wait grows by half after each failed probe, up to this)",
        "30000",
    ),
    value(
        "AUTHZ_STATEMENT_TIMEOUT_MS",
        "Postgres `statement_timeout` of pooled connections (rows of `connection_pool_config` \
         override it per pool)",
        "2000",
    ),
    value(
        "AUTHZ_REQUEST_TIMEOUT_MS",
        "deadline of one decision or batch (then 503)",
        "5000",
    ),
    unset(
        "AUTHZ_POOL_<NAME>_MAX_SIZE",
        "override `connection_pool_config.max_size` of pool `<name>` (e.g. \
         `AUTHZ_POOL_AUTHORIZATION_PRIMARY_MAX_SIZE`)",
        "the table's",
    ),
    value(
        "AUTHZ_LISTENER_HEARTBEAT_MS",
        "the change listener proves its connection this often (and waits this long)",
        "1000",
    ),
    value(
        "AUTHZ_SEQUENCER_INTERVAL_MS",
        "the change listener numbers committed changes this often (the revocation lag at the \
         origin is about this plus a round trip)",
        "10",
    ),
    value(
        "AUTHZ_SERVE_STALE_ON_ERROR",
        "what caches answer when Postgres cannot: `all`, `denies` or `none` (see \
         ARCHITECTURE.md)",
        "all",
    ),
    value(
        "AUTHZ_WARMING_INTERVAL_SECONDS",
        "cache warming from `cache_warming_patterns` (0: off)",
        "300",
    ),
    value(
        "AUTHZ_VIEW_REFRESH_SECONDS",
        "materialized view refresh when the server has no `pg_cron` (0: off)",
        "900",
    ),
    value(
        "AUTHZ_MIGRATE_ON_START",
        "`on`: `serve` applies pending migrations first (also `serve --migrate`)",
        "off",
    ),
    value("AUTHZ_RATE_LIMIT", "`off` disables rate limiting", "on"),
    value(
        "AUTHZ_RATE_LIMIT_USER_PER_MINUTE",
        "questions per end user (JWT callers) per minute",
        "100",
    ),
    value(
        "AUTHZ_RATE_LIMIT_IP_PER_MINUTE",
        "questions per client IP of JWT callers per minute (the socket peer; \
         `X-Forwarded-For` is not trusted)",
        "500",
    ),
    unset(
        "AUTHZ_RATE_LIMIT_SERVICE_PER_MINUTE",
        "questions per client IP of service-token callers per minute",
        "unset: exempt",
    ),
    value(
        "AUTHZ_METRICS_PERSIST_SECONDS",
        "one batched write of aggregates and pool health to the performance tables this often \
         (0: off)",
        "10",
    ),
    value(
        "AUTHZ_ALERT_INTERVAL_SECONDS",
        "evaluate `performance_thresholds` this often (0: off)",
        "30",
    ),
    value(
        "AUTHZ_ALERT_WINDOW_SECONDS",
        "over this window of in-process samples (10 to 3,600)",
        "300",
    ),
    unset(
        "AUTHZ_ALERT_WEBHOOK_URL",
        "`http://` URL receiving each alert event as JSON",
        "none (alerts logged and written only)",
    ),
    value(
        "AUTHZ_ALERT_WEBHOOK_TIMEOUT_MS",
        "deadline of one webhook call",
        "5000",
    ),
    value(
        "AUTHZ_ALERT_WEBHOOK_RETRIES",
        "further attempts after a failed webhook call, with doubling pauses from 250 ms (at \
         most 10)",
        "3",
    ),
    value(
        "AUTHZ_ADMIN_SESSION_SECONDS",
        "lifetime of the dashboard page's login cookie",
        "28800",
    ),
    unset(
        "AUTHZ_ORIGIN_URL",
        "the running origin `authz-origin validate` measures (`--origin`)",
        "none",
    ),
    unset(
        "API_BASE_URL",
        "the deployment guide's name for the origin `authz-origin validate` measures, read when neither `--origin` nor `AUTHZ_ORIGIN_URL` is set",
        "none",
    ),
];

/// The table's entry for `name`.
pub fn variable(name: &str) -> Option<&'static Variable> {
    VARIABLES.iter().find(|variable| variable.name == name)
}

/// The README's table: a header and one row per variable.
pub fn markdown_table() -> String {
    let mut table = String::from("| variable | meaning | default |\n|---|---|---|\n");
    for variable in VARIABLES {
        let default = match variable.default {
            Default::Value(value) => format!("`{value}`"),
            Default::Unset(text) => text.to_owned(),
        };
        table.push_str(&format!(
            "| `{}` | {} | {default} |\n",
            variable.name, variable.meaning
        ));
    }
    table
}

/// A raw environment (stage one), read through the table: a value that is unset or blank
/// takes the table's default.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    vars: &'a HashMap<String, String>,
}

impl<'a> Env<'a> {
    /// The environment `vars`.
    pub const fn new(vars: &'a HashMap<String, String>) -> Self {
        Self { vars }
    }

    /// The value that was set (trimmed, non-empty), ignoring defaults.
    pub fn set(&self, name: &str) -> Option<&'a str> {
        self.vars
            .get(name)
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    }

    /// The value set, else the table's default value, else none.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.set(name).or_else(|| match variable(name)?.default {
            Default::Value(value) => Some(value),
            Default::Unset(_) => None,
        })
    }

    /// The value of a variable that has a default (or is set).
    fn value(&self, name: &'static str) -> Result<&'a str, ConfigError> {
        self.get(name).ok_or_else(|| invalid(name, "required"))
    }

    /// A value parsed as `T`; `expected` names the form in the error.
    pub fn parse<T: FromStr>(&self, name: &'static str, expected: &str) -> Result<T, ConfigError> {
        let text = self.value(name)?;
        text.parse()
            .map_err(|_| invalid(name, format!("expected {expected}, got \"{text}\"")))
    }

    /// A whole number.
    pub fn number(&self, name: &'static str) -> Result<u64, ConfigError> {
        self.parse(name, "a number")
    }

    /// A whole number from `min` to `max`.
    pub fn number_in(&self, name: &'static str, min: u64, max: u64) -> Result<u64, ConfigError> {
        let value = self.number(name)?;
        if !(min..=max).contains(&value) {
            return Err(invalid(
                name,
                format!("expected {min} to {max}, got {value}"),
            ));
        }
        Ok(value)
    }

    /// Milliseconds.
    pub fn millis(&self, name: &'static str) -> Result<Duration, ConfigError> {
        self.parse(name, "milliseconds").map(Duration::from_millis)
    }

    /// Seconds.
    pub fn seconds(&self, name: &'static str) -> Result<Duration, ConfigError> {
        self.number(name).map(Duration::from_secs)
    }

    /// `on` or `off` (also `true`/`false`, `yes`/`no`, `1`/`0`).
    pub fn switch(&self, name: &'static str) -> Result<bool, ConfigError> {
        match self.value(name)? {
            "on" | "true" | "yes" | "1" => Ok(true),
            "off" | "false" | "no" | "0" => Ok(false),
            other => Err(invalid(
                name,
                format!("expected on or off, got \"{other}\""),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_table_is_this_table() {
        let readme = include_str!("../../../README.md");
        let expected = markdown_table();
        assert!(
            readme.contains(&expected),
            "README.md's configuration table differs from origin/src/config/vars.rs; it should \
             read:\n{expected}"
        );
    }

    #[test]
    fn names_are_unique_and_defaults_parse() {
        for (index, variable) in VARIABLES.iter().enumerate() {
            assert!(
                VARIABLES[..index]
                    .iter()
                    .all(|other| other.name != variable.name),
                "{} twice",
                variable.name
            );
        }
        let empty = HashMap::new();
        let env = Env::new(&empty);
        assert_eq!(env.get("AUTHZ_LISTEN"), Some("127.0.0.1:8080"));
        assert_eq!(env.get("AUTHZ_JWT_AUDIENCE"), None);
        assert_eq!(env.get("NOT_IN_THE_TABLE"), None);
        assert!(!env.switch("AUTHZ_MIGRATE_ON_START").unwrap());
        assert!(env.switch("AUTHZ_RATE_LIMIT").unwrap());
    }
}
