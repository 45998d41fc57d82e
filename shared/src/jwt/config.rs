//! The end-user token policy, [`JwtConfig`]: the limits and the optional claim checks, and
//! the one parser of the variables both services read them from.
//!
//! It must not read the environment itself: the caller hands each variable's value in.

use alloc::string::String;

/// Limits and optional checks of [`verify`](super::verify). Read once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    /// Clock skew allowed on `exp` and `nbf`, in seconds. Default 30.
    pub leeway_seconds: u64,
    /// When set, `aud` must be this string or an array containing it. Default `None`: `aud`
    /// is not checked.
    pub audience: Option<String>,
    /// Longest token accepted, in bytes, checked before any decoding. Default 8192.
    pub max_token_bytes: usize,
    /// When set, `iss` must equal it. Default `None`: `iss` is not checked.
    pub issuer: Option<String>,
    /// When set, a token whose lifetime (`exp` minus `iat`, else minus `nbf`) is longer, or
    /// unknown (neither `iat` nor `nbf`), is refused. Default `None`.
    pub max_lifetime_seconds: Option<u64>,
}

impl JwtConfig {
    /// Default of [`JwtConfig::leeway_seconds`].
    pub const DEFAULT_LEEWAY_SECONDS: u64 = 30;
    /// Default of [`JwtConfig::max_token_bytes`].
    pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8192;

    /// The variables both services read the claims policy from, so that the edge refuses
    /// exactly what the origin refuses: `AUTHZ_JWT_AUDIENCE`, `AUTHZ_JWT_ISSUER`,
    /// `AUTHZ_JWT_LEEWAY_SECONDS`, `AUTHZ_JWT_MAX_LIFETIME_SECONDS`.
    pub const VARIABLES: [&'static str; 4] = [
        "AUTHZ_JWT_AUDIENCE",
        "AUTHZ_JWT_ISSUER",
        "AUTHZ_JWT_LEEWAY_SECONDS",
        "AUTHZ_JWT_MAX_LIFETIME_SECONDS",
    ];

    /// The policy from those variables (`get` returns a variable's value; unset or blank is
    /// the default), or the variable at fault and what it must be.
    pub fn from_vars<'a>(
        get: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Self, (&'static str, &'static str)> {
        let value = |name: &str| get(name).map(str::trim).filter(|value| !value.is_empty());
        let leeway_seconds = match value("AUTHZ_JWT_LEEWAY_SECONDS") {
            None => Self::DEFAULT_LEEWAY_SECONDS,
            Some(text) => text.parse().map_err(|_| {
                (
                    "AUTHZ_JWT_LEEWAY_SECONDS",
                    "expected a whole number of seconds",
                )
            })?,
        };
        let max_lifetime_seconds = match value("AUTHZ_JWT_MAX_LIFETIME_SECONDS") {
            None => None,
            Some(text) => Some(text.parse::<u64>().ok().filter(|n| *n > 0).ok_or((
                "AUTHZ_JWT_MAX_LIFETIME_SECONDS",
                "expected a positive whole number of seconds",
            ))?),
        };
        Ok(Self {
            leeway_seconds,
            audience: value("AUTHZ_JWT_AUDIENCE").map(String::from),
            max_token_bytes: Self::DEFAULT_MAX_TOKEN_BYTES,
            issuer: value("AUTHZ_JWT_ISSUER").map(String::from),
            max_lifetime_seconds,
        })
    }
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            leeway_seconds: Self::DEFAULT_LEEWAY_SECONDS,
            audience: None,
            max_token_bytes: Self::DEFAULT_MAX_TOKEN_BYTES,
            issuer: None,
            max_lifetime_seconds: None,
        }
    }
}
