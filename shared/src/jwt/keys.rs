//! Identity providers' public keys: a JWKS document (RFC 7517) parsed into the keys this
//! verifier can use, each with the one algorithm its tokens must carry.
//!
//! A key's algorithm comes from the key, never from a token: its `alg` member when present,
//! else the only algorithm this verifier accepts for its type (`RSA` → RS256, `EC` on P-256 →
//! ES256, `OKP` on Ed25519 → EdDSA). Parsing checks what both sides' crypto would otherwise
//! check differently: an RSA modulus of 2048 to 8192 bits and an odd public exponent of at
//! least 3 and at most 33 bits; P-256 coordinates and Ed25519 keys of exactly 32 bytes.
//!
//! Choices that a reader might look for:
//!
//! - A key this verifier cannot use for signatures (`use` other than `sig`, `key_ops` without
//!   `verify`, another type, curve or `alg`, such as RS384 or an encryption key) is skipped,
//!   and its `kid` kept, so that its tokens are refused as [`JwtError::UnsupportedAlgorithm`]
//!   rather than sending the origin to fetch the set again. A set with no usable key is an
//!   error, as is a usable key whose members are malformed.
//! - A key with private members (`d`, `p`, `q`, ...) is refused: a verifier only ever needs
//!   the public half, and a set that carries a private key is a leaked secret.
//! - Two keys with one `kid` are refused: the choice between them would be arbitrary.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::JwtError;

/// The signature algorithms of end-user tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// HMAC-SHA256 with `AUTHZ_JWT_SECRET`; verified by the core itself.
    Hs256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// ECDSA on P-256 with SHA-256, the signature as 64 bytes `r || s`.
    Es256,
    /// Ed25519 (RFC 8037).
    EdDsa,
}

impl Algorithm {
    /// The `alg` header value.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }

    /// The algorithm of an `alg` header value, if it is one of ours. Case-sensitive, as RFC
    /// 7515 says; `none` is not an algorithm here.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Hs256, Self::Rs256, Self::Es256, Self::EdDsa]
            .into_iter()
            .find(|alg| alg.name() == name)
    }
}

/// The public material of a key, decoded from its JWK members.
#[derive(Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// An RSA key: the modulus `n` and the exponent `e`, big-endian without leading zeros.
    Rsa {
        /// The modulus.
        n: Vec<u8>,
        /// The public exponent.
        e: Vec<u8>,
    },
    /// A P-256 point, as its two 32-byte coordinates.
    P256 {
        /// The x coordinate.
        x: [u8; 32],
        /// The y coordinate.
        y: [u8; 32],
    },
    /// An Ed25519 public key.
    Ed25519 {
        /// The 32-byte key.
        x: [u8; 32],
    },
}

impl PublicKey {
    /// The P-256 point in SEC 1 uncompressed form (`0x04 || x || y`), for verifiers that take
    /// it so; `None` for other key types.
    pub fn p256_uncompressed(&self) -> Option<[u8; 65]> {
        let Self::P256 { x, y } = self else {
            return None;
        };
        let mut point = [0u8; 65];
        point[0] = 4;
        point[1..33].copy_from_slice(x);
        point[33..].copy_from_slice(y);
        Some(point)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rsa { n, .. } => write!(f, "Rsa({} bits)", n.len() * 8),
            Self::P256 { .. } => f.write_str("P256"),
            Self::Ed25519 { .. } => f.write_str("Ed25519"),
        }
    }
}

/// One usable public key of a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    /// Its `kid`, when it has one.
    pub kid: Option<String>,
    /// The one algorithm its tokens must carry.
    pub alg: Algorithm,
    /// The key itself.
    pub key: PublicKey,
    /// The minimal public JWK of the key (`kty`, `crv`, `n`, `e`, `x`, `y`), as JSON: what
    /// WebCrypto's `importKey("jwk", ...)` takes.
    pub public_jwk: String,
}

impl Jwk {
    /// The byte length a signature by this key must have.
    pub fn signature_len(&self) -> usize {
        match &self.key {
            PublicKey::Rsa { n, .. } => n.len(),
            PublicKey::P256 { .. } | PublicKey::Ed25519 { .. } => 64,
        }
    }
}

/// The usable keys of a JWKS document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeySet {
    keys: Vec<Jwk>,
    /// The `kid`s of keys that were skipped as unusable.
    unusable: Vec<String>,
}

/// Why a JWKS document was refused, for the configuration error that names its variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwksError {
    /// Not a JSON object with a `keys` array of objects.
    NotAKeySet,
    /// No key in the set is usable (RS256, ES256 or EdDSA, for signatures).
    NoUsableKey,
    /// A key carries private members.
    PrivateKey,
    /// Two keys share a `kid`.
    DuplicateKid,
    /// A usable key's members are missing, not base64url, or of the wrong size.
    BadKey,
}

impl JwksError {
    /// What is wrong, for the error message.
    pub const fn message(&self) -> &'static str {
        match self {
            Self::NotAKeySet => "expected a JWKS document: a JSON object with a \"keys\" array",
            Self::NoUsableKey => "no key of the set is an RS256, ES256 or EdDSA signing key",
            Self::PrivateKey => "a key of the set has private members; publish public keys only",
            Self::DuplicateKid => "two keys of the set share a kid",
            Self::BadKey => "a key of the set has missing or malformed members",
        }
    }
}

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for JwksError {}

/// The JWK members we look at; others are ignored.
#[derive(Deserialize)]
struct RawJwk {
    kty: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
    d: Option<serde::de::IgnoredAny>,
    p: Option<serde::de::IgnoredAny>,
    q: Option<serde::de::IgnoredAny>,
    k: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<RawJwk>,
}

impl KeySet {
    /// Parses a JWKS document.
    pub fn parse(json: &[u8]) -> Result<Self, JwksError> {
        let raw: RawSet = serde_json::from_slice(json).map_err(|_| JwksError::NotAKeySet)?;
        let mut set = Self::default();
        for raw in raw.keys {
            if raw.d.is_some() || raw.p.is_some() || raw.q.is_some() || raw.k.is_some() {
                return Err(JwksError::PrivateKey);
            }
            let kid = raw.kid.clone();
            if let Some(kid) = &kid
                && (set.keys.iter().any(|key| key.kid.as_ref() == Some(kid))
                    || set.unusable.contains(kid))
            {
                return Err(JwksError::DuplicateKid);
            }
            match usable(&raw)? {
                Some((alg, key)) => {
                    let public_jwk = public_jwk(&raw);
                    set.keys.push(Jwk {
                        kid,
                        alg,
                        key,
                        public_jwk,
                    });
                }
                None => set.unusable.extend(kid),
            }
        }
        if set.keys.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        Ok(set)
    }

    /// The usable keys.
    pub fn keys(&self) -> &[Jwk] {
        &self.keys
    }

    /// The key a token names with `kid`, or, without a `kid`, the set's only key.
    pub(super) fn select(&self, kid: Option<&str>) -> Result<&Jwk, JwtError> {
        match kid {
            Some(kid) => {
                if let Some(key) = self.keys.iter().find(|key| key.kid.as_deref() == Some(kid)) {
                    Ok(key)
                } else if self.unusable.iter().any(|unusable| unusable == kid) {
                    Err(JwtError::UnsupportedAlgorithm)
                } else {
                    Err(JwtError::UnknownKey)
                }
            }
            None => match self.keys.as_slice() {
                [only] => Ok(only),
                _ => Err(JwtError::UnknownKey),
            },
        }
    }
}

/// The key's algorithm and material, `None` when the verifier cannot use it for signatures,
/// an error when it should be usable but its members are malformed.
fn usable(raw: &RawJwk) -> Result<Option<(Algorithm, PublicKey)>, JwksError> {
    if raw.use_.as_deref().is_some_and(|use_| use_ != "sig") {
        return Ok(None);
    }
    if raw
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|op| op == "verify"))
    {
        return Ok(None);
    }
    let (alg, key) = match (raw.kty.as_deref(), raw.crv.as_deref()) {
        (Some("RSA"), _) => (Algorithm::Rs256, rsa(raw)?),
        (Some("EC"), Some("P-256")) => (
            Algorithm::Es256,
            PublicKey::P256 {
                x: fixed(raw.x.as_deref())?,
                y: fixed(raw.y.as_deref())?,
            },
        ),
        (Some("OKP"), Some("Ed25519")) => (
            Algorithm::EdDsa,
            PublicKey::Ed25519 {
                x: fixed(raw.x.as_deref())?,
            },
        ),
        _ => return Ok(None),
    };
    match raw.alg.as_deref() {
        None => Ok(Some((alg, key))),
        Some(named) if named == alg.name() => Ok(Some((alg, key))),
        Some(_) => Ok(None),
    }
}

fn bytes(member: Option<&str>) -> Result<Vec<u8>, JwksError> {
    URL_SAFE_NO_PAD
        .decode(member.ok_or(JwksError::BadKey)?)
        .map_err(|_| JwksError::BadKey)
}

fn fixed(member: Option<&str>) -> Result<[u8; 32], JwksError> {
    bytes(member)?.try_into().map_err(|_| JwksError::BadKey)
}

fn rsa(raw: &RawJwk) -> Result<PublicKey, JwksError> {
    let strip = |mut value: Vec<u8>| {
        let zeros = value.iter().take_while(|byte| **byte == 0).count();
        value.drain(..zeros);
        value
    };
    let n = strip(bytes(raw.n.as_deref())?);
    let e = strip(bytes(raw.e.as_deref())?);
    let modulus_ok = (256..=1024).contains(&n.len());
    let exponent_ok = matches!(e.as_slice(), [.., last] if last & 1 == 1)
        && (e.len() < 5 || (e.len() == 5 && e.first() == Some(&1)))
        && e.as_slice() != [1];
    if !modulus_ok || !exponent_ok {
        return Err(JwksError::BadKey);
    }
    Ok(PublicKey::Rsa { n, e })
}

/// The key's public members only, in a fixed order. Every value was decoded as base64url by
/// [`usable`] or is one of the `kty` and `crv` it accepted, so none needs escaping.
fn public_jwk(raw: &RawJwk) -> String {
    let members: &[(&str, &Option<String>)] = match raw.kty.as_deref() {
        Some("RSA") => &[("kty", &raw.kty), ("n", &raw.n), ("e", &raw.e)],
        Some("EC") => &[
            ("kty", &raw.kty),
            ("crv", &raw.crv),
            ("x", &raw.x),
            ("y", &raw.y),
        ],
        _ => &[("kty", &raw.kty), ("crv", &raw.crv), ("x", &raw.x)],
    };
    let mut json = String::from("{");
    for (name, value) in members {
        if let Some(value) = value {
            if json.len() > 1 {
                json.push(',');
            }
            json.push_str(&alloc::format!(r#""{name}":"{value}""#));
        }
    }
    json.push('}');
    json
}
