//! Verifying end-user JWTs: compact JWS, HS256 with a shared secret or RS256, ES256 and EdDSA
//! with an identity provider's keys ([`KeySet`]).
//!
//! This module owns the whole policy of API.md's end-user token: the size limit, the three
//! base64url segments, the header (`alg` must be one of the four; `none` and anything else are
//! refused before a key is looked at), the key (HS256 only ever with the secret; the others
//! with the set's key the `kid` names, whose own algorithm must be the token's), the signature,
//! and then the claims `exp` (required), `nbf`, `iat`, `aud`, `iss`, the lifetime and `sub` (a
//! user id of the UUID standard). It checks HS256 MACs itself (constant-time HMAC-SHA256) and
//! hands public-key signatures to a [`SignatureVerifier`] each side provides, so that the
//! edge's wasm bundle holds no public-key crypto; [`prepare`] and [`Pending::finish`] split
//! the check around an asynchronous verifier. It also signs HS256 tokens with [`sign_hs256`],
//! for the dev `token` command and for tests.
//!
//! It must not read a clock or do I/O: the caller passes `now` in, as whole seconds since the
//! Unix epoch, and the keys in. Every [`JwtError`] maps to HTTP 401 `unauthenticated` at the
//! boundary; its [`code`](JwtError::code) is only a metrics label.
//!
//! Choices that a reader might look for:
//!
//! - `typ`, when present, must be the string `JWT` in any case; anything else (such as
//!   `at+jwt`, a token meant for another verifier) is [`JwtError::Malformed`].
//! - A `crit` header is refused ([`JwtError::Malformed`]): this verifier understands no
//!   extension, and RFC 7515 requires refusing tokens whose critical extensions are unknown.
//! - A header or claims object that names `alg`, `typ`, `crit`, `kid`, `sub`, `exp`, `nbf`,
//!   `iat`, `aud` or `iss` twice is refused, so two parsers can never read two different values.
//! - Numeric dates must be JSON integers that fit an `i64`; `1.7e9`, `"1700000000"` and `null`
//!   are [`JwtError::InvalidClaims`]. `iat` is type-checked but not compared with `now`.
//! - `aud` is only checked when [`JwtConfig::audience`] is set; otherwise it is ignored;
//!   likewise `iss` ([`JwtConfig::issuer`]) and the lifetime
//!   ([`JwtConfig::max_lifetime_seconds`]).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use sha2::Sha256;

use crate::id::UserId;

type HmacSha256 = Hmac<Sha256>;

/// `{"alg":"HS256","typ":"JWT"}` in unpadded base64url, the header of every token we sign.
const SIGNED_HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// The HS256 secret, keyed once so that each verification only clones a ready HMAC state.
///
/// Its `Debug` output never shows the secret.
#[derive(Clone)]
pub struct JwtKey {
    mac: HmacSha256,
}

impl JwtKey {
    /// Keys HMAC-SHA256 with `secret`. Returns `None` for an empty secret.
    ///
    /// RFC 7518 asks for at least 32 bytes of secret for HS256; checking that is the job of
    /// the caller's configuration, which can name the variable at fault.
    pub fn new(secret: &[u8]) -> Option<Self> {
        if secret.is_empty() {
            return None;
        }
        HmacSha256::new_from_slice(secret)
            .ok()
            .map(|mac| Self { mac })
    }

    /// The MAC of `header.payload`, fed segment by segment so the token is never copied.
    fn mac_of(&self, header_b64: &str, payload_b64: &str) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(header_b64.as_bytes());
        mac.update(b".");
        mac.update(payload_b64.as_bytes());
        mac
    }
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKey").finish_non_exhaustive()
    }
}

/// The claims of a verified token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims {
    /// The principal: `sub`, parsed with the UUID standard.
    pub sub: UserId,
    /// Expiry, in seconds since the Unix epoch.
    pub exp: i64,
    /// Not-before, in seconds since the Unix epoch, when present.
    pub nbf: Option<i64>,
    /// Issued-at, in seconds since the Unix epoch, when present.
    pub iat: Option<i64>,
}

/// Why a token was refused. Every variant maps to HTTP 401 `unauthenticated` at the
/// boundary; clients are not told which check failed beyond the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwtError {
    /// Longer than [`JwtConfig::max_token_bytes`].
    TooLarge,
    /// Not three `.`-separated segments, or a header that is not a JSON object of the
    /// accepted shape (`typ` other than `JWT`, a `crit` header, a repeated field).
    Malformed,
    /// A segment that is not unpadded, canonical base64url.
    BadBase64,
    /// `alg` is missing or not HS256, RS256, ES256 or EdDSA; or names an algorithm with no
    /// key configured (an HS256 token without a secret, a public-key token without a key set);
    /// or the token's `kid` is a key of the set that this verifier cannot use.
    UnsupportedAlgorithm,
    /// The token's `kid` is not in the key set, or it has no `kid` and the set has several
    /// keys.
    UnknownKey,
    /// The token's `alg` is not the algorithm of the key it names.
    AlgorithmMismatch,
    /// The signature does not match (or has the wrong length for the key).
    BadSignature,
    /// The claims are not a JSON object, repeat a field, or hold a numeric date that is not
    /// an integer.
    InvalidClaims,
    /// No `exp` claim.
    MissingExp,
    /// `now >= exp + leeway`.
    Expired,
    /// `now + leeway < nbf`.
    NotYetValid,
    /// An audience is configured and `aud` neither equals nor contains it.
    WrongAudience,
    /// An issuer is configured and `iss` is not it.
    WrongIssuer,
    /// A maximum lifetime is configured and the token's is longer or unknown.
    LifetimeTooLong,
    /// `sub` is missing, not a string, or not a valid user id.
    InvalidSubject,
}

impl JwtError {
    /// A short static snake_case code, used as the metrics label.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::BadBase64 => "bad_base64",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::UnknownKey => "unknown_kid",
            Self::AlgorithmMismatch => "alg_mismatch",
            Self::BadSignature => "bad_signature",
            Self::InvalidClaims => "invalid_claims",
            Self::MissingExp => "missing_exp",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongAudience => "wrong_audience",
            Self::WrongIssuer => "wrong_issuer",
            Self::LifetimeTooLong => "lifetime_too_long",
            Self::InvalidSubject => "invalid_subject",
        }
    }
}

impl JwtError {
    /// The client-facing message of the 401, the one table both services answer with. It says
    /// which check failed, never echoing the token.
    pub const fn message(&self) -> &'static str {
        match self {
            Self::Expired => "token expired",
            Self::NotYetValid => "token not yet valid",
            Self::BadSignature => "invalid token signature",
            Self::UnsupportedAlgorithm => "unsupported token algorithm",
            Self::UnknownKey => "token kid is not a known signing key",
            Self::AlgorithmMismatch => "token alg does not match its key",
            Self::MissingExp => "token has no exp claim",
            Self::InvalidSubject => "token sub is not a valid user uuid",
            Self::WrongAudience => "token audience mismatch",
            Self::WrongIssuer => "token issuer mismatch",
            Self::LifetimeTooLong => "token lifetime over the maximum",
            Self::TooLarge => "token too large",
            Self::Malformed | Self::BadBase64 | Self::InvalidClaims => "malformed token",
        }
    }
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for JwtError {}

/// A field that was present, possibly `null`, as opposed to absent (the `Default`).
///
/// serde reads `null` into `Option<Value>` as `None`; this keeps `"exp": null` apart from a
/// missing `exp`.
#[derive(Default)]
struct Present(Option<Value>);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(|value| Self(Some(value)))
    }
}

/// The header fields we look at. serde refuses a repeated field; unknown ones are ignored.
#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    alg: Present,
    #[serde(default)]
    typ: Present,
    #[serde(default)]
    crit: Present,
    #[serde(default)]
    kid: Present,
}

/// The keys end-user tokens may be signed with: the HS256 secret, an identity provider's
/// key set, both or neither.
#[derive(Debug, Clone, Copy, Default)]
pub struct Keys<'a> {
    /// `AUTHZ_JWT_SECRET`: the only key of HS256 tokens.
    pub secret: Option<&'a JwtKey>,
    /// `AUTHZ_JWKS` (or the set fetched from `AUTHZ_JWKS_URL`): the keys of RS256, ES256 and
    /// EdDSA tokens.
    pub set: Option<&'a KeySet>,
}

/// A public-key signature for the caller's crypto to check: `signature` over `signing_input`
/// with `key`, by `key.alg`.
#[derive(Debug, Clone, Copy)]
pub struct SignatureCheck<'a> {
    /// The key the token names, with its algorithm.
    pub key: &'a Jwk,
    /// `header.payload`, the bytes that were signed.
    pub signing_input: &'a [u8],
    /// The decoded signature, of the length the key's algorithm gives.
    pub signature: &'a [u8],
}

/// The crypto of one side: WebCrypto at the edge, a crate at the origin.
pub trait SignatureVerifier {
    /// Whether the signature is valid. Any failure of the crypto itself is `false`.
    fn verify(&self, check: &SignatureCheck<'_>) -> bool;
}

/// A token whose size, shape, header and key are accepted, and whose HS256 MAC (if that is
/// its algorithm) is valid: what is left is the public-key signature, if any, and the claims.
#[derive(Debug)]
pub struct Pending<'t, 'k> {
    key: Option<&'k Jwk>,
    signing_input: &'t str,
    signature: Vec<u8>,
    payload: Vec<u8>,
}

impl Pending<'_, '_> {
    /// The public-key signature the caller must check, `None` for an HS256 token (the core
    /// has checked its MAC).
    pub fn signature_check(&self) -> Option<SignatureCheck<'_>> {
        self.key.map(|key| SignatureCheck {
            key,
            signing_input: self.signing_input.as_bytes(),
            signature: &self.signature,
        })
    }

    /// The claims, once the caller has checked [`Pending::signature_check`]
    /// (`signature_valid` is ignored for HS256 tokens).
    pub fn finish(
        self,
        signature_valid: bool,
        config: &JwtConfig,
        now_unix_seconds: i64,
    ) -> Result<Claims, JwtError> {
        if self.key.is_some() && !signature_valid {
            return Err(JwtError::BadSignature);
        }
        claims::check_claims(&self.payload, config, now_unix_seconds)
    }
}

/// The checks before a public-key signature, for a caller whose crypto is asynchronous (the
/// edge's WebCrypto): size, segments, base64url, header (`alg` first), the key (`kid`, then
/// the key's algorithm against the token's), the signature's length, and an HS256 MAC.
pub fn prepare<'t, 'k>(
    token: &'t str,
    keys: Keys<'k>,
    config: &JwtConfig,
) -> Result<Pending<'t, 'k>, JwtError> {
    if token.len() > config.max_token_bytes {
        return Err(JwtError::TooLarge);
    }
    let mut segments = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(JwtError::Malformed);
    };
    let header = decode(header_b64)?;
    let payload = decode(payload_b64)?;
    let signature = decode(signature_b64)?;
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];

    let (alg, kid) = check_header(&header)?;
    let key = match alg {
        Algorithm::Hs256 => {
            let secret = keys.secret.ok_or(JwtError::UnsupportedAlgorithm)?;
            secret
                .mac_of(header_b64, payload_b64)
                .verify_slice(&signature)
                .map_err(|_| JwtError::BadSignature)?;
            None
        }
        _ => {
            let set = keys.set.ok_or(JwtError::UnsupportedAlgorithm)?;
            let key = set.select(kid.as_deref())?;
            if key.alg != alg {
                return Err(JwtError::AlgorithmMismatch);
            }
            if signature.len() != key.signature_len() {
                return Err(JwtError::BadSignature);
            }
            Some(key)
        }
    };
    Ok(Pending {
        key,
        signing_input,
        signature,
        payload,
    })
}

/// Verifies `token` with `keys` at `now_unix_seconds`, public-key signatures by `verifier`,
/// and returns its claims.
///
/// The checks run in this order, and the first failure is returned: [`prepare`]'s, the
/// signature, then the claims (`exp`, `nbf`, `aud`, `iss`, the lifetime, `sub`). Nothing in the
/// payload is interpreted before the signature is known to be valid.
pub fn verify_with(
    token: &str,
    keys: Keys<'_>,
    config: &JwtConfig,
    now_unix_seconds: i64,
    verifier: &impl SignatureVerifier,
) -> Result<Claims, JwtError> {
    let pending = prepare(token, keys, config)?;
    let valid = pending
        .signature_check()
        .is_some_and(|check| verifier.verify(&check));
    pending.finish(valid, config, now_unix_seconds)
}

/// Verifies an HS256 `token` with `key` at `now_unix_seconds` and returns its claims: a
/// token of any other algorithm is [`JwtError::UnsupportedAlgorithm`].
pub fn verify(
    token: &str,
    key: &JwtKey,
    config: &JwtConfig,
    now_unix_seconds: i64,
) -> Result<Claims, JwtError> {
    let pending = prepare(
        token,
        Keys {
            secret: Some(key),
            set: None,
        },
        config,
    )?;
    pending.finish(false, config, now_unix_seconds)
}

/// Signs `claims_json` as given (it is not parsed) under the header
/// `{"alg":"HS256","typ":"JWT"}` and returns the compact token.
pub fn sign_hs256(claims_json: &str, key: &JwtKey) -> String {
    let payload_b64 = URL_SAFE_NO_PAD.encode(claims_json.as_bytes());
    let tag = key.mac_of(SIGNED_HEADER_B64, &payload_b64).finalize();
    let signature_b64 = URL_SAFE_NO_PAD.encode(tag.into_bytes());
    let mut token = String::with_capacity(
        SIGNED_HEADER_B64.len() + payload_b64.len() + signature_b64.len() + 2,
    );
    token.push_str(SIGNED_HEADER_B64);
    token.push('.');
    token.push_str(&payload_b64);
    token.push('.');
    token.push_str(&signature_b64);
    token
}

/// Unpadded base64url; the engine also refuses non-zero trailing bits, so each byte string has
/// exactly one accepted encoding.
fn decode(segment: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| JwtError::BadBase64)
}

/// Whether `json` starts (after JSON whitespace) with `{`. serde would also read a struct
/// from a JSON array, which a JWT header or claims set must not be.
fn is_json_object(json: &[u8]) -> bool {
    json.iter()
        .find(|byte| !matches!(byte, b' ' | b'\t' | b'\n' | b'\r'))
        == Some(&b'{')
}

/// The token's algorithm and `kid`, or why its header is refused.
fn check_header(json: &[u8]) -> Result<(Algorithm, Option<String>), JwtError> {
    if !is_json_object(json) {
        return Err(JwtError::Malformed);
    }
    let header: Header = serde_json::from_slice(json).map_err(|_| JwtError::Malformed)?;
    let alg = match &header.alg.0 {
        Some(Value::String(alg)) => {
            Algorithm::from_name(alg).ok_or(JwtError::UnsupportedAlgorithm)?
        }
        _ => return Err(JwtError::UnsupportedAlgorithm),
    };
    match &header.typ.0 {
        None => {}
        Some(Value::String(typ)) if typ.eq_ignore_ascii_case("JWT") => {}
        Some(_) => return Err(JwtError::Malformed),
    }
    if header.crit.0.is_some() {
        return Err(JwtError::Malformed);
    }
    let kid = match header.kid.0 {
        None => None,
        Some(Value::String(kid)) => Some(kid),
        Some(_) => return Err(JwtError::Malformed),
    };
    Ok((alg, kid))
}

mod claims;
mod config;
mod keys;

pub use config::JwtConfig;
pub use keys::{Algorithm, Jwk, JwksError, KeySet, PublicKey};

#[cfg(test)]
mod key_tests;
#[cfg(test)]
mod tests;
