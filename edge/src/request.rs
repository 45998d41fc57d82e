//! Reading what a client sent: the bearer token into a principal (verified by the core), the
//! `GET /v1/authorize` query and the batch body into validated checks (the core's wire
//! parsers, `authz_core::wire::request`, which name the parameter at fault).
//!
//! Pure functions over strings and bytes, so they are unit-tested natively; the one asynchronous
//! step, a public-key signature, is handed to a [`Verifier`] (WebCrypto in the worker, a stand-in
//! in the tests). Every rule of what is valid (the UUID standard, the vocabularies, the JWT
//! checks, which key and algorithm a token may use, the wire formats) lives in `authz-core`.

use authz_core::Principal;
use authz_core::jwt::{self, JwtConfig, Keys, SignatureCheck};
use authz_core::wire::request::{self, PrincipalSource};

pub use authz_core::wire::Check;

use crate::error::EdgeError;

/// Checks a public-key signature the core hands over ([`jwt::Pending::signature_check`]).
pub trait Verifier {
    /// Whether the signature is valid; any failure of the crypto is `false`.
    fn verify(&self, check: SignatureCheck<'_>) -> impl Future<Output = bool>;
}

/// The principal of a request: anonymous without an `Authorization` header, else the `sub` of
/// a JWT that the core accepts with `keys` (an HS256 MAC it checks itself; an RS256, ES256 or
/// EdDSA signature checked by `verifier`). Any other credential is a 401.
pub async fn principal(
    authorization: Option<&str>,
    keys: Keys<'_>,
    policy: &JwtConfig,
    now_unix_seconds: i64,
    verifier: &impl Verifier,
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
    if keys.secret.is_none() && keys.set.is_none() {
        return Err(EdgeError::Unauthenticated(
            "end-user tokens are not accepted",
        ));
    }
    let pending = jwt::prepare(token, keys, policy).map_err(EdgeError::jwt)?;
    let signature_valid = match pending.signature_check() {
        Some(check) => verifier.verify(check).await,
        None => false,
    };
    pending
        .finish(signature_valid, policy, now_unix_seconds)
        .map(|claims| Principal::User(claims.sub))
        .map_err(EdgeError::jwt)
}

/// The query of a serialized URL (what `Request.url` returns): before its first `#` (the
/// fragment's start), after its first `?` (the serializer percent-encodes any `?` in the path
/// or the user info). `None` when it has no `?`, as `url::Url::query` would say, without
/// linking the `url` crate and its IDNA tables into the worker.
pub fn query_of(url: &str) -> Option<&str> {
    let unfragmented = url.split_once('#').map_or(url, |(before, _)| before);
    unfragmented.split_once('?').map(|(_, query)| query)
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
    use authz_core::jwt::{JwtKey, KeySet};
    use std::cell::Cell;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    #[test]
    fn the_query_is_what_follows_the_first_question_mark_up_to_a_fragment() {
        let cases = [
            ("https://edge.test/v1/authorize?a=1&b=2", Some("a=1&b=2")),
            ("https://edge.test/v1/authorize?a=1#frag?x", Some("a=1")),
            ("https://edge.test/v1/authorize?", Some("")),
            ("https://edge.test/v1/authorize", None),
            ("https://edge.test/v1/authorize#only?fragment", None),
            ("https://edge.test/v1/a%3Fb?x=%3F?", Some("x=%3F?")),
        ];
        for (url, query) in cases {
            assert_eq!(query_of(url), query, "{url}");
        }
    }

    const USER: &str = "a0000000-0000-4000-8000-000000000001";
    const SECRET: &[u8] = b"test-jwt-secret-0123456789abcdef0123456789";
    const NOW: i64 = 1_780_000_000;
    /// RFC 8037 A.1's Ed25519 public key.
    const JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"ed","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

    fn user() -> Principal {
        Principal::User(UserId::parse(USER, "sub").unwrap())
    }

    /// A stand-in for WebCrypto: answers `valid` and counts its calls.
    struct StandIn {
        valid: bool,
        calls: Cell<usize>,
    }

    impl StandIn {
        fn new(valid: bool) -> Self {
            Self {
                valid,
                calls: Cell::new(0),
            }
        }
    }

    impl Verifier for StandIn {
        async fn verify(&self, check: SignatureCheck<'_>) -> bool {
            self.calls.set(self.calls.get() + 1);
            assert_eq!(check.signature.len(), 64);
            self.valid
        }
    }

    /// Runs `principal` to completion: the stand-in never waits.
    fn check(
        authorization: Option<&str>,
        keys: Keys<'_>,
        now: i64,
        verifier: &StandIn,
    ) -> Result<Principal, EdgeError> {
        let policy = JwtConfig::default();
        let mut future = pin!(principal(authorization, keys, &policy, now, verifier));
        match future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(answer) => answer,
            Poll::Pending => panic!("principal waited on a verifier that never waits"),
        }
    }

    fn secret_only(key: &JwtKey) -> Keys<'_> {
        Keys {
            secret: Some(key),
            set: None,
        }
    }

    /// An EdDSA-shaped token (any 64 bytes of signature: the stand-in decides).
    fn eddsa_token(header: &str) -> String {
        use base64::Engine as _;
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let claims = format!(r#"{{"sub":"{USER}","exp":{}}}"#, NOW + 60);
        format!(
            "Bearer {}.{}.{}",
            b64(header.as_bytes()),
            b64(claims.as_bytes()),
            b64(&[7; 64])
        )
    }

    #[test]
    fn principal_table() {
        let key = JwtKey::new(SECRET).unwrap();
        let token = jwt::sign_hs256(&format!(r#"{{"sub":"{USER}","exp":{}}}"#, NOW + 60), &key);
        let bearer = format!("Bearer {token}");
        let verifier = StandIn::new(true);
        assert_eq!(
            check(None, secret_only(&key), NOW, &verifier),
            Ok(Principal::Anonymous)
        );
        assert_eq!(
            check(Some(&bearer), secret_only(&key), NOW, &verifier),
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
                    check(Some(&bad), secret_only(&key), NOW, &verifier),
                    Err(EdgeError::Unauthenticated(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            check(Some(&bearer), Keys::default(), NOW, &verifier),
            Err(EdgeError::Unauthenticated(
                "end-user tokens are not accepted"
            ))
        );
        assert_eq!(
            check(Some(&bearer), secret_only(&key), NOW + 3600, &verifier),
            Err(EdgeError::Unauthenticated("token expired"))
        );
        assert_eq!(verifier.calls.get(), 0, "HS256 is the core's own check");
    }

    #[test]
    fn public_key_tokens_go_to_the_verifier() {
        let set = KeySet::parse(JWKS.as_bytes()).unwrap();
        let key = JwtKey::new(SECRET).unwrap();
        let keys = Keys {
            secret: Some(&key),
            set: Some(&set),
        };
        let token = eddsa_token(r#"{"alg":"EdDSA","kid":"ed"}"#);

        let valid = StandIn::new(true);
        assert_eq!(check(Some(&token), keys, NOW, &valid), Ok(user()));
        assert_eq!(valid.calls.get(), 1);

        let invalid = StandIn::new(false);
        assert_eq!(
            check(Some(&token), keys, NOW, &invalid),
            Err(EdgeError::Unauthenticated("invalid token signature"))
        );
        assert_eq!(invalid.calls.get(), 1);

        // Refused by the core before any crypto runs.
        let never = StandIn::new(true);
        for (header, message) in [
            (
                r#"{"alg":"ES256","kid":"ed"}"#,
                "token alg does not match its key",
            ),
            (
                r#"{"alg":"EdDSA","kid":"other"}"#,
                "token kid is not a known signing key",
            ),
            (
                r#"{"alg":"none","kid":"ed"}"#,
                "unsupported token algorithm",
            ),
        ] {
            assert_eq!(
                check(Some(&eddsa_token(header)), keys, NOW, &never),
                Err(EdgeError::Unauthenticated(message)),
                "{header}"
            );
        }
        assert_eq!(
            check(Some(&token), secret_only(&key), NOW, &never),
            Err(EdgeError::Unauthenticated("unsupported token algorithm")),
            "a public-key token without a key set"
        );
        assert_eq!(never.calls.get(), 0);
    }
}
