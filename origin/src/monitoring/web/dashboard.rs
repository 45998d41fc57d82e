//! The admin JSON endpoints of API.md: the performance dashboard, the targets, the cache and
//! database health, and `/admin/performance-dashboard` (the four in one document, under the
//! deployment guide's keys). Each checks the admin token first (`auth::authorize_admin`: 401
//! without a valid bearer token, 403 for other valid credentials), so an unauthorized caller
//! learns nothing but the error. Figures are the window's last `AUTHZ_ALERT_WINDOW_SECONDS`.
//!
//! A target is `met` when its measured value is within the warning limit of its
//! `performance_thresholds` row, unmet beyond it, and null without data;
//! `performance_tier_acceptable` is whether the tier (see `tier`) is `acceptable` or better,
//! null without decisions.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};

use crate::auth::authorize_admin;
use crate::db::Workload;
use crate::error::AppError;
use crate::monitoring::Handles;
use crate::monitoring::background::alerts::{Level, Threshold, load_thresholds};
use crate::monitoring::background::pools::{postgres_round_trip, snapshot};
use crate::monitoring::measure::tier::tier_of;
use crate::monitoring::measure::window::unix_now;
use crate::openapi::schemas::{ErrorSchema, MonitoringDocument};

/// `GET /api/v1/system/performance/dashboard`.
#[utoipa::path(
    get,
    path = "/api/v1/system/performance/dashboard",
    tag = "monitoring",
    summary = "live performance metrics",
    responses(
        (status = 200, description = "latency percentiles, throughput, cache hit rates per tier, pool use, error rate and `performance_tier`", body = MonitoringDocument),
        (status = 401, description = "missing or invalid bearer token", body = ErrorSchema),
        (status = 403, description = "valid credentials that are not the admin token, or admin endpoints disabled", body = ErrorSchema),
    ),
    security(("admin_token" = [])),
)]
pub async fn performance_dashboard(
    State(state): State<Handles>,
    headers: HeaderMap,
) -> Result<Json<Value>, AppError> {
    authorize_admin(&headers, &state.config)?;
    Ok(Json(performance(&state)))
}

/// `GET /api/v1/system/performance/targets`.
#[utoipa::path(
    get,
    path = "/api/v1/system/performance/targets",
    tag = "monitoring",
    summary = "performance targets",
    responses(
        (status = 200, description = "each target with its measured value and met/unmet, plus `performance_tier_acceptable`", body = MonitoringDocument),
        (status = 401, description = "missing or invalid bearer token", body = ErrorSchema),
        (status = 403, description = "valid credentials that are not the admin token, or admin endpoints disabled", body = ErrorSchema),
    ),
    security(("admin_token" = [])),
)]
pub async fn performance_targets(
    State(state): State<Handles>,
    headers: HeaderMap,
) -> Result<Json<Value>, AppError> {
    authorize_admin(&headers, &state.config)?;
    Ok(Json(targets(&state).await))
}

/// `GET /api/v1/system/cache/health`.
#[utoipa::path(
    get,
    path = "/api/v1/system/cache/health",
    tag = "monitoring",
    summary = "cache health",
    responses(
        (status = 200, description = "each Redis tier and L1: reachable, latency, hit rate, circuit-breaker state", body = MonitoringDocument),
        (status = 401, description = "missing or invalid bearer token", body = ErrorSchema),
        (status = 403, description = "valid credentials that are not the admin token, or admin endpoints disabled", body = ErrorSchema),
    ),
    security(("admin_token" = [])),
)]
pub async fn cache_health(
    State(state): State<Handles>,
    headers: HeaderMap,
) -> Result<Json<Value>, AppError> {
    authorize_admin(&headers, &state.config)?;
    Ok(Json(
        crate::monitoring::background::caches::health(&state).await,
    ))
}

/// `GET /api/v1/system/database/health`.
#[utoipa::path(
    get,
    path = "/api/v1/system/database/health",
    tag = "monitoring",
    summary = "database pool health",
    responses(
        (status = 200, description = "each pool: size, in use, idle, waiters, utilisation, errors; with a replica, its lag (`replica`: reachable, lag_bytes, lag_seconds, revisions_behind, replay_paused) and how its reads went (`replica_reads`: used, stale, failed, skipped)", body = MonitoringDocument),
        (status = 401, description = "missing or invalid bearer token", body = ErrorSchema),
        (status = 403, description = "valid credentials that are not the admin token, or admin endpoints disabled", body = ErrorSchema),
    ),
    security(("admin_token" = [])),
)]
pub async fn database_health(
    State(state): State<Handles>,
    headers: HeaderMap,
) -> Result<Json<Value>, AppError> {
    authorize_admin(&headers, &state.config)?;
    Ok(Json(database(&state).await))
}

/// `GET /admin/performance-dashboard`: the four documents in one.
#[utoipa::path(
    get,
    path = "/admin/performance-dashboard",
    tag = "monitoring",
    summary = "all monitoring documents",
    responses(
        (status = 200, description = "the dashboard, targets, cache health and database health in one object", body = MonitoringDocument),
        (status = 401, description = "missing or invalid bearer token", body = ErrorSchema),
        (status = 403, description = "valid credentials that are not the admin token, or admin endpoints disabled", body = ErrorSchema),
    ),
    security(("admin_token" = [])),
)]
pub async fn admin_performance_dashboard(
    State(state): State<Handles>,
    headers: HeaderMap,
) -> Result<Json<Value>, AppError> {
    authorize_admin(&headers, &state.config)?;
    let (targets, cache, database) = tokio::join!(
        targets(&state),
        crate::monitoring::background::caches::health(&state),
        database(&state)
    );
    Ok(Json(json!({
        "performance_analytics": performance(&state),
        "current_targets": targets,
        "cache_health": cache,
        "database_health": database,
    })))
}

/// The live performance document.
pub fn performance(state: &Handles) -> Value {
    let now = unix_now();
    let window = state.monitoring.config().alert_window;
    let summary = state.monitoring.window().summary(window, now);
    let counts = &summary.counts;
    let tier = tier_of(&summary).map(|tier| tier.as_str());
    let pools = snapshot(state.decider.pools());
    let errors_by_code: serde_json::Map<String, Value> = counts
        .errors
        .iter()
        .map(|(code, count)| ((*code).to_owned(), json!(count)))
        .collect();
    let board = state.monitoring.alerts().view();
    json!({
        "window_seconds": window.as_secs(),
        "covered_seconds": summary.seconds,
        "uptime_seconds": state.started_at.elapsed().as_secs(),
        "performance_tier": tier,
        "current_performance": {
            "performance_tier": tier,
            "avg_latency_ms": summary.avg_ms,
            "p95_latency_ms": summary.p95_ms,
            "cache_hit_rate": summary.cache_hit_rate,
            "error_rate": summary.error_rate,
        },
        "latency_ms": {
            "avg": summary.avg_ms,
            "p50": summary.p50_ms,
            "p95": summary.p95_ms,
            "p99": summary.p99_ms,
            "max": summary.max_ms,
        },
        "throughput_rps": summary.throughput_rps,
        "decisions": counts.decisions(),
        "requests": counts.requests(),
        "granted": counts.granted,
        "denied": counts.denied,
        "sources": { "l1": counts.l1, "l2": counts.l2, "db": counts.db },
        "hit_rates": {
            "l1": summary.l1_hit_rate,
            "l2": summary.l2_hit_rate,
            "cache": summary.cache_hit_rate,
            "edge": null,
        },
        "error_rate": summary.error_rate,
        "errors_by_code": errors_by_code,
        "pool_utilization": summary.pool_utilization,
        "pools": pools.iter().map(|pool| json!({
            "name": pool.name,
            "in_use": pool.in_use,
            "max_size": pool.max_size,
            "utilization": pool.utilization,
            "waiters": pool.waiters,
        })).collect::<Vec<_>>(),
        "open_alerts": board.open,
        "alerts_evaluated_at_unix": board.evaluated_at,
        "alerts_evaluator": board.evaluator,
    })
}

/// Fresh thresholds from Postgres (read pool, 2 s), else the evaluator's last copy.
async fn current_thresholds(state: &Handles) -> (Vec<Threshold>, &'static str) {
    let fresh = tokio::time::timeout(Duration::from_secs(2), async {
        let client = state
            .decider
            .pools()
            .named(Workload::Read)
            .get()
            .await
            .ok()?;
        load_thresholds(&client).await.ok()
    })
    .await
    .ok()
    .flatten();
    match fresh {
        Some(thresholds) => (thresholds, "database"),
        None => {
            let board = state.monitoring.alerts().view();
            let source = if board.evaluated_at.is_some() {
                "cached"
            } else {
                "unavailable"
            };
            (board.thresholds, source)
        }
    }
}

/// Each target with its measured value and whether it is met.
pub async fn targets(state: &Handles) -> Value {
    let window = state.monitoring.config().alert_window;
    let summary = state.monitoring.window().summary(window, unix_now());
    let tier = tier_of(&summary);
    let (thresholds, source) = current_thresholds(state).await;
    let mut measured = 0;
    let mut met_count = 0;
    let targets: Vec<Value> = thresholds
        .iter()
        .map(|threshold| {
            let value = summary.metric(&threshold.metric_name);
            let level = threshold.level(value);
            let met = match level {
                Level::Ok => Some(true),
                Level::Warning | Level::Critical => Some(false),
                Level::NoData => None,
            };
            measured += usize::from(met.is_some());
            met_count += usize::from(met == Some(true));
            json!({
                "metric_name": threshold.metric_name,
                "measured_value": value,
                "unit": threshold.unit,
                "comparison": threshold.comparison,
                "warning_value": threshold.warning_value,
                "critical_value": threshold.critical_value,
                "level": level.as_str(),
                "met": met,
                "description": threshold.description,
            })
        })
        .collect();
    json!({
        "window_seconds": window.as_secs(),
        "performance_tier": tier.map(|tier| tier.as_str()),
        "performance_tier_acceptable": tier.map(|tier| tier.is_acceptable()),
        "targets_met": met_count,
        "targets_measured": measured,
        "all_measured_targets_met": (measured > 0).then_some(met_count == measured),
        "thresholds_source": source,
        "targets": targets,
    })
}

/// Each pool's health and a Postgres round trip.
pub async fn database(state: &Handles) -> Value {
    let (round_trip, replica) = tokio::join!(
        postgres_round_trip(state.decider.pools()),
        crate::db::replica::measure(state.decider.pools())
    );
    let pools = snapshot(state.decider.pools());
    let busiest = pools
        .iter()
        .map(|pool| pool.utilization)
        .fold(0.0, f64::max);
    let waiting: usize = pools.iter().map(|pool| pool.waiters).sum();
    let status = match &round_trip {
        Err(_) => "down",
        Ok(_) if busiest >= 0.8 || waiting > 0 => "degraded",
        Ok(_) => "healthy",
    };
    json!({
        "status": status,
        "postgres": {
            "reachable": round_trip.is_ok(),
            "latency_ms": round_trip.as_ref().ok(),
        },
        "replica_configured": state.decider.pools().has_replica(),
        "replica": replica,
        "replica_reads": state.decider.replica_reads(),
        "highest_utilization": busiest,
        "pools": pools,
    })
}
