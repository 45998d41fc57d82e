//! Identity providers' keys at the origin: the key set end-user tokens are verified with
//! (`AUTHZ_JWKS`, a document read at start, or `AUTHZ_JWKS_URL`, fetched), and the public-key
//! crypto the core's policy calls ([`RingVerifier`], ring: the crate rustls already brings).
//!
//! A fetched set is replaced only by a set the core accepts: a failed fetch (network, status,
//! size, a document the core refuses) keeps the last good set and is counted in
//! `authz_jwks_fetches_total{outcome}`. The set is fetched at start, every
//! `AUTHZ_JWKS_REFRESH_SECONDS`, and when a token names a `kid` the set does not hold, at most
//! once per `AUTHZ_JWKS_MIN_REFRESH_SECONDS` (so a flood of made-up `kid`s costs the provider
//! one request per interval). Until the first fetch succeeds the set is empty and every
//! public-key token is refused (401): no outage becomes a grant.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use authz_core::jwt::{Algorithm, KeySet, PublicKey, SignatureCheck, SignatureVerifier};
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};

/// The longest JWKS document accepted from `AUTHZ_JWKS_URL`.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// The deadline of one fetch of `AUTHZ_JWKS_URL`.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Public-key signatures by ring: RSASSA-PKCS1-v1_5 with SHA-256 (2048 to 8192 bits), ECDSA
/// P-256 with SHA-256 over a fixed-size `r || s`, and Ed25519.
#[derive(Debug, Clone, Copy, Default)]
pub struct RingVerifier;

impl SignatureVerifier for RingVerifier {
    fn verify(&self, check: &SignatureCheck<'_>) -> bool {
        let message = check.signing_input;
        let signature = check.signature;
        match (&check.key.key, check.key.alg) {
            (PublicKey::Rsa { n, e }, Algorithm::Rs256) => RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
            (key @ PublicKey::P256 { .. }, Algorithm::Es256) => {
                key.p256_uncompressed().is_some_and(|point| {
                    UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                        .verify(message, signature)
                        .is_ok()
                })
            }
            (PublicKey::Ed25519 { x }, Algorithm::EdDsa) => {
                UnparsedPublicKey::new(&signature::ED25519, x)
                    .verify(message, signature)
                    .is_ok()
            }
            _ => false,
        }
    }
}

/// Where the key set comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// `AUTHZ_JWKS`: parsed once, at start.
    Document,
    /// `AUTHZ_JWKS_URL`, with its refresh interval and the least time between two fetches.
    Url {
        /// The document's address.
        url: reqwest::Url,
        /// `AUTHZ_JWKS_REFRESH_SECONDS`.
        refresh: Duration,
        /// `AUTHZ_JWKS_MIN_REFRESH_SECONDS`.
        min_refresh: Duration,
    },
}

/// Why a fetch did not replace the set.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The request failed or timed out.
    #[error("fetching the JWKS failed: {0}")]
    Request(#[from] reqwest::Error),
    /// Not a 2xx answer.
    #[error("the JWKS address answered {0}")]
    Status(u16),
    /// Longer than [`MAX_DOCUMENT_BYTES`].
    #[error("the JWKS document is over {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge,
    /// The core refused the document.
    #[error("the JWKS document was refused: {0}")]
    Refused(authz_core::jwt::JwksError),
}

/// The current key set and how to renew it.
#[derive(Debug)]
pub struct KeyStore {
    source: Source,
    client: Option<reqwest::Client>,
    current: RwLock<Arc<KeySet>>,
    /// When the last fetch was attempted, successful or not.
    last_attempt: Mutex<Option<Instant>>,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
}

impl KeyStore {
    /// A store of the fixed set of `AUTHZ_JWKS`.
    pub fn from_document(set: KeySet) -> Self {
        Self {
            source: Source::Document,
            client: None,
            current: RwLock::new(Arc::new(set)),
            last_attempt: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// A store of the set at `url`, empty until [`KeyStore::fetch`] succeeds.
    pub fn from_url(
        url: reqwest::Url,
        refresh: Duration,
        min_refresh: Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()?;
        Ok(Self {
            source: Source::Url {
                url,
                refresh,
                min_refresh,
            },
            client: Some(client),
            current: RwLock::new(Arc::new(KeySet::default())),
            last_attempt: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// Where the set comes from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The set to verify with now.
    pub fn current(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(set) => Arc::clone(&set),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Fetches the set from `AUTHZ_JWKS_URL` and, if the core accepts it, makes it current.
    /// Returns the number of usable keys. A store of `AUTHZ_JWKS` has nothing to fetch.
    pub async fn fetch(&self) -> Result<usize, FetchError> {
        let (Source::Url { url, .. }, Some(client)) = (&self.source, &self.client) else {
            return Ok(self.current().keys().len());
        };
        let _one_at_a_time = self.fetching.lock().await;
        self.fetch_locked(client, url).await
    }

    /// [`KeyStore::fetch`] once the caller holds `fetching`.
    async fn fetch_locked(
        &self,
        client: &reqwest::Client,
        url: &reqwest::Url,
    ) -> Result<usize, FetchError> {
        self.mark_attempt();
        let outcome = fetch_set(client, url).await;
        let label = match &outcome {
            Ok(_) => "ok",
            Err(FetchError::Refused(_)) => "refused",
            Err(_) => "failed",
        };
        metrics::counter!("authz_jwks_fetches_total", "outcome" => label).increment(1);
        let set = outcome?;
        let keys = set.keys().len();
        metrics::gauge!("authz_jwks_keys").set(keys as f64);
        match self.current.write() {
            Ok(mut current) => *current = Arc::new(set),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(set),
        }
        Ok(keys)
    }

    /// Fetches the set again because a token named a `kid` it does not hold, unless a fetch
    /// was attempted less than `AUTHZ_JWKS_MIN_REFRESH_SECONDS` ago. Returns whether verifying
    /// again can help: this call fetched successfully, or another one fetched while it waited.
    pub async fn refresh_for_unknown_kid(&self) -> bool {
        let (
            Source::Url {
                url, min_refresh, ..
            },
            Some(client),
        ) = (&self.source, &self.client)
        else {
            return false;
        };
        let asked_at = Instant::now();
        // Concurrent requests with unknown kids queue here, so the check below sees the fetch
        // the first of them made.
        let _one_at_a_time = self.fetching.lock().await;
        let last = self.last_attempt.lock().ok().and_then(|last| *last);
        if last.is_some_and(|last| last >= asked_at) {
            // Another request fetched while this one waited: verify again with its set.
            return true;
        }
        if last.is_some_and(|last| last.elapsed() < *min_refresh) {
            metrics::counter!("authz_jwks_fetches_total", "outcome" => "rate_limited").increment(1);
            return false;
        }
        match self.fetch_locked(client, url).await {
            Ok(_) => true,
            Err(error) => {
                tracing::warn!(%error, "refetching the JWKS for an unknown kid failed; keeping the last good set");
                false
            }
        }
    }

    /// Fetches the set every `AUTHZ_JWKS_REFRESH_SECONDS` (after a failure, or while no fetch
    /// has succeeded, again after `AUTHZ_JWKS_MIN_REFRESH_SECONDS`). Returns at once for
    /// `AUTHZ_JWKS`.
    pub async fn refresh_forever(self: Arc<Self>) {
        let Source::Url {
            refresh,
            min_refresh,
            ..
        } = self.source.clone()
        else {
            return;
        };
        let mut wait = if self.current().keys().is_empty() {
            min_refresh.min(refresh)
        } else {
            refresh
        };
        loop {
            tokio::time::sleep(wait).await;
            wait = match self.fetch().await {
                Ok(_) => refresh,
                Err(error) => {
                    tracing::warn!(%error, "refreshing the JWKS failed; keeping the last good set");
                    min_refresh.min(refresh)
                }
            };
        }
    }

    fn mark_attempt(&self) {
        if let Ok(mut last) = self.last_attempt.lock() {
            *last = Some(Instant::now());
        }
    }
}

async fn fetch_set(client: &reqwest::Client, url: &reqwest::Url) -> Result<KeySet, FetchError> {
    let mut response = client.get(url.clone()).send().await?;
    if !response.status().is_success() {
        return Err(FetchError::Status(response.status().as_u16()));
    }
    if response
        .content_length()
        .is_some_and(|length| length > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(FetchError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    KeySet::parse(&body).map_err(FetchError::Refused)
}

/// Whether `url` may serve keys: `https`, or `http` to a loopback address (a local provider
/// or a test). A key set over plain HTTP from elsewhere could be replaced on the way.
pub fn is_trusted_address(url: &reqwest::Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host_str() {
            Some("localhost") => true,
            Some(host) => host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback()),
            None => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use authz_core::jwt::Jwk;

    const RFC_KEYS: &str = include_str!("../../testdata/jose/rfc-keys.json");

    /// The RFC example keys' public halves, as one set, and the RFCs' example tokens.
    fn rfc() -> (KeySet, serde_json::Value) {
        let set = KeySet::parse(include_bytes!("../../testdata/jose/rfc-jwks.json"))
            .expect("the RFC keys");
        let all: serde_json::Value = serde_json::from_str(RFC_KEYS).expect("rfc-keys.json");
        (set, all["examples"].clone())
    }

    fn check(key: &Jwk, token: &str) -> bool {
        let (signing_input, signature) = token.rsplit_once('.').expect("a JWS");
        let signature = base64_url(signature);
        RingVerifier.verify(&SignatureCheck {
            key,
            signing_input: signing_input.as_bytes(),
            signature: &signature,
        })
    }

    fn base64_url(text: &str) -> Vec<u8> {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .expect("base64url")
    }

    #[test]
    fn the_rfc_example_signatures_verify_and_altered_ones_do_not() {
        let (set, examples) = rfc();
        for (index, name) in ["rs256", "es256", "eddsa"].iter().enumerate() {
            let key = &set.keys()[index];
            let token = examples[name].as_str().expect("an example");
            assert!(check(key, token), "{name}: the RFC's own example");
            // Another signing input, and another key of the set, both fail.
            let altered = token.replacen("eyJ", "eyK", 1);
            assert!(!check(key, &altered), "{name}: altered header");
            let other = &set.keys()[(index + 1) % 3];
            let mismatched = SignatureCheck {
                key: other,
                signing_input: token.rsplit_once('.').expect("a JWS").0.as_bytes(),
                signature: &base64_url(token.rsplit_once('.').expect("a JWS").1),
            };
            assert!(!RingVerifier.verify(&mismatched), "{name}: another key");
        }
    }

    #[test]
    fn only_https_or_loopback_http_may_serve_keys() {
        for (url, trusted) in [
            (
                "https://example.supabase.co/auth/v1/.well-known/jwks.json",
                true,
            ),
            ("http://127.0.0.1:9999/jwks.json", true),
            ("http://localhost/jwks.json", true),
            ("http://[::1]:80/jwks.json", true),
            ("http://idp.example.com/jwks.json", false),
            ("http://10.0.0.1/jwks.json", false),
            ("ftp://127.0.0.1/jwks.json", false),
        ] {
            let url = reqwest::Url::parse(url).expect("a URL");
            assert_eq!(is_trusted_address(&url), trusted, "{url}");
        }
    }
}
