//! Who is calling: a trusted service (the edge, a backend) presenting `AUTHZ_SERVICE_TOKEN`,
//! an end user presenting a JWT (HS256 with `AUTHZ_JWT_SECRET`, or RS256, ES256 or EdDSA with
//! the identity provider's keys, [`crate::jwks`]), or an administrator presenting
//! `AUTHZ_ADMIN_TOKEN`. Tokens are compared in constant time; the core's policy decides how a
//! JWT is verified and calls ring for public-key signatures.

use authz_core::UserId;
use authz_core::jwt::{self, JwtError, Keys};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use subtle::ConstantTimeEq;

use crate::clock::now;
use crate::config::Config;
use crate::error::AppError;
use crate::jwks::RingVerifier;

/// An authenticated caller of `/v1/*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// A trusted service: the principal comes from the body's `user_id`.
    Service,
    /// An end user: the principal is the token's `sub`.
    EndUser(UserId),
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Result<&str, AppError> {
    let value = headers
        .get(AUTHORIZATION)
        .ok_or(AppError::Unauthenticated("missing bearer token"))?;
    let value = value
        .to_str()
        .map_err(|_| AppError::Unauthenticated("malformed authorization header"))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or(AppError::Unauthenticated("expected a bearer token"))?
        .trim();
    if token.is_empty() {
        return Err(AppError::Unauthenticated("empty bearer token"));
    }
    Ok(token)
}

fn same_secret(presented: &str, expected: &str) -> bool {
    presented.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// Authenticates a caller of `/v1/*` with the key set as it is (no fetch): for the admin
/// checks, which only tell a valid credential from an invalid one.
pub fn authenticate(headers: &HeaderMap, config: &Config) -> Result<Caller, AppError> {
    let token = bearer(headers)?;
    if is_service(token, config) {
        return Ok(Caller::Service);
    }
    verify_end_user(token, config)
        .map(|claims| Caller::EndUser(claims.sub))
        .map_err(|error| AppError::Unauthenticated(error.message()))
}

/// A verified end-user token and its claims.
pub type Session<'h> = (&'h str, jwt::Claims);

/// Authenticates a caller of `/v1/*`, with the verified claims of an end-user token and the
/// token itself (for the session tier). A token naming a `kid` the fetched key set does not
/// hold makes the set be fetched again (rate-limited) and the token checked once more.
pub async fn authenticate_with_claims<'h>(
    headers: &'h HeaderMap,
    config: &Config,
) -> Result<(Caller, Option<Session<'h>>), AppError> {
    let token = bearer(headers)?;
    if is_service(token, config) {
        return Ok((Caller::Service, None));
    }
    // A valid credential that may not call `/v1/*` is API.md's 403, as the service token is
    // on the admin endpoints; read as a JWT it would be a 401 for a malformed token.
    if is_admin(token, config) {
        return Err(AppError::Forbidden(
            "the admin token may not ask for decisions: use the service token or an end-user token",
        ));
    }
    let mut verified = verify_end_user(token, config);
    if verified == Err(JwtError::UnknownKey)
        && let Some(store) = &config.jwks
        && store.refresh_for_unknown_kid().await
    {
        verified = verify_end_user(token, config);
    }
    match verified {
        Ok(claims) => Ok((Caller::EndUser(claims.sub), Some((token, claims)))),
        Err(error) => {
            metrics::counter!("authz_jwt_rejected_total", "reason" => error.code()).increment(1);
            Err(AppError::Unauthenticated(error.message()))
        }
    }
}

fn is_service(token: &str, config: &Config) -> bool {
    config
        .service_token
        .as_deref()
        .is_some_and(|service_token| same_secret(token, service_token))
}

fn is_admin(token: &str, config: &Config) -> bool {
    config
        .admin_token
        .as_deref()
        .is_some_and(|admin_token| same_secret(token, admin_token))
}

/// The core's check of an end-user token with the configured keys; with none configured,
/// every token is refused as of an algorithm without a key.
fn verify_end_user(token: &str, config: &Config) -> Result<jwt::Claims, JwtError> {
    let set = config.jwks.as_ref().map(|store| store.current());
    let keys = Keys {
        secret: config.jwt_key.as_ref(),
        set: set.as_deref(),
    };
    jwt::verify_with(token, keys, &config.jwt, now().as_seconds(), &RingVerifier)
}

/// Checks the admin token of `/admin/*` and `/api/v1/system/*`: 401 without a valid bearer
/// token, 403 for a valid non-admin credential (the service token or an end-user JWT).
pub fn authorize_admin(headers: &HeaderMap, config: &Config) -> Result<(), AppError> {
    let Some(admin_token) = &config.admin_token else {
        return Err(AppError::Forbidden(
            "admin endpoints are disabled: AUTHZ_ADMIN_TOKEN is not set",
        ));
    };
    let token = bearer(headers)?;
    if same_secret(token, admin_token) {
        return Ok(());
    }
    match authenticate(headers, config) {
        Ok(_) => Err(AppError::Forbidden(
            "these credentials may not call admin endpoints",
        )),
        Err(_) => Err(AppError::Unauthenticated("invalid bearer token")),
    }
}
