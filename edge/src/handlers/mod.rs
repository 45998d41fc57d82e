//! The worker's routes, one module each, and the helpers they share: the clock and the JSON
//! responses. A handler reads its bindings, hands the request to `request` and the core, and
//! returns `Result<Response, EdgeError>`; `lib.rs` renders the error.

pub mod authorize;
pub mod batch;
pub mod health;

use authz_core::jwt::Keys;
use authz_core::{Principal, Timestamp};
use serde::Serialize;
use worker::{Env, Headers, Request, Response};

use crate::bindings;
pub use crate::clock::now;
use crate::error::EdgeError;
use crate::limits;
use crate::request;
use crate::webcrypto::WebCrypto;

/// The response header that tells which tier answered a single decision.
pub const CACHE_HEADER: &str = "x-authz-cache";

/// The request's `Authorization` header, if any.
pub fn authorization(request: &Request) -> Option<String> {
    request.headers().get("authorization").ok().flatten()
}

/// The request's principal at `now`: the bearer token verified with the bound keys (the HS256
/// secret, the JWKS key set) and policy, public-key signatures by WebCrypto. A binding that
/// does not parse is a 503 before any token is looked at, anonymous requests included.
pub async fn principal(
    request: &Request,
    env: &Env,
    now: Timestamp,
) -> Result<Principal, EdgeError> {
    let policy = bindings::token_policy(env)?;
    let keys = Keys {
        secret: policy.secret.as_ref(),
        set: policy.set.as_deref(),
    };
    request::principal(
        authorization(request).as_deref(),
        keys,
        &policy.config,
        now.as_seconds(),
        &WebCrypto,
    )
    .await
}

/// A request let in: its principal and its client address.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The verified token's principal (or anonymous).
    pub principal: Principal,
    /// `CF-Connecting-IP`, when present.
    pub address: Option<String>,
}

/// The request's principal, within the rate limits: the client address's limit first (a flood
/// of bad tokens is refused before each is verified), then the token (401), then its `sub`'s
/// limit (429).
pub async fn admit(request: &Request, env: &Env) -> Result<Admitted, EdgeError> {
    let address = limits::client_address(request);
    limits::request_by_address(env, address.as_deref()).await?;
    let principal = principal(request, env, now()).await?;
    limits::request_by_user(env, principal).await?;
    Ok(Admitted { principal, address })
}

/// A 200 JSON response with extra `headers` (name, value).
pub fn json_response<T: Serialize>(
    body: &T,
    headers: &[(&str, &str)],
) -> Result<Response, EdgeError> {
    let text = serde_json::to_string(body)
        .map_err(|error| EdgeError::Unavailable(format!("serializing the answer: {error}")))?;
    let all = Headers::new();
    let set = |name: &str, value: &str| {
        all.set(name, value)
            .map_err(|error| EdgeError::Unavailable(format!("setting header {name}: {error}")))
    };
    set("content-type", "application/json")?;
    for (name, value) in headers {
        set(name, value)?;
    }
    Ok(Response::builder()
        .with_status(200)
        .with_headers(all)
        .fixed(text.into_bytes()))
}
