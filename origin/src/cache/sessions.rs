//! The Redis `session` tier: verified end-user tokens published for other services that share
//! Redis (key `s/<sha256 of the token, hex>`, value `{"sub", "exp"}`, expiring with the token).
//! A backend without the JWT secret can then resolve a token it was handed to its principal.
//!
//! The origin itself never reads this tier on a request: verifying an HS256 token locally
//! (about 1 µs, BENCHMARKS.md) is cheaper than any Redis round trip. Publishing is off the
//! request path (a background `SET`), once per token per process (a bounded in-process set of
//! token hashes already published).

use std::sync::Arc;

use authz_core::jwt::Claims;
use sha2::{Digest, Sha256};

use super::RedisTier;

/// The session tier, when configured.
#[derive(Debug, Clone)]
pub struct SessionTier {
    tier: Arc<RedisTier>,
    published: moka::sync::Cache<[u8; 32], ()>,
}

impl SessionTier {
    /// Publishes into `tier`, remembering up to `capacity` published tokens.
    pub fn new(tier: Arc<RedisTier>, capacity: u64) -> Self {
        Self {
            tier,
            published: moka::sync::Cache::new(capacity),
        }
    }

    /// The tier key of `token`.
    pub fn key(token: &str) -> String {
        let digest = Sha256::digest(token.as_bytes());
        let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        format!("s/{hex}")
    }

    /// Publishes a verified token (in the background) unless this process already did.
    pub fn publish(&self, token: &str, claims: &Claims, now_seconds: i64) {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if self.published.contains_key(&digest) {
            return;
        }
        let ttl_ms = u64::try_from(claims.exp.saturating_sub(now_seconds))
            .unwrap_or(0)
            .saturating_mul(1_000);
        if ttl_ms == 0 {
            return;
        }
        self.published.insert(digest, ());
        let value =
            serde_json::json!({ "sub": claims.sub.to_string(), "exp": claims.exp }).to_string();
        let item = (Self::key(token), value, ttl_ms);
        let tier = Arc::clone(&self.tier);
        tokio::spawn(async move { tier.set_many(vec![item]).await });
    }
}
