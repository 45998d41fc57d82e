//! One end-user token verification at the origin, by algorithm: HS256 (the core's HMAC) and
//! RS256, ES256 and EdDSA (the core's policy with ring's signatures, `RingVerifier`), each the
//! whole `jwt::verify_with` of a token with `sub`, `iss`, `aud`, `iat` and `exp`. Tokens are
//! minted once, by jsonwebtoken over RustCrypto, with the RFC 7515 / RFC 8037 example keys.
//! Results: BENCHMARKS.md, "End-user token verification".

use std::hint::black_box;

use authz_core::jwt::{self, JwtConfig, JwtKey, KeySet, Keys};
use authz_origin::jwks::RingVerifier;
use criterion::Criterion;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const NOW: i64 = 1_780_000_000;
const SECRET: &[u8] = b"bench-secret-of-at-least-thirty-two-bytes";

fn claims() -> Value {
    json!({"sub": "a0000000-0000-4000-8000-000000000001", "iss": "https://idp.test",
        "aud": "authenticated", "iat": NOW, "exp": NOW + 3600})
}

fn public_set() -> KeySet {
    KeySet::parse(include_bytes!("../../testdata/jose/rfc-jwks.json")).expect("set")
}

fn mint(alg: Algorithm, kid: &str, key: EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &claims(), &key).expect("token")
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let secret = JwtKey::new(SECRET).expect("secret");
    let set = public_set();
    let keys = Keys {
        secret: Some(&secret),
        set: Some(&set),
    };
    let config = JwtConfig {
        audience: Some("authenticated".into()),
        issuer: Some("https://idp.test".into()),
        ..JwtConfig::default()
    };
    let tokens = [
        ("HS256", jwt::sign_hs256(&claims().to_string(), &secret)),
        (
            "RS256",
            mint(
                Algorithm::RS256,
                "rs256",
                EncodingKey::from_rsa_pem(include_bytes!("../../testdata/jose/rs256.pkcs8.pem"))
                    .expect("rsa"),
            ),
        ),
        (
            "ES256",
            mint(
                Algorithm::ES256,
                "es256",
                EncodingKey::from_ec_pem(include_bytes!("../../testdata/jose/es256.pkcs8.pem"))
                    .expect("ec"),
            ),
        ),
        (
            "EdDSA",
            mint(
                Algorithm::EdDSA,
                "eddsa",
                EncodingKey::from_ed_pem(include_bytes!("../../testdata/jose/eddsa.pkcs8.pem"))
                    .expect("ed"),
            ),
        ),
    ];
    let mut group = criterion.benchmark_group("jwt_verify");
    for (name, token) in &tokens {
        assert!(
            jwt::verify_with(token, keys, &config, NOW, &RingVerifier).is_ok(),
            "{name} verifies"
        );
        group.bench_function(*name, |bench| {
            bench.iter(|| {
                jwt::verify_with(black_box(token), keys, &config, NOW, &RingVerifier)
                    .expect("verifies")
            });
        });
    }
    group.finish();
    criterion.final_summary();
}
