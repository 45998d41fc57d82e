//! `GET /api/v1/health`: `ok`, `degraded` (a Redis tier unreachable or its breaker open, or
//! the change listener disconnected) or `down` (Postgres unreachable, 503).
//!
//! Anonymous callers (and any credential but the admin token) get `{"status"}` only, from a
//! probe at most [`SUMMARY_LIFETIME`] old: the details (revision, notice count, tiers,
//! latencies) would be a side channel on the write rate, and a probe of Postgres per call would
//! let anyone load it. The admin token gets the details, probed for the request.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::auth::authorize_admin;
use crate::cache::Ownership;

use crate::monitoring::background::pools::postgres_round_trip;
use crate::openapi::schemas::HealthSchema;
use crate::state::AppState;

/// The health document and its status code.
#[utoipa::path(
    get,
    path = "/api/v1/health",
    tag = "operations",
    summary = "liveness and dependencies",
    responses(
        (status = 200, description = "ok or degraded; the details only with the admin token", body = HealthSchema),
        (status = 503, description = "down: Postgres unreachable", body = HealthSchema),
    ),
    security((), ("admin_token" = [])),
)]
pub async fn health(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    if authorize_admin(&headers, &state.config).is_ok() {
        return details(&state).await;
    }
    let mut summary = state.health_summary.lock().await;
    let (code, status) = match *summary {
        Some((at, code, status)) if at.elapsed() < SUMMARY_LIFETIME => (code, status),
        _ => {
            let (code, Json(body)) = details(&state).await;
            let status = match body["status"].as_str() {
                Some("ok") => "ok",
                Some("degraded") => "degraded",
                _ => "down",
            };
            *summary = Some((Instant::now(), code, status));
            (code, status)
        }
    };
    (code, Json(json!({ "status": status })))
}

/// How long an anonymous caller's status may be reused.
pub const SUMMARY_LIFETIME: Duration = Duration::from_secs(1);

/// The health document with every detail, probed now.
async fn details(state: &AppState) -> (StatusCode, Json<Value>) {
    metrics::counter!("authz_health_probes_total").increment(1);
    let postgres = postgres_round_trip(state.decider.pools()).await;
    let mut redis = serde_json::Map::new();
    let mut redis_ok = true;
    for (name, tier) in state.redis_tiers.iter() {
        let ping = tier.ping().await;
        let ownership = tier.ownership();
        redis_ok &= ping.is_some() && matches!(ownership, Ownership::Claimed { .. });
        redis.insert(
            name.as_str().to_owned(),
            json!({
                "reachable": ping.is_some(),
                "latency_ms": ping.map(|d| d.as_secs_f64() * 1_000.0),
                "breaker": tier.breaker_state().as_str(),
                "owner": ownership.as_str(),
                "prefix": ownership.prefix(),
            }),
        );
    }
    let listener_connected = state.invalidation.is_connected();
    let status = match (&postgres, redis_ok && listener_connected) {
        (Err(_), _) => "down",
        (Ok(_), false) => "degraded",
        (Ok(_), true) => "ok",
    };
    let code = if status == "down" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started_at.elapsed().as_secs(),
        "postgres": {
            "reachable": postgres.is_ok(),
            "latency_ms": postgres.as_ref().ok(),
        },
        "redis": {
            "enabled": !state.redis_tiers.is_empty(),
            "tiers": redis,
        },
        "invalidation": {
            "listener_connected": listener_connected,
            "revision": state.invalidation.newest_revision(),
            "notices": state.invalidation.notices(),
        },
        "l1_entries": state.decider.l1_entries(),
    });
    (code, Json(body))
}
