//! Rate limits at the edge, with the Workers Rate Limiting binding (`[[ratelimits]]` in
//! `wrangler.toml`, emulated locally by workerd): every request counts once per token `sub`
//! and once per client address (`CF-Connecting-IP`), and a request that reaches the origin (a
//! miss or a bypass; a batch once, whatever it asks) counts again against tighter limits. Over a
//! limit: 429 `rate_limited` with `Retry-After` (API.md).
//!
//! The client address limit is checked before the token is verified, so a flood of bad tokens
//! is refused without verifying each; the `sub` limit after. A binding that is not bound leaves
//! that limit off; a binding that fails is logged and does not refuse the request: the limiter
//! protects capacity and never decides a grant (the decision is the origin's and the core's,
//! failing closed as ever). Background refreshes are not counted: the service asks, not the
//! caller. This module must not decide anything but whether to refuse for volume.

use authz_core::Principal;
use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::{Env, Request};

use crate::bindings::{
    AUTHZ_IP_MISS_RATE_LIMIT, AUTHZ_IP_RATE_LIMIT, AUTHZ_USER_MISS_RATE_LIMIT,
    AUTHZ_USER_RATE_LIMIT, RATE_LIMIT_PERIOD_SECONDS,
};
use crate::error::EdgeError;

/// The client address Cloudflare hands every request, when there is one.
pub fn client_address(request: &Request) -> Option<String> {
    request
        .headers()
        .get("cf-connecting-ip")
        .ok()
        .flatten()
        .filter(|address| !address.is_empty())
}

/// The key of a token's principal (`None` for anonymous: only its address counts).
pub fn user_key(principal: Principal) -> Option<String> {
    principal.user_id().map(|user| format!("u:{user}"))
}

/// The key of a client address.
pub fn address_key(address: &str) -> String {
    format!("ip:{address}")
}

/// Counts one request under `key` against the limiter bound as `binding`: `Ok(())` under the
/// limit, not bound or failing (logged), else 429.
async fn count(env: &Env, binding: &str, key: String) -> Result<(), EdgeError> {
    let Ok(limiter) = Reflect::get(env, &JsValue::from_str(binding)) else {
        return Ok(());
    };
    if limiter.is_undefined() || limiter.is_null() {
        return Ok(());
    }
    match ask(&limiter, key).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(EdgeError::RateLimited {
            retry_after_seconds: RATE_LIMIT_PERIOD_SECONDS,
        }),
        Err(error) => {
            worker::console_warn!("rate limiter {binding}: {error:?}");
            Ok(())
        }
    }
}

/// `await limiter.limit({ key })`, then its `success`.
async fn ask(limiter: &JsValue, key: String) -> Result<bool, JsValue> {
    let limit: Function = Reflect::get(limiter, &JsValue::from_str("limit"))?.dyn_into()?;
    let options = Object::new();
    Reflect::set(&options, &JsValue::from_str("key"), &JsValue::from(key))?;
    let promise: Promise = limit.call1(limiter, &options)?.dyn_into()?;
    let outcome = JsFuture::from(promise).await?;
    Ok(Reflect::get(&outcome, &JsValue::from_str("success"))?.as_bool() == Some(true))
}

/// The address limit on every request, before its token is looked at.
pub async fn request_by_address(env: &Env, address: Option<&str>) -> Result<(), EdgeError> {
    match address {
        Some(address) => count(env, AUTHZ_IP_RATE_LIMIT, address_key(address)).await,
        None => Ok(()),
    }
}

/// The `sub` limit on every request of a verified token.
pub async fn request_by_user(env: &Env, principal: Principal) -> Result<(), EdgeError> {
    match user_key(principal) {
        Some(key) => count(env, AUTHZ_USER_RATE_LIMIT, key).await,
        None => Ok(()),
    }
}

/// The tighter limits on a request about to reach the origin, by `sub` and by address.
pub async fn origin_call(
    env: &Env,
    principal: Principal,
    address: Option<&str>,
) -> Result<(), EdgeError> {
    if let Some(key) = user_key(principal) {
        count(env, AUTHZ_USER_MISS_RATE_LIMIT, key).await?;
    }
    if let Some(address) = address {
        count(env, AUTHZ_IP_MISS_RATE_LIMIT, address_key(address)).await?;
    }
    Ok(())
}
