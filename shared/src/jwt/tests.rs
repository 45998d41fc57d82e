//! The JWT check's tables: every refusal, the audience, the config's limits, the claims, the
//! RFC 7515 example.

use alloc::format;
use alloc::string::ToString;

use super::*;

const NOW: i64 = 1_700_000_000;
const SUB: &str = "6f1d2c3b-4a59-4e68-8d7c-0b1a2f3e4d5c";
const SECRET: &[u8] = b"test-secret-of-at-least-thirty-two-bytes";

fn key() -> JwtKey {
    JwtKey::new(SECRET).unwrap()
}

fn b64(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text.as_bytes())
}

/// Claims with `sub = SUB` and `exp` an hour ahead, plus `extra` fields.
fn claims(extra: &str) -> String {
    let exp = NOW + 3600;
    if extra.is_empty() {
        format!(r#"{{"sub":"{SUB}","exp":{exp}}}"#)
    } else {
        format!(r#"{{"sub":"{SUB}","exp":{exp},{extra}}}"#)
    }
}

/// A token with a hand-built header, signed with `key` over whatever the header says.
fn with_header(header_json: &str, claims_json: &str, key: &JwtKey) -> String {
    let header = b64(header_json);
    let payload = b64(claims_json);
    let tag = key.mac_of(&header, &payload).finalize().into_bytes();
    format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// A token from three raw segments, no signing.
fn raw(header_json: &str, claims_json: &str, signature_b64: &str) -> String {
    format!("{}.{}.{signature_b64}", b64(header_json), b64(claims_json))
}

fn check_with(token: &str, config: &JwtConfig, expected: Result<&str, JwtError>) {
    let got = verify(token, &key(), config, NOW).map(|claims| claims.sub.to_string());
    assert_eq!(got.as_deref().map_err(|e| *e), expected, "token {token:?}");
}

fn check(token: &str, expected: Result<&str, JwtError>) {
    check_with(token, &JwtConfig::default(), expected);
}

#[test]
fn jwt_table() {
    use JwtError::*;
    let key = key();
    let sign = |claims_json: &str| sign_hs256(claims_json, &key);
    // The default claims under a hand-built header, signed with the key whatever it says.
    let header = |header_json: &str| with_header(header_json, &claims(""), &key);
    let exp = |exp: &str| sign(&format!(r#"{{"sub":"{SUB}","exp":{exp}}}"#));
    let sub = |sub: &str| sign(&format!(r#"{{"sub":{sub},"exp":{}}}"#, NOW + 3600));
    let good = sign(&claims(""));
    let (h, rest) = good.split_once('.').unwrap();
    let (p, s) = rest.split_once('.').unwrap();

    // Valid.
    check(&good, Ok(SUB));
    check(
        &sign(&claims(r#""nbf":1,"iat":1,"iss":"dev","aud":"x""#)),
        Ok(SUB),
    );
    check(&sub(&format!(r#""{}""#, SUB.to_uppercase())), Ok(SUB));
    check(&header(r#"{"alg":"HS256"}"#), Ok(SUB));
    check(
        &header(r#"{"typ":"jwt","kid":"k1","alg":"HS256"}"#),
        Ok(SUB),
    );

    // Size: checked before anything else; the limit itself is allowed.
    check(&"a".repeat(16 * 1024), Err(TooLarge));
    check(&"a".repeat(8193), Err(TooLarge));
    check(&"a".repeat(8192), Err(Malformed));

    // Segments.
    check("", Err(Malformed));
    check(&format!("{h}.{p}"), Err(Malformed));
    check(&format!("{h}.{p}.{s}.{p}"), Err(Malformed));
    check(&format!("{h}.{p}.{s}."), Err(Malformed));
    check("..", Err(Malformed));

    // Base64url: no `*`, no padding, no `+` or `/`, no non-zero trailing bits.
    check(&format!("*{h}.{p}.{s}"), Err(BadBase64));
    check(&format!("{h}.{p}*.{s}"), Err(BadBase64));
    check(&format!("{h}.{p}.***"), Err(BadBase64));
    check(&format!("{h}=.{p}.{s}"), Err(BadBase64));
    check(&format!("{h}.{p}.{s}="), Err(BadBase64));
    check(&format!("{h}.{p}.+{}", &s[1..]), Err(BadBase64));
    check(&format!("{h}.{p}./{}", &s[1..]), Err(BadBase64));
    // A 32-byte tag leaves 2 spare bits in its last character; setting one is refused.
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut spare_bit = s.to_string();
    let last = alphabet.find(spare_bit.pop().unwrap()).unwrap();
    spare_bit.push(char::from(alphabet.as_bytes()[last | 1]));
    check(&format!("{h}.{p}.{spare_bit}"), Err(BadBase64));

    // Header: a JSON object, `typ` JWT if present, no `crit`, no repeated field.
    check(&header("not json"), Err(Malformed));
    check(&header(r#"["HS256","JWT"]"#), Err(Malformed));
    check(&header(r#""HS256""#), Err(Malformed));
    check(&header(r#"{"alg":"HS256","typ":"at+jwt"}"#), Err(Malformed));
    check(&header(r#"{"alg":"HS256","typ":1}"#), Err(Malformed));
    check(
        &header(r#"{"alg":"HS256","crit":["b64"],"b64":false}"#),
        Err(Malformed),
    );
    check(&header(r#"{"alg":"HS256","alg":"none"}"#), Err(Malformed));
    check(&header(r#"{"alg":"none","alg":"HS256"}"#), Err(Malformed));

    // Algorithm: refused before the signature is checked, whatever the signature.
    let none = r#"{"alg":"none","typ":"JWT"}"#;
    check(&raw(none, &claims(""), ""), Err(UnsupportedAlgorithm));
    check(&raw(none, &claims(""), s), Err(UnsupportedAlgorithm));
    check(&header(none), Err(UnsupportedAlgorithm));
    // RS256 carrying an HMAC made with the key: the classic key-confusion attack.
    for alg in [
        r#""RS256""#,
        r#""HS512""#,
        r#""None""#,
        r#""NONE""#,
        r#""hs256""#,
        r#""HS256 ""#,
        "null",
        "256",
    ] {
        let header_json = format!(r#"{{"alg":{alg},"typ":"JWT"}}"#);
        check(&header(&header_json), Err(UnsupportedAlgorithm));
    }
    let hs512 = URL_SAFE_NO_PAD.encode([7u8; 64]);
    check(
        &raw(r#"{"alg":"HS512"}"#, &claims(""), &hs512),
        Err(UnsupportedAlgorithm),
    );
    check(&header(r#"{"typ":"JWT"}"#), Err(UnsupportedAlgorithm));
    check(&header("{}"), Err(UnsupportedAlgorithm));

    // Signature.
    let other = JwtKey::new(b"another-secret-of-thirty-two-bytes!!").unwrap();
    check(&sign_hs256(&claims(""), &other), Err(BadSignature));
    let other_sub = r#"{"sub":"11111111-2222-4333-8444-555555555555","exp":1700003600}"#;
    check(&format!("{h}.{}.{s}", b64(other_sub)), Err(BadSignature));
    check(&format!("{h}.{p}."), Err(BadSignature));
    check(&format!("{h}.{p}.{}", &s[..20]), Err(BadSignature));
    let other_token = sign(&claims(r#""nbf":1"#));
    let (_, other_s) = other_token.rsplit_once('.').unwrap();
    check(&format!("{h}.{p}.{other_s}"), Err(BadSignature));

    // Claims set: a JSON object with no repeated field.
    check(&sign("[1,2]"), Err(InvalidClaims));
    check(&sign("42"), Err(InvalidClaims));
    check(&sign(&format!(r#""{SUB}""#)), Err(InvalidClaims));
    check(&sign("not json"), Err(InvalidClaims));
    check(&sign(""), Err(InvalidClaims));
    check(&sign(&claims(r#""exp":1"#)), Err(InvalidClaims));
    check(
        &sign(&claims(&format!(r#""sub":"{SUB}""#))),
        Err(InvalidClaims),
    );

    // exp: required, an integer, expired from `exp + leeway` on.
    check(&sign(&format!(r#"{{"sub":"{SUB}"}}"#)), Err(MissingExp));
    for bad in [
        r#""1700003600""#,
        "1700003600.0",
        "1.7000036e9",
        "18446744073709551615",
        "null",
        "true",
        "[1700003600]",
    ] {
        check(&exp(bad), Err(InvalidClaims));
    }
    check(&exp(&(NOW - 3600).to_string()), Err(Expired));
    check(&exp(&(NOW - 31).to_string()), Err(Expired));
    check(&exp(&(NOW - 30).to_string()), Err(Expired)); // now == exp + leeway
    check(&exp(&(NOW - 29).to_string()), Ok(SUB));
    check(&exp(&NOW.to_string()), Ok(SUB));
    check(&exp(&i64::MAX.to_string()), Ok(SUB));
    check(&exp(&i64::MIN.to_string()), Err(Expired));

    // nbf: not yet valid while `now + leeway < nbf`; nbf and iat are integers.
    let extra = |extra: &str| sign(&claims(extra));
    check(
        &extra(&format!(r#""nbf":{}"#, NOW + 3600)),
        Err(NotYetValid),
    );
    check(&extra(&format!(r#""nbf":{}"#, NOW + 31)), Err(NotYetValid));
    check(&extra(&format!(r#""nbf":{}"#, NOW + 30)), Ok(SUB));
    check(&extra(r#""nbf":"1""#), Err(InvalidClaims));
    check(&extra(r#""nbf":null"#), Err(InvalidClaims));
    check(&extra(r#""iat":"1""#), Err(InvalidClaims));
    check(&extra(r#""iat":1.5"#), Err(InvalidClaims));

    // sub: a string of the UUID standard, not nil or max.
    check(&sub(r#""alice""#), Err(InvalidSubject));
    check(
        &sub(r#""00000000-0000-0000-0000-000000000000""#),
        Err(InvalidSubject),
    );
    check(
        &sub(r#""ffffffff-ffff-ffff-ffff-ffffffffffff""#),
        Err(InvalidSubject),
    );
    check(&sub(&format!(r#""{{{SUB}}}""#)), Err(InvalidSubject));
    check(&sub(&format!(r#"" {SUB}""#)), Err(InvalidSubject));
    check(&sub("42"), Err(InvalidSubject));
    check(&sub("null"), Err(InvalidSubject));
    check(&sub(&format!(r#"["{SUB}"]"#)), Err(InvalidSubject));
    check(
        &sign(&format!(r#"{{"exp":{}}}"#, NOW + 3600)),
        Err(InvalidSubject),
    );
}

#[test]
fn issuer_and_lifetime_tables() {
    use JwtError::*;
    let key = key();
    let issuer = JwtConfig {
        issuer: Some("https://issuer.example".to_string()),
        ..JwtConfig::default()
    };
    let with = |extra: &str| sign_hs256(&claims(extra), &key);
    check_with(&with(r#""iss":"https://issuer.example""#), &issuer, Ok(SUB));
    check_with(
        &with(r#""iss":"https://other.example""#),
        &issuer,
        Err(WrongIssuer),
    );
    check_with(
        &with(r#""iss":["https://issuer.example"]"#),
        &issuer,
        Err(WrongIssuer),
    );
    check_with(&with(""), &issuer, Err(WrongIssuer));
    check(&with(r#""iss":"https://other.example""#), Ok(SUB));
    // exp is NOW + 3600: an hour from iat = NOW, or from nbf when there is no iat.
    let hour = JwtConfig {
        max_lifetime_seconds: Some(3600),
        ..JwtConfig::default()
    };
    let minute = JwtConfig {
        max_lifetime_seconds: Some(60),
        ..JwtConfig::default()
    };
    check_with(&with(&format!(r#""iat":{NOW}"#)), &hour, Ok(SUB));
    check_with(&with(&format!(r#""nbf":{NOW}"#)), &hour, Ok(SUB));
    check_with(
        &with(&format!(r#""iat":{NOW}"#)),
        &minute,
        Err(LifetimeTooLong),
    );
    check_with(&with(""), &hour, Err(LifetimeTooLong));
    check(&with(""), Ok(SUB));
}

#[test]
fn the_policy_comes_from_the_shared_variables() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| *value)
        }
    };
    let config = JwtConfig::from_vars(vars(&[
        ("AUTHZ_JWT_AUDIENCE", "authz"),
        ("AUTHZ_JWT_ISSUER", " https://issuer.example "),
        ("AUTHZ_JWT_LEEWAY_SECONDS", "5"),
        ("AUTHZ_JWT_MAX_LIFETIME_SECONDS", "86400"),
    ]))
    .expect("valid");
    assert_eq!(config.audience.as_deref(), Some("authz"));
    assert_eq!(config.issuer.as_deref(), Some("https://issuer.example"));
    assert_eq!(config.leeway_seconds, 5);
    assert_eq!(config.max_lifetime_seconds, Some(86_400));
    assert_eq!(JwtConfig::from_vars(vars(&[])), Ok(JwtConfig::default()));
    assert_eq!(
        JwtConfig::from_vars(vars(&[("AUTHZ_JWT_AUDIENCE", "  ")])),
        Ok(JwtConfig::default())
    );
    assert_eq!(
        JwtConfig::from_vars(vars(&[("AUTHZ_JWT_LEEWAY_SECONDS", "-1")])).map(|_| ()),
        Err((
            "AUTHZ_JWT_LEEWAY_SECONDS",
            "expected a whole number of seconds"
        ))
    );
    assert!(JwtConfig::from_vars(vars(&[("AUTHZ_JWT_MAX_LIFETIME_SECONDS", "0")])).is_err());
}

#[test]
fn audience_table() {
    use JwtError::*;
    let key = key();
    let config = JwtConfig {
        audience: Some("authz-edge".to_string()),
        ..JwtConfig::default()
    };
    let with_aud = |aud: &str| sign_hs256(&claims(&format!(r#""aud":{aud}"#)), &key);
    check_with(&with_aud(r#""authz-edge""#), &config, Ok(SUB));
    check_with(&with_aud(r#"["other","authz-edge"]"#), &config, Ok(SUB));
    check_with(&with_aud(r#""other""#), &config, Err(WrongAudience));
    check_with(&with_aud(r#""AUTHZ-EDGE""#), &config, Err(WrongAudience));
    check_with(&with_aud(r#"["other"]"#), &config, Err(WrongAudience));
    check_with(&with_aud("[]"), &config, Err(WrongAudience));
    check_with(
        &with_aud(r#"[["authz-edge"]]"#),
        &config,
        Err(WrongAudience),
    );
    check_with(&with_aud("null"), &config, Err(WrongAudience));
    check_with(&with_aud("1"), &config, Err(WrongAudience));
    check_with(&sign_hs256(&claims(""), &key), &config, Err(WrongAudience));
    // Without a configured audience, `aud` is not looked at.
    check(&with_aud(r#""other""#), Ok(SUB));
    check(&with_aud("1"), Ok(SUB));
}

#[test]
fn leeway_and_size_come_from_the_config() {
    let key = key();
    let strict = JwtConfig {
        leeway_seconds: 0,
        max_token_bytes: 64,
        ..JwtConfig::default()
    };
    let token = sign_hs256(&format!(r#"{{"sub":"{SUB}","exp":{}}}"#, NOW + 1), &key);
    check_with(&token, &strict, Err(JwtError::TooLarge));
    let strict = JwtConfig {
        max_token_bytes: token.len(),
        ..strict
    };
    check_with(&token, &strict, Ok(SUB));
    let token = sign_hs256(&format!(r#"{{"sub":"{SUB}","exp":{NOW}}}"#), &key);
    check_with(&token, &strict, Err(JwtError::Expired));
    let huge = JwtConfig {
        leeway_seconds: u64::MAX,
        ..JwtConfig::default()
    };
    let token = sign_hs256(&format!(r#"{{"sub":"{SUB}","exp":1}}"#), &key);
    check_with(&token, &huge, Ok(SUB));
}

#[test]
fn returns_every_claim() {
    let claims_json = format!(
        r#"{{"iat":{},"nbf":{},"exp":{},"sub":"{}"}}"#,
        NOW - 10,
        NOW - 5,
        NOW + 60,
        SUB.to_uppercase()
    );
    let token = sign_hs256(&claims_json, &key());
    let got = verify(&token, &key(), &JwtConfig::default(), NOW).unwrap();
    assert_eq!(
        got,
        Claims {
            sub: UserId::parse(SUB, "sub").unwrap(),
            exp: NOW + 60,
            nbf: Some(NOW - 5),
            iat: Some(NOW - 10),
        }
    );
}

#[test]
fn signed_header_is_the_documented_one() {
    assert_eq!(SIGNED_HEADER_B64, b64(r#"{"alg":"HS256","typ":"JWT"}"#));
    let token = sign_hs256("{}", &key());
    assert!(
        token.starts_with(&format!("{SIGNED_HEADER_B64}.e30.")),
        "{token}"
    );
    assert_eq!(token.split('.').count(), 3);
}

/// RFC 7515 appendix A.1: an HS256 token made by another implementation. Its signature
/// verifies; it is then refused only because it has no `sub`.
#[test]
fn rfc_7515_example_signature_verifies() {
    let secret = URL_SAFE_NO_PAD
        .decode(
            "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
        )
        .unwrap();
    let key = JwtKey::new(&secret).unwrap();
    let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9\
        .eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ\
        .dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let config = JwtConfig::default();
    assert_eq!(
        verify(token, &key, &config, 1_300_819_000),
        Err(JwtError::InvalidSubject)
    );
    assert_eq!(
        verify(token, &key, &config, 1_300_819_410),
        Err(JwtError::Expired)
    );
    assert_eq!(
        verify(token, &self::key(), &config, 1_300_819_000),
        Err(JwtError::BadSignature)
    );
}

#[test]
fn empty_secret_is_refused_and_debug_hides_the_secret() {
    assert!(JwtKey::new(b"").is_none());
    assert!(JwtKey::new(b"x").is_some());
    let shown = format!("{:?}", key());
    assert_eq!(shown, "JwtKey { .. }");
}

#[test]
fn codes_and_messages() {
    use JwtError::*;
    let all = [
        TooLarge,
        Malformed,
        BadBase64,
        UnsupportedAlgorithm,
        BadSignature,
        InvalidClaims,
        MissingExp,
        Expired,
        NotYetValid,
        WrongAudience,
        WrongIssuer,
        LifetimeTooLong,
        InvalidSubject,
    ];
    let mut codes: Vec<&str> = all.iter().map(JwtError::code).collect();
    for (error, code) in all.iter().zip(&codes) {
        assert!(
            code.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{code}"
        );
        let message = error.to_string();
        assert!(message.starts_with(char::is_lowercase), "{message}");
        assert!(!message.ends_with('.'), "{message}");
    }
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), all.len());
}
