//! The key-set policy: parsing JWKS documents, choosing a token's key, refusing algorithm
//! confusion. The crypto is a recording stand-in here (the real verifiers, WebCrypto at the
//! edge and ring at the origin, are tested against real signatures in their own crates).

use alloc::format;
use alloc::string::ToString;
use alloc::vec;
use core::cell::Cell;

use super::*;

const NOW: i64 = 1_700_000_000;
const SUB: &str = "6f1d2c3b-4a59-4e68-8d7c-0b1a2f3e4d5c";
const SECRET: &[u8] = b"test-secret-of-at-least-thirty-two-bytes";

/// RFC 7515 A.2's RSA modulus.
const RSA_N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
/// RFC 7515 A.3's P-256 point.
const EC_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
const EC_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
/// RFC 8037 A.1's Ed25519 key.
const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

fn rsa(kid: &str) -> String {
    format!(r#"{{"kty":"RSA","kid":"{kid}","n":"{RSA_N}","e":"AQAB"}}"#)
}
fn ec(kid: &str) -> String {
    format!(r#"{{"kty":"EC","crv":"P-256","kid":"{kid}","x":"{EC_X}","y":"{EC_Y}"}}"#)
}
fn ed(kid: &str) -> String {
    format!(r#"{{"kty":"OKP","crv":"Ed25519","kid":"{kid}","x":"{ED_X}"}}"#)
}
fn set(keys: &[String]) -> KeySet {
    KeySet::parse(format!(r#"{{"keys":[{}]}}"#, keys.join(",")).as_bytes()).unwrap()
}
fn parse(keys: &[&str]) -> Result<KeySet, JwksError> {
    KeySet::parse(format!(r#"{{"keys":[{}]}}"#, keys.join(",")).as_bytes())
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with the given header, the default claims and a signature of `sig_len` bytes of 7.
fn token(header: &str, sig_len: usize) -> String {
    let claims = format!(r#"{{"sub":"{SUB}","exp":{}}}"#, NOW + 600);
    format!(
        "{}.{}.{}",
        b64(header.as_bytes()),
        b64(claims.as_bytes()),
        b64(&vec![7u8; sig_len])
    )
}

/// Accepts exactly the signatures of bytes 7 and records what it was asked.
struct Recorder {
    calls: Cell<usize>,
    last: Cell<Option<Algorithm>>,
}

impl Recorder {
    fn new() -> Self {
        Self {
            calls: Cell::new(0),
            last: Cell::new(None),
        }
    }
}

impl SignatureVerifier for Recorder {
    fn verify(&self, check: &SignatureCheck<'_>) -> bool {
        self.calls.set(self.calls.get() + 1);
        self.last.set(Some(check.key.alg));
        check.signature.iter().all(|byte| *byte == 7)
            && check.signing_input.iter().filter(|b| **b == b'.').count() == 1
    }
}

#[test]
fn a_jwks_document_gives_each_key_its_algorithm() {
    let keys = set(&[rsa("r"), ec("e"), ed("d")]);
    let algs: Vec<_> = keys
        .keys()
        .iter()
        .map(|key| (key.kid.clone().unwrap(), key.alg))
        .collect();
    assert_eq!(
        algs,
        vec![
            ("r".to_string(), Algorithm::Rs256),
            ("e".to_string(), Algorithm::Es256),
            ("d".to_string(), Algorithm::EdDsa),
        ]
    );
    assert_eq!(keys.keys()[0].signature_len(), 256);
    let point = keys.keys()[1].key.p256_uncompressed().unwrap();
    assert_eq!(point[0], 4);
    assert_eq!(
        keys.keys()[2].public_jwk,
        format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{ED_X}"}}"#)
    );
    // A matching `alg` member is accepted; the minimal public JWK drops `kid`, `alg`, `use`.
    let with_alg = format!(
        r#"{{"kty":"EC","crv":"P-256","alg":"ES256","use":"sig","kid":"a","x":"{EC_X}","y":"{EC_Y}"}}"#
    );
    assert_eq!(parse(&[&with_alg]).unwrap().keys()[0].alg, Algorithm::Es256);
}

#[test]
fn jwks_refusals() {
    use JwksError::*;
    let private = format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{ED_X}","d":"{ED_X}"}}"#);
    let short_x = r#"{"kty":"OKP","crv":"Ed25519","x":"AAAA"}"#;
    let small_rsa = r#"{"kty":"RSA","n":"AQAB","e":"AQAB"}"#;
    let even_e = format!(r#"{{"kty":"RSA","n":"{RSA_N}","e":"AQAA"}}"#);
    let e_one = format!(r#"{{"kty":"RSA","n":"{RSA_N}","e":"AQ"}}"#);
    let enc_only = format!(r#"{{"kty":"RSA","use":"enc","n":"{RSA_N}","e":"AQAB"}}"#);
    let rs384 = format!(r#"{{"kty":"RSA","alg":"RS384","n":"{RSA_N}","e":"AQAB"}}"#);
    let hmac = r#"{"kty":"oct","k":"c2VjcmV0"}"#;
    for (json, expected) in [
        ("[]", NotAKeySet),
        (r#"{"keys":{}}"#, NotAKeySet),
        ("not json", NotAKeySet),
        (r#"{"keys":[]}"#, NoUsableKey),
    ] {
        assert_eq!(KeySet::parse(json.as_bytes()), Err(expected), "{json}");
    }
    assert_eq!(parse(&[&private]), Err(PrivateKey));
    assert_eq!(
        parse(&[hmac]),
        Err(PrivateKey),
        "a symmetric key is a secret"
    );
    assert_eq!(parse(&[short_x]), Err(BadKey));
    assert_eq!(parse(&[small_rsa]), Err(BadKey));
    assert_eq!(parse(&[&even_e]), Err(BadKey));
    assert_eq!(parse(&[&e_one]), Err(BadKey));
    assert_eq!(parse(&[&ec("a"), &ed("a")]), Err(DuplicateKid));
    assert_eq!(parse(&[&enc_only, &rs384]), Err(NoUsableKey));
    // Unusable keys are skipped; their kids are remembered.
    let mixed = parse(&[
        &enc_only.replace(r#""use""#, r#""kid":"enc","use""#),
        &ed("d"),
    ])
    .unwrap();
    assert_eq!(mixed.keys().len(), 1);
    assert_eq!(
        mixed.select(Some("enc")),
        Err(JwtError::UnsupportedAlgorithm)
    );
    assert_eq!(mixed.select(Some("other")), Err(JwtError::UnknownKey));
}

/// A name, a token, the keys, what `verify_with` gives, how often the crypto is asked.
type Case<'k> = (&'static str, String, Keys<'k>, Result<(), JwtError>, usize);

#[test]
fn the_key_decides_the_algorithm() {
    use JwtError::*;
    let secret = JwtKey::new(SECRET).unwrap();
    let keys = set(&[rsa("r"), ec("e"), ed("d")]);
    let both = Keys {
        secret: Some(&secret),
        set: Some(&keys),
    };
    let only_secret = Keys {
        secret: Some(&secret),
        set: None,
    };
    let only_set = Keys {
        secret: None,
        set: Some(&keys),
    };
    let hs256 = sign_hs256(
        &format!(r#"{{"sub":"{SUB}","exp":{}}}"#, NOW + 600),
        &secret,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "RS256 by its kid",
            token(r#"{"alg":"RS256","kid":"r"}"#, 256),
            both,
            Ok(()),
            1,
        ),
        (
            "ES256 by its kid",
            token(r#"{"alg":"ES256","kid":"e"}"#, 64),
            both,
            Ok(()),
            1,
        ),
        (
            "EdDSA by its kid",
            token(r#"{"alg":"EdDSA","kid":"d"}"#, 64),
            both,
            Ok(()),
            1,
        ),
        ("HS256 with the secret", hs256.clone(), both, Ok(()), 0),
        (
            "HS256 without a secret",
            hs256,
            only_set,
            Err(UnsupportedAlgorithm),
            0,
        ),
        (
            "RS256 without a key set (against the HS256 secret)",
            token(r#"{"alg":"RS256","kid":"r"}"#, 256),
            only_secret,
            Err(UnsupportedAlgorithm),
            0,
        ),
        (
            "HS256 naming an RSA key is checked with the secret only",
            token(r#"{"alg":"HS256","kid":"r"}"#, 32),
            both,
            Err(BadSignature),
            0,
        ),
        (
            "unknown kid",
            token(r#"{"alg":"ES256","kid":"gone"}"#, 64),
            both,
            Err(UnknownKey),
            0,
        ),
        (
            "no kid, several keys",
            token(r#"{"alg":"ES256"}"#, 64),
            both,
            Err(UnknownKey),
            0,
        ),
        (
            "alg not the key's: ES256 on the RSA key",
            token(r#"{"alg":"ES256","kid":"r"}"#, 64),
            both,
            Err(AlgorithmMismatch),
            0,
        ),
        (
            "alg not the key's: RS256 on the EC key",
            token(r#"{"alg":"RS256","kid":"e"}"#, 256),
            both,
            Err(AlgorithmMismatch),
            0,
        ),
        (
            "none",
            token(r#"{"alg":"none","kid":"r"}"#, 0),
            both,
            Err(UnsupportedAlgorithm),
            0,
        ),
        (
            "RS512",
            token(r#"{"alg":"RS512","kid":"r"}"#, 256),
            both,
            Err(UnsupportedAlgorithm),
            0,
        ),
        (
            "lower-case es256",
            token(r#"{"alg":"es256","kid":"e"}"#, 64),
            both,
            Err(UnsupportedAlgorithm),
            0,
        ),
        (
            "kid not a string",
            token(r#"{"alg":"ES256","kid":1}"#, 64),
            both,
            Err(Malformed),
            0,
        ),
        (
            "kid twice",
            token(r#"{"alg":"ES256","kid":"e","kid":"d"}"#, 64),
            both,
            Err(Malformed),
            0,
        ),
        (
            "signature of the wrong length",
            token(r#"{"alg":"ES256","kid":"e"}"#, 65),
            both,
            Err(BadSignature),
            0,
        ),
        (
            "signature the crypto refuses",
            token(r#"{"alg":"ES256","kid":"e"}"#, 64).replace("BwcH", "BwcI"),
            both,
            Err(BadSignature),
            1,
        ),
    ];
    for (name, token, keys, expected, calls) in cases {
        let recorder = Recorder::new();
        let got = verify_with(&token, keys, &JwtConfig::default(), NOW, &recorder).map(|claims| {
            assert_eq!(claims.sub.to_string(), SUB);
        });
        assert_eq!(got, expected, "{name}");
        assert_eq!(recorder.calls.get(), calls, "{name}: verifier calls");
    }
    // Without a kid, a one-key set's key is used, with its own algorithm.
    let one = set(&[ed("d")]);
    let keys = Keys {
        secret: None,
        set: Some(&one),
    };
    let recorder = Recorder::new();
    assert!(
        verify_with(
            &token(r#"{"alg":"EdDSA"}"#, 64),
            keys,
            &JwtConfig::default(),
            NOW,
            &recorder
        )
        .is_ok()
    );
    assert_eq!(recorder.last.get(), Some(Algorithm::EdDsa));
    assert_eq!(
        verify_with(
            &token(r#"{"alg":"ES256"}"#, 64),
            keys,
            &JwtConfig::default(),
            NOW,
            &recorder
        ),
        Err(AlgorithmMismatch)
    );
}

#[test]
fn claims_are_checked_after_a_public_key_signature() {
    let keys = set(&[ec("e")]);
    let keys = Keys {
        secret: None,
        set: Some(&keys),
    };
    let config = JwtConfig {
        audience: Some("authz".into()),
        ..JwtConfig::default()
    };
    let es256 = token(r#"{"alg":"ES256","kid":"e"}"#, 64);
    let pending = prepare(&es256, keys, &config).unwrap();
    let check = pending.signature_check().unwrap();
    assert_eq!(check.key.alg, Algorithm::Es256);
    assert_eq!(check.signature.len(), 64);
    // An invalid signature wins over the claims; a valid one reaches them.
    let pending2 = prepare(&es256, keys, &config).unwrap();
    assert_eq!(
        pending2.finish(false, &config, NOW),
        Err(JwtError::BadSignature)
    );
    assert_eq!(
        pending.finish(true, &config, NOW),
        Err(JwtError::WrongAudience)
    );
}
