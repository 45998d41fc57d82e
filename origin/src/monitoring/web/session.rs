//! The dashboard page's login, for browsers that cannot send an `Authorization` header.
//!
//! - A login form POSTs the admin token; when it matches (constant time) the answer sets the
//!   cookie `authz_admin` (`HttpOnly; SameSite=Strict; Path=/admin/`, `Secure` behind an
//!   HTTPS proxy), which only the page (`GET /admin/`) accepts, never the JSON endpoints.
//! - The cookie is stateless: `<expiry>.<HMAC-SHA256 over the expiry, keyed by the admin
//!   token>`, so it works across instances and restarts, holds no secret, and rotating
//!   `AUTHZ_ADMIN_TOKEN` ends every session. It lives `AUTHZ_ADMIN_SESSION_SECONDS`.
//! - A one-time login link (for a headless browser or a script that holds the token): an
//!   admin-authenticated `POST /admin/login-link` returns `/admin/login?link=<nonce>`, a
//!   128-bit random nonce valid once, for 60 s, kept in memory (at most 16 outstanding).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use authz_core::jwt::{JwtKey, sign_hs256};
use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use rand::Rng;
use subtle::ConstantTimeEq;

/// The cookie's name.
pub const COOKIE_NAME: &str = "authz_admin";
/// How long a login link stays valid.
pub const LINK_LIFETIME: Duration = Duration::from_secs(60);
/// Outstanding login links at most (the oldest goes first).
const MAX_LINKS: usize = 16;

/// The cookie value of a session ending at `expires_unix`.
pub fn session_value(admin_token: &str, expires_unix: u64) -> Option<String> {
    let key = JwtKey::new(admin_token.as_bytes())?;
    let claims = format!(r#"{{"purpose":"authz-admin-session-v1","exp":{expires_unix}}}"#);
    let signed = sign_hs256(&claims, &key);
    let signature = signed.rsplit('.').next()?;
    Some(format!("{expires_unix}.{signature}"))
}

/// Whether `value` is a session of `admin_token` alive at `now_unix` (and not set to outlive
/// `lifetime` from now).
pub fn session_valid(value: &str, admin_token: &str, now_unix: u64, lifetime: Duration) -> bool {
    let Some(expires) = value
        .split_once('.')
        .and_then(|(expires, _)| expires.parse::<u64>().ok())
    else {
        return false;
    };
    if expires <= now_unix || expires > now_unix.saturating_add(lifetime.as_secs()) {
        return false;
    }
    session_value(admin_token, expires)
        .is_some_and(|expected| bool::from(value.as_bytes().ct_eq(expected.as_bytes())))
}

/// The `authz_admin` cookie of a request, if any.
pub fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE_NAME).then_some(value)
        })
}

/// Whether the request came through an HTTPS proxy (the cookie is then `Secure`).
fn behind_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` value starting a session.
pub fn set_cookie(value: &str, lifetime: Duration, headers: &HeaderMap) -> String {
    let secure = if behind_https(headers) {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{COOKIE_NAME}={value}; Path=/admin/; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        lifetime.as_secs()
    )
}

/// The `Set-Cookie` value ending a session.
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Path=/admin/; Max-Age=0; HttpOnly; SameSite=Strict")
}

/// Outstanding one-time login links.
#[derive(Debug, Default)]
pub struct LoginLinks {
    links: Mutex<Vec<(String, Instant)>>,
}

impl LoginLinks {
    /// A new link nonce (32 hex digits).
    pub fn issue(&self) -> String {
        let bytes: [u8; 16] = rand::rng().random();
        let nonce: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        if let Ok(mut links) = self.links.lock() {
            let now = Instant::now();
            links.retain(|(_, issued)| now.duration_since(*issued) < LINK_LIFETIME);
            if links.len() >= MAX_LINKS {
                links.remove(0);
            }
            links.push((nonce.clone(), now));
        }
        nonce
    }

    /// Whether `nonce` is an outstanding, unexpired link; it is used up either way.
    pub fn redeem(&self, nonce: &str) -> bool {
        let Ok(mut links) = self.links.lock() else {
            return false;
        };
        let now = Instant::now();
        // Compare with every link, in constant time each, before removing the match.
        let mut found = None;
        for (index, (known, issued)) in links.iter().enumerate() {
            let same: bool = known.as_bytes().ct_eq(nonce.as_bytes()).into();
            if same && now.duration_since(*issued) < LINK_LIFETIME {
                found = Some(index);
            }
        }
        match found {
            Some(index) => {
                links.remove(index);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "admin-token-0123456789";
    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn sessions_expire_and_are_bound_to_the_token() {
        let value = session_value(TOKEN, 1_000).unwrap();
        assert!(session_valid(&value, TOKEN, 999, DAY));
        assert!(!session_valid(&value, TOKEN, 1_000, DAY), "expired");
        assert!(!session_valid(&value, "another-token-0123456789", 999, DAY));
        assert!(
            !session_valid(&value, TOKEN, 1, Duration::from_secs(60)),
            "outlives the lifetime"
        );
        let forged = value.replacen("1000", "2000", 1);
        assert!(!session_valid(&forged, TOKEN, 999, DAY));
        assert!(!session_valid("garbage", TOKEN, 999, DAY));
        assert!(!value.contains(TOKEN));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, "a=b; authz_admin=1.xyz; c=d".parse().unwrap());
        assert_eq!(cookie(&headers), Some("1.xyz"));
        assert_eq!(cookie(&HeaderMap::new()), None);
        assert!(set_cookie("v", DAY, &headers).ends_with("HttpOnly; SameSite=Strict"));
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(set_cookie("v", DAY, &headers).ends_with("; Secure"));
    }

    #[test]
    fn links_work_once() {
        let links = LoginLinks::default();
        let nonce = links.issue();
        assert_eq!(nonce.len(), 32);
        assert!(!links.redeem("0123"));
        assert!(links.redeem(&nonce));
        assert!(!links.redeem(&nonce), "used up");
        let first = links.issue();
        for _ in 0..MAX_LINKS {
            links.issue();
        }
        assert!(!links.redeem(&first), "evicted by newer links");
    }
}
