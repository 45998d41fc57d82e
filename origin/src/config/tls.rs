//! The TLS-related settings' checks: the Redis CA file and the Postgres URLs' TLS targets.

use super::{ConfigError, Env, invalid};

/// `AUTHZ_REDIS_CA_FILE`'s certificates, read once.
pub(super) fn redis_ca_pem(env: Env<'_>) -> Result<Option<Vec<u8>>, ConfigError> {
    let Some(path) = env.get("AUTHZ_REDIS_CA_FILE") else {
        return Ok(None);
    };
    let pem = std::fs::read(path)
        .map_err(|error| invalid("AUTHZ_REDIS_CA_FILE", format!("{path:?}: {error}")))?;
    if !pem
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|window| window == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(invalid(
            "AUTHZ_REDIS_CA_FILE",
            format!("{path:?} holds no PEM certificate"),
        ));
    }
    Ok(Some(pem))
}

pub(super) fn check_postgres_url(
    variable: &'static str,
    url: &str,
) -> Result<crate::postgres_tls::Target, ConfigError> {
    crate::postgres_tls::target(url).map_err(|error| invalid(variable, error.to_string()))
}
