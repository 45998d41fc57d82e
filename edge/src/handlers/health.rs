//! `GET /health`: the worker's own status and whether the origin answers.
//!
//! Always 200 while the worker runs (it can still serve cached decisions): `status` is `ok`
//! when the KV binding is present and the origin answers `ok`, else `degraded`.

use serde_json::json;
use worker::{Env, Response};

use super::json_response;
use crate::bindings;
use crate::error::EdgeError;
use crate::origin;

/// Answers the health document.
pub async fn handle(env: &Env) -> Result<Response, EdgeError> {
    let kv_bound = bindings::cache(env).is_ok();
    let origin = match bindings::origin(env) {
        Ok(config) => origin::health(&config).await,
        Err(error) => origin::OriginHealth {
            reachable: false,
            status: None,
            http_status: None,
            error: Some(format!("{error:?}")),
        },
    };
    let healthy = kv_bound && origin.reachable && origin.status.as_deref() == Some("ok");
    json_response(
        &json!({
            "status": if healthy { "ok" } else { "degraded" },
            "version": env!("CARGO_PKG_VERSION"),
            "kv": { "bound": kv_bound },
            "jwt": { "configured": bindings::jwt_key(env).is_some() },
            "origin": {
                "reachable": origin.reachable,
                "status": origin.status,
                "http_status": origin.http_status,
                "error": origin.error,
            },
        }),
        &[("cache-control", "no-store")],
    )
}
