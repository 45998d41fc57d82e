//! The connection limits of the HTTP server (`AUTHZ_HEADER_READ_TIMEOUT_MS`,
//! `AUTHZ_BODY_READ_TIMEOUT_MS`, `AUTHZ_IDLE_TIMEOUT_MS`, `AUTHZ_MAX_CONNECTIONS`; the server
//! is `crate::connection`).

use std::time::Duration;

use super::{ConfigError, Env, invalid};

/// What a client connection may hold of the server, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// `AUTHZ_HEADER_READ_TIMEOUT_MS`: from a request's first byte to the end of its headers
    /// (default 10 s); a slower connection is closed.
    pub header_read_timeout: Duration,
    /// `AUTHZ_BODY_READ_TIMEOUT_MS`: from the end of the headers to the end of the body
    /// (default 10 s); then 408 `request_timeout` and the connection is closed.
    pub body_read_timeout: Duration,
    /// `AUTHZ_IDLE_TIMEOUT_MS`: how long a connection may wait for its next request, or make no
    /// progress writing a response (default 60 s); then it is closed.
    pub idle_timeout: Duration,
    /// `AUTHZ_MAX_CONNECTIONS`: client connections open at once (default 20,000); more wait in
    /// the listen backlog until one closes.
    pub max_connections: usize,
}

impl ServerLimits {
    /// Reads the variables of `env`.
    pub fn from_env(env: Env<'_>) -> Result<Self, ConfigError> {
        let positive = |name: &'static str| -> Result<Duration, ConfigError> {
            let value = env.millis(name)?;
            if value.is_zero() {
                return Err(invalid(name, "expected a positive number of milliseconds"));
            }
            Ok(value)
        };
        let max_connections = env.number_in("AUTHZ_MAX_CONNECTIONS", 1, 1 << 20)?;
        Ok(Self {
            header_read_timeout: positive("AUTHZ_HEADER_READ_TIMEOUT_MS")?,
            body_read_timeout: positive("AUTHZ_BODY_READ_TIMEOUT_MS")?,
            idle_timeout: positive("AUTHZ_IDLE_TIMEOUT_MS")?,
            max_connections: usize::try_from(max_connections)
                .map_err(|_| invalid("AUTHZ_MAX_CONNECTIONS", "too large"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn defaults_and_refusals() {
        let empty = HashMap::new();
        let limits = ServerLimits::from_env(Env::new(&empty)).unwrap();
        assert_eq!(
            limits,
            ServerLimits {
                header_read_timeout: Duration::from_secs(10),
                body_read_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(60),
                max_connections: 20_000,
            }
        );
        for (name, value) in [
            ("AUTHZ_HEADER_READ_TIMEOUT_MS", "0"),
            ("AUTHZ_IDLE_TIMEOUT_MS", "soon"),
            ("AUTHZ_MAX_CONNECTIONS", "0"),
        ] {
            let vars = HashMap::from([(name.to_owned(), value.to_owned())]);
            let error = ServerLimits::from_env(Env::new(&vars)).unwrap_err();
            assert!(error.to_string().contains(name), "{error}");
        }
    }
}
