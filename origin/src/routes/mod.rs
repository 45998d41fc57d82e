//! The HTTP surface: API.md's routes, the JSON error fallback and the request metrics layer.
//! Handlers only translate HTTP to and from the decider.

pub mod authorize;
pub mod health;
pub mod request;

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::error::AppError;
use crate::state::AppState;

/// The origin's router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/authorize", post(authorize::authorize))
        .route("/v1/authorize/batch", post(authorize::authorize_batch))
        .route("/api/v1/health", get(health::health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(middleware::from_fn(record_request))
        .with_state(state)
}

async fn not_found() -> AppError {
    AppError::NotFound
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// Records each request's latency and status under its route template (never the raw path).
async fn record_request(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |path| match path.as_str() {
            "/v1/authorize" => "/v1/authorize",
            "/v1/authorize/batch" => "/v1/authorize/batch",
            "/api/v1/health" => "/api/v1/health",
            "/metrics" => "/metrics",
            _ => "other",
        });
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("authz_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("authz_http_requests_total", "route" => route, "status" => status)
        .increment(1);
    response
}
