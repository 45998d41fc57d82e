//! `GET /health`: the worker's own status and whether the origin answers.
//!
//! Always 200 while the worker runs (it can still serve cached decisions): `status` is `ok`
//! when the KV binding is present, `AUTHZ_JWKS` (if set) is a key set the core accepts, and the
//! origin answers `ok`, else `degraded`. `jwt.configured` says whether any end-user token can
//! be accepted (a secret or a key set is bound), `jwt.keys` how many keys the set holds. The
//! endpoint is anonymous: why the origin does not answer is logged, not returned.

use serde_json::json;
use worker::{Env, Response};

use super::json_response;
use crate::bindings;
use crate::error::EdgeError;
use crate::origin;

/// Answers the health document.
pub async fn handle(env: &Env) -> Result<Response, EdgeError> {
    let kv_bound = bindings::cache(env).is_ok();
    let key_set = bindings::jwt_key_set(env);
    let jwks_keys = key_set
        .as_ref()
        .ok()
        .and_then(|set| set.as_ref().map(|set| set.keys().len()))
        .unwrap_or(0);
    let jwt_configured = bindings::jwt_key(env).is_some() || jwks_keys > 0;
    let origin = match bindings::origin(env) {
        Ok(config) => origin::health(&config).await,
        Err(error) => origin::OriginHealth {
            reachable: false,
            status: None,
            http_status: None,
            error: Some(format!("{error:?}")),
        },
    };
    // Why the origin is unreachable goes to the log, never to the (anonymous) caller: it names
    // addresses and errors of the deployment.
    if let Some(error) = &origin.error {
        worker::console_warn!("/health: {error}");
    }
    let healthy =
        kv_bound && key_set.is_ok() && origin.reachable && origin.status.as_deref() == Some("ok");
    json_response(
        &json!({
            "status": if healthy { "ok" } else { "degraded" },
            "version": env!("CARGO_PKG_VERSION"),
            "kv": { "bound": kv_bound },
            "jwt": { "configured": jwt_configured, "keys": jwks_keys },
            "origin": {
                "reachable": origin.reachable,
                "status": origin.status,
                "http_status": origin.http_status,
            },
        }),
        &[("cache-control", "no-store")],
    )
}
