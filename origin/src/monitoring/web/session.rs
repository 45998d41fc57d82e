//! The dashboard page's login, for browsers that cannot send an `Authorization` header.
//!
//! - A login form POSTs the admin token; when it matches (constant time) the answer sets the
//!   cookie `authz_admin` (`HttpOnly; SameSite=Strict; Path=/admin/`, `Secure` behind an
//!   HTTPS proxy), which only the page (`GET /admin/`) accepts, never the JSON endpoints.
//! - The cookie is stateless: its value is the session's expiry (Unix seconds) signed by the
//!   `cookie` crate's signed jar (an HMAC-SHA256 tag, in base64, before the expiry). The key
//!   is 64 bytes of SHA-512 over a purpose label and the admin token, so the cookie works
//!   across instances and restarts, holds no secret, and rotating `AUTHZ_ADMIN_TOKEN` ends
//!   every session. It lives `AUTHZ_ADMIN_SESSION_SECONDS`: a value whose expiry is past, or
//!   further off than that lifetime (signed before the lifetime was shortened), is refused.
//! - A one-time login link (for a headless browser or a script that holds the token): an
//!   admin-authenticated `POST /admin/login-link` returns `/admin/login?link=<nonce>`, a
//!   128-bit random nonce valid once, for 60 s, kept in memory (at most 16 outstanding).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use cookie::{Cookie, Key, SameSite};
use rand::Rng;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

/// The cookie's name.
pub const COOKIE_NAME: &str = "authz_admin";
/// How long a login link stays valid.
pub const LINK_LIFETIME: Duration = Duration::from_secs(60);
/// Outstanding login links at most (the oldest goes first).
const MAX_LINKS: usize = 16;

/// What the signing key is derived for, so that no other use of the admin token shares it.
const KEY_PURPOSE: &[u8] = b"authz-admin-session-v1\0";

/// The signing key of `admin_token`'s sessions; `None` for an empty token.
fn session_key(admin_token: &str) -> Option<Key> {
    if admin_token.is_empty() {
        return None;
    }
    let derived = Sha512::new()
        .chain_update(KEY_PURPOSE)
        .chain_update(admin_token.as_bytes())
        .finalize();
    Key::try_from(derived.as_slice()).ok()
}

/// The cookie value of a session ending at `expires_unix`.
pub fn session_value(admin_token: &str, expires_unix: u64) -> Option<String> {
    let key = session_key(admin_token)?;
    let mut jar = cookie::CookieJar::new();
    jar.signed_mut(&key)
        .add(Cookie::new(COOKIE_NAME, expires_unix.to_string()));
    jar.get(COOKIE_NAME).map(|signed| signed.value().to_owned())
}

/// Whether `value` is a session of `admin_token` alive at `now_unix` (and not set to outlive
/// `lifetime` from now).
pub fn session_valid(value: &str, admin_token: &str, now_unix: u64, lifetime: Duration) -> bool {
    let Some(key) = session_key(admin_token) else {
        return false;
    };
    let verified = cookie::CookieJar::new()
        .signed(&key)
        .verify(Cookie::new(COOKIE_NAME, value.to_owned()));
    let Some(expires) = verified.and_then(|cookie| cookie.value().parse::<u64>().ok()) else {
        return false;
    };
    expires > now_unix && expires <= now_unix.saturating_add(lifetime.as_secs())
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

/// The session cookie with its attributes, `value` and `max_age` left to the caller.
fn session_cookie(value: String, max_age: Duration) -> cookie::CookieBuilder<'static> {
    let max_age = cookie::time::Duration::try_from(max_age).unwrap_or(cookie::time::Duration::MAX);
    Cookie::build((COOKIE_NAME, value))
        .path("/admin/")
        .max_age(max_age)
        .http_only(true)
        .same_site(SameSite::Strict)
}

/// The `Set-Cookie` value starting a session.
pub fn set_cookie(value: &str, lifetime: Duration, headers: &HeaderMap) -> String {
    session_cookie(value.to_owned(), lifetime)
        .secure(behind_https(headers))
        .build()
        .to_string()
}

/// The `Set-Cookie` value ending a session.
pub fn clear_cookie() -> String {
    session_cookie(String::new(), Duration::ZERO)
        .build()
        .to_string()
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
        assert!(!session_valid(&value, TOKEN, 5_000, DAY), "long expired");
        assert!(
            !session_valid(&value, TOKEN, 1, Duration::from_secs(60)),
            "outlives the lifetime"
        );
        assert!(!session_valid("garbage", TOKEN, 999, DAY));
        assert!(!session_valid("", TOKEN, 999, DAY));
        assert!(!value.contains(TOKEN));
        assert!(session_value("", 1_000).is_none());
        assert!(!session_valid(&value, "", 999, DAY));
    }

    #[test]
    fn another_admin_token_is_refused() {
        let value = session_value(TOKEN, 1_000).unwrap();
        assert!(!session_valid(&value, "another-token-0123456789", 999, DAY));
        let theirs = session_value("another-token-0123456789", 1_000).unwrap();
        assert_ne!(theirs, value);
        assert!(!session_valid(&theirs, TOKEN, 999, DAY));
    }

    #[test]
    fn tampered_values_are_refused() {
        let value = session_value(TOKEN, 1_000).unwrap();
        assert!(value.ends_with("1000"), "{value}");
        let (tag, expiry) = value.split_at(value.len() - 4);
        assert_eq!(expiry, "1000");
        // The expiry moved on, the tag kept.
        assert!(!session_valid(&format!("{tag}2000"), TOKEN, 999, DAY));
        assert!(!session_valid(&format!("{tag}1000x"), TOKEN, 999, DAY));
        // One character of the tag changed.
        for index in [0, tag.len() / 2, tag.len() - 2] {
            let mut bytes = value.clone().into_bytes();
            bytes[index] = if bytes[index] == b'A' { b'B' } else { b'A' };
            let forged = String::from_utf8(bytes).unwrap();
            assert!(!session_valid(&forged, TOKEN, 999, DAY), "{forged}");
        }
        // Another session's tag on this expiry.
        let other = session_value(TOKEN, 2_000).unwrap();
        let (other_tag, _) = other.split_at(other.len() - 4);
        assert!(!session_valid(&format!("{other_tag}1000"), TOKEN, 999, DAY));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, "a=b; authz_admin=1.xyz; c=d".parse().unwrap());
        assert_eq!(cookie(&headers), Some("1.xyz"));
        assert_eq!(cookie(&HeaderMap::new()), None);
        assert_eq!(
            set_cookie("v", DAY, &headers),
            "authz_admin=v; HttpOnly; SameSite=Strict; Path=/admin/; Max-Age=86400"
        );
        assert_eq!(
            clear_cookie(),
            "authz_admin=; HttpOnly; SameSite=Strict; Path=/admin/; Max-Age=0"
        );
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        assert_eq!(
            set_cookie("v", DAY, &headers),
            "authz_admin=v; HttpOnly; SameSite=Strict; Secure; Path=/admin/; Max-Age=86400"
        );
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
