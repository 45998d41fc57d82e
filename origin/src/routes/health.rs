//! `GET /api/v1/health`: `ok`, `degraded` (a Redis tier unreachable or its breaker open, or
//! the change listener disconnected) or `down` (Postgres unreachable, 503).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

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
        (status = 200, description = "ok or degraded", body = HealthSchema),
        (status = 503, description = "down: Postgres unreachable", body = HealthSchema),
    ),
)]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let postgres = postgres_round_trip(state.decider.pools()).await;
    let mut redis = serde_json::Map::new();
    let mut redis_ok = true;
    for (name, tier) in state.redis_tiers.iter() {
        let ping = tier.ping().await;
        redis_ok &= ping.is_some();
        redis.insert(
            name.as_str().to_owned(),
            json!({
                "reachable": ping.is_some(),
                "latency_ms": ping.map(|d| d.as_secs_f64() * 1_000.0),
                "breaker": tier.breaker_state().as_str(),
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
