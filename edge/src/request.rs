//! Reading what a client sent: the bearer token into a principal (verified by the core), the
//! `GET /v1/authorize` query and the batch body into validated checks (the core's wire
//! parsers, `authz_core::wire::request`, which name the parameter at fault).
//!
//! Pure functions over strings and bytes, so they are unit-tested natively. Every rule of what
//! is valid (the UUID standard, the vocabularies, the JWT checks, the wire formats) lives in
//! `authz-core`.

use authz_core::Principal;
use authz_core::jwt::{self, JwtConfig, JwtKey};
use authz_core::wire::request::{self, PrincipalSource};

pub use authz_core::wire::Check;

use crate::error::EdgeError;

/// The principal of a request: anonymous without an `Authorization` header, else the `sub` of
/// an HS256 JWT that the core verifies. Any other credential is a 401.
pub fn principal(
    authorization: Option<&str>,
    key: Option<&JwtKey>,
    policy: &JwtConfig,
    now_unix_seconds: i64,
) -> Result<Principal, EdgeError> {
    let Some(value) = authorization else {
        return Ok(Principal::Anonymous);
    };
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or(EdgeError::Unauthenticated("expected a bearer token"))?
        .trim();
    if token.is_empty() {
        return Err(EdgeError::Unauthenticated("empty bearer token"));
    }
    let key = key.ok_or(EdgeError::Unauthenticated(
        "end-user tokens are not accepted",
    ))?;
    jwt::verify(token, key, policy, now_unix_seconds)
        .map(|claims| Principal::User(claims.sub))
        .map_err(EdgeError::jwt)
}

/// Parses the query of `GET /v1/authorize` for `principal` (the core's parser).
pub fn parse_query(query: Option<&str>, principal: Principal) -> Result<Check, EdgeError> {
    Ok(request::parse_query(query, principal)?)
}

/// Parses a batch body `{"checks": [...]}` for `principal` (the core's parser). A check has
/// no `user_id`: the principal is the token's.
pub fn parse_batch(body: &[u8], principal: Principal) -> Result<Vec<Check>, EdgeError> {
    Ok(request::parse_batch(
        body,
        PrincipalSource::Fixed(principal),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use authz_core::UserId;

    const USER: &str = "a0000000-0000-4000-8000-000000000001";
    const SECRET: &[u8] = b"test-jwt-secret-0123456789abcdef0123456789";
    const NOW: i64 = 1_780_000_000;

    fn user() -> Principal {
        Principal::User(UserId::parse(USER, "sub").unwrap())
    }

    #[test]
    fn principal_table() {
        let key = JwtKey::new(SECRET).unwrap();
        let token = jwt::sign_hs256(&format!(r#"{{"sub":"{USER}","exp":{}}}"#, NOW + 60), &key);
        assert_eq!(
            principal(None, Some(&key), &JwtConfig::default(), NOW),
            Ok(Principal::Anonymous)
        );
        assert_eq!(
            principal(
                Some(&format!("Bearer {token}")),
                Some(&key),
                &JwtConfig::default(),
                NOW
            ),
            Ok(user())
        );
        for bad in [
            String::new(),
            "Bearer ".to_owned(),
            format!("Basic {token}"),
            token.clone(),
        ] {
            assert!(
                matches!(
                    principal(Some(&bad), Some(&key), &JwtConfig::default(), NOW),
                    Err(EdgeError::Unauthenticated(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            principal(
                Some(&format!("Bearer {token}")),
                None,
                &JwtConfig::default(),
                NOW
            ),
            Err(EdgeError::Unauthenticated(
                "end-user tokens are not accepted"
            ))
        );
        assert_eq!(
            principal(
                Some(&format!("Bearer {token}")),
                Some(&key),
                &JwtConfig::default(),
                NOW + 3600
            ),
            Err(EdgeError::Unauthenticated("token expired"))
        );
    }
}
