//! Identity-provider tokens at the origin: RS256, ES256 and EdDSA tokens minted by another
//! implementation (jsonwebtoken over RustCrypto) with the RFC 7515 / RFC 8037 example keys and
//! a second key of each type, verified with `AUTHZ_JWKS` and with `AUTHZ_JWKS_URL` served by a
//! local HTTP server: the refusal table, rotation, the unknown-`kid` fetch and its rate limit,
//! and the last good set kept when the address fails.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::support::{self, TestDb, TestOrigin};

const USER: &str = "a0000000-0000-4000-8000-000000000001";
const GENERATION: &str = "c0000000-0000-4000-8000-000000000001";
const ISSUER: &str = "https://idp.test/auth/v1";
const AUDIENCE: &str = "authenticated";

const RFC_KEYS: &str = include_str!("../../../testdata/jose/rfc-keys.json");
const SECOND_KEYS: &str = include_str!("../../../testdata/jose/second-keys.json");

/// A signing key: its `kid` in the sets, its algorithm, its PKCS#8 PEM, its public JWK.
struct Signer {
    kid: &'static str,
    alg: Algorithm,
    pem: &'static str,
    public: Value,
}

fn public_half(json: &str, name: &str, kid: &str) -> Value {
    let all: Value = serde_json::from_str(json).expect("key file");
    let mut key = all[name].clone();
    let object = key.as_object_mut().expect("a JWK");
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        object.remove(private);
    }
    object.insert("kid".into(), kid.into());
    key
}

fn signers() -> Vec<Signer> {
    let pem = |name: &str| -> &'static str {
        match name {
            "rs256" => include_str!("../../../testdata/jose/rs256.pkcs8.pem"),
            "es256" => include_str!("../../../testdata/jose/es256.pkcs8.pem"),
            "eddsa" => include_str!("../../../testdata/jose/eddsa.pkcs8.pem"),
            "rs256-second" => include_str!("../../../testdata/jose/rs256-second.pkcs8.pem"),
            "es256-second" => include_str!("../../../testdata/jose/es256-second.pkcs8.pem"),
            _ => include_str!("../../../testdata/jose/eddsa-second.pkcs8.pem"),
        }
    };
    let mut signers = Vec::new();
    for (name, alg, kid, second_kid) in [
        ("rs256", Algorithm::RS256, "rsa-1", "rsa-2"),
        ("es256", Algorithm::ES256, "ec-1", "ec-2"),
        ("eddsa", Algorithm::EdDSA, "ed-1", "ed-2"),
    ] {
        signers.push(Signer {
            kid,
            alg,
            pem: pem(name),
            public: public_half(RFC_KEYS, name, kid),
        });
        signers.push(Signer {
            kid: second_kid,
            alg,
            pem: pem(&format!("{name}-second")),
            public: public_half(SECOND_KEYS, name, second_kid),
        });
    }
    signers
}

fn signer<'a>(signers: &'a [Signer], kid: &str) -> &'a Signer {
    signers.iter().find(|s| s.kid == kid).expect("a signer")
}

fn document(signers: &[Signer], kids: &[&str]) -> String {
    let keys: Vec<Value> = kids
        .iter()
        .map(|kid| signer(signers, kid).public.clone())
        .collect();
    json!({ "keys": keys }).to_string()
}

fn good_claims() -> Value {
    let now = authz_origin::clock::now().as_seconds();
    json!({"sub": USER, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300})
}

/// A token signed by `signer`, with `header_kid` (none: the signer's own) in its header.
fn mint(signer: &Signer, header_kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(signer.alg);
    header.kid = Some(header_kid.unwrap_or(signer.kid).to_owned());
    let key = match signer.alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(signer.pem.as_bytes()),
        Algorithm::ES256 => EncodingKey::from_ec_pem(signer.pem.as_bytes()),
        _ => EncodingKey::from_ed_pem(signer.pem.as_bytes()),
    }
    .expect("a signing key");
    jsonwebtoken::encode(&header, claims, &key).expect("a token")
}

fn question() -> Value {
    json!({"resource_type": "generation", "resource_id": GENERATION, "operation": "read"})
}

async fn status_of(origin: &TestOrigin, token: &str) -> (u16, Value) {
    origin.post("/v1/authorize", Some(token), question()).await
}

fn policy_vars(db: &TestDb) -> std::collections::HashMap<String, String> {
    let mut vars = support::origin_vars(db, None);
    for (name, value) in [
        ("AUTHZ_JWT_ISSUER", ISSUER),
        ("AUTHZ_JWT_AUDIENCE", AUDIENCE),
        ("AUTHZ_JWT_MAX_LIFETIME_SECONDS", "3600"),
    ] {
        vars.insert(name.to_owned(), value.to_owned());
    }
    vars
}

#[tokio::test]
async fn jwks_tokens_of_each_algorithm_verify_and_the_refusal_table_holds() {
    let db = TestDb::new().await;
    let signers = signers();
    let all = ["rsa-1", "rsa-2", "ec-1", "ec-2", "ed-1", "ed-2"];
    let mut vars = policy_vars(&db);
    vars.insert("AUTHZ_JWKS".to_owned(), document(&signers, &all));
    let origin = TestOrigin::start(vars).await;

    // Every key of the set, two of each type: the principal is the token's subject.
    for kid in all {
        let (status, answer) =
            status_of(&origin, &mint(signer(&signers, kid), None, &good_claims())).await;
        assert_eq!(status, 200, "{kid}: {answer}");
        assert_eq!(answer["reason"], "user_not_found", "{kid}");
    }

    let now = authz_origin::clock::now().as_seconds();
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = good_claims();
        change(&mut claims);
        claims
    };
    let rsa_public = signer(&signers, "rsa-1").public.to_string();
    let confusion = {
        // The classic confusion: HS256 with the RSA public key's bytes as the HMAC secret.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("rsa-1".to_owned());
        jsonwebtoken::encode(
            &header,
            &good_claims(),
            &EncodingKey::from_secret(rsa_public.as_bytes()).expect("a secret"),
        )
        .expect("a token")
    };
    let none = {
        use base64::Engine as _;
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "kid": "ec-1"})),
            b64(&good_claims())
        )
    };
    let table: Vec<(&str, String)> = vec![
        (
            "wrong kid (signed by ec-1, naming ec-2)",
            mint(signer(&signers, "ec-1"), Some("ec-2"), &good_claims()),
        ),
        (
            "unknown kid",
            mint(signer(&signers, "ec-1"), Some("ec-9"), &good_claims()),
        ),
        (
            "alg not the key's (ES256 naming the RSA key)",
            mint(signer(&signers, "ec-1"), Some("rsa-1"), &good_claims()),
        ),
        (
            "alg not the key's (EdDSA naming the EC key)",
            mint(signer(&signers, "ed-1"), Some("ec-1"), &good_claims()),
        ),
        ("HS256 with the RSA public key as secret", confusion),
        ("alg none", none),
        (
            "wrong issuer",
            mint(
                signer(&signers, "rsa-1"),
                None,
                &with(&|c| c["iss"] = json!("https://elsewhere.test")),
            ),
        ),
        (
            "wrong audience",
            mint(
                signer(&signers, "ec-2"),
                None,
                &with(&|c| c["aud"] = json!("anon")),
            ),
        ),
        (
            "lifetime over the maximum",
            mint(
                signer(&signers, "ed-2"),
                None,
                &with(&|c| c["exp"] = json!(now + 7_200)),
            ),
        ),
        (
            "expired",
            mint(
                signer(&signers, "rsa-2"),
                None,
                &with(&|c| {
                    c["iat"] = json!(now - 900);
                    c["exp"] = json!(now - 600);
                }),
            ),
        ),
    ];
    for (name, token) in table {
        let (status, answer) = status_of(&origin, &token).await;
        assert_eq!(status, 401, "{name}: {answer}");
        assert_eq!(answer["error"]["code"], "unauthenticated", "{name}");
    }
    origin.stop().await;

    // An RS256 token where only the HS256 secret is configured.
    let origin = TestOrigin::start(policy_vars(&db)).await;
    let (status, answer) = status_of(
        &origin,
        &mint(signer(&signers, "rsa-1"), None, &good_claims()),
    )
    .await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["error"]["code"], "unauthenticated");
    origin.stop().await;
}

/// A local JWKS address: serves `body` with `status`, counting requests.
struct JwksServer {
    url: String,
    served: Arc<Mutex<(u16, String)>>,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    async fn start(body: String) -> Self {
        let served = Arc::new(Mutex::new((200u16, body)));
        let requests = Arc::new(AtomicUsize::new(0));
        let (state_served, state_requests) = (Arc::clone(&served), Arc::clone(&requests));
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                let served = Arc::clone(&state_served);
                let requests = Arc::clone(&state_requests);
                async move {
                    requests.fetch_add(1, Ordering::SeqCst);
                    let (status, body) = served.lock().expect("served").clone();
                    (
                        axum::http::StatusCode::from_u16(status).expect("a status"),
                        [("content-type", "application/json")],
                        body,
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().expect("addr")
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            served,
            requests,
            task,
        }
    }

    fn serve(&self, status: u16, body: String) {
        *self.served.lock().expect("served") = (status, body);
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Polls until `token` gets `status` from `origin`, for at most `limit`.
async fn wait_for_status(origin: &TestOrigin, token: &str, status: u16, limit: Duration) {
    let started = std::time::Instant::now();
    loop {
        let (got, answer) = status_of(origin, token).await;
        if got == status {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "still {got} after {limit:?}, not {status}: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn jwks_url_is_fetched_at_start_on_unknown_kids_rate_limited_and_on_refresh_keeping_the_last_good_set()
 {
    let db = TestDb::new().await;
    let signers = signers();
    let server = JwksServer::start(document(&signers, &["ec-1"])).await;
    let mut vars = policy_vars(&db);
    vars.insert("AUTHZ_JWKS_URL".to_owned(), server.url.clone());
    vars.insert("AUTHZ_JWKS_REFRESH_SECONDS".to_owned(), "2".to_owned());
    vars.insert("AUTHZ_JWKS_MIN_REFRESH_SECONDS".to_owned(), "1".to_owned());
    let origin = TestOrigin::start(vars).await;
    assert_eq!(server.requests(), 1, "fetched once at start");
    let ec1 = mint(signer(&signers, "ec-1"), None, &good_claims());
    let ed1 = mint(signer(&signers, "ed-1"), None, &good_claims());
    let (status, answer) = status_of(&origin, &ec1).await;
    assert_eq!(status, 200, "{answer}");

    // A key added to the set: its first token names an unknown kid, which fetches the set
    // again (once the minimum interval since the last fetch has passed) and verifies.
    server.serve(200, document(&signers, &["ec-1", "ed-1"]));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let before = server.requests();
    let (status, answer) = status_of(&origin, &ed1).await;
    assert_eq!(
        status, 200,
        "the new key after an unknown-kid fetch: {answer}"
    );
    assert_eq!(server.requests(), before + 1);

    // A flood of made-up kids right after: refused, and at most one more fetch.
    let before = server.requests();
    for n in 0..20 {
        let made_up = mint(
            signer(&signers, "ec-1"),
            Some(&format!("made-up-{n}")),
            &good_claims(),
        );
        let (status, _) = status_of(&origin, &made_up).await;
        assert_eq!(status, 401);
    }
    assert!(
        server.requests() <= before + 1,
        "rate-limited: {} fetches",
        server.requests() - before
    );

    // A key removed from the set: refused after the next refresh.
    server.serve(200, document(&signers, &["ed-1"]));
    wait_for_status(&origin, &ec1, 401, Duration::from_secs(10)).await;
    let (status, _) = status_of(&origin, &ed1).await;
    assert_eq!(status, 200);

    // The address fails (an error status, then a document the core refuses): the last good
    // set stays, over several refresh intervals.
    server.serve(500, "{}".to_owned());
    let failing_since = server.requests();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    server.serve(
        200,
        r#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}"#.to_owned(),
    );
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(
        server.requests() >= failing_since + 2,
        "refreshed while failing"
    );
    let (status, answer) = status_of(&origin, &ed1).await;
    assert_eq!(status, 200, "the last good set is kept: {answer}");
    let metrics = origin.metrics_text().await;
    assert!(
        metrics.contains(r#"authz_jwks_fetches_total{outcome="failed"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"authz_jwks_fetches_total{outcome="refused"}"#),
        "{metrics}"
    );
    origin.stop().await;
    server.task.abort();
}

#[tokio::test]
async fn an_unreachable_jwks_url_at_start_refuses_public_key_tokens_until_it_answers() {
    let db = TestDb::new().await;
    let signers = signers();
    let server = JwksServer::start(String::new()).await;
    server.serve(503, String::new());
    let mut vars = policy_vars(&db);
    vars.insert("AUTHZ_JWKS_URL".to_owned(), server.url.clone());
    vars.insert("AUTHZ_JWKS_MIN_REFRESH_SECONDS".to_owned(), "1".to_owned());
    let origin = TestOrigin::start(vars).await;
    let rsa1 = mint(signer(&signers, "rsa-1"), None, &good_claims());
    let (status, answer) = status_of(&origin, &rsa1).await;
    assert_eq!(status, 401, "no set yet: {answer}");
    // Service callers are not affected.
    let (status, answer) = origin
        .post("/v1/authorize", Some(support::SERVICE_TOKEN), json!({"user_id": USER, "resource_type": "generation", "resource_id": GENERATION, "operation": "read"}))
        .await;
    assert_eq!(status, 200, "{answer}");
    server.serve(200, document(&signers, &["rsa-1"]));
    wait_for_status(&origin, &rsa1, 200, Duration::from_secs(10)).await;
    origin.stop().await;
    server.task.abort();
}
