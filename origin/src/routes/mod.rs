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

/// Every route the router serves, as `(method, path)`: the one list the OpenAPI document is
/// generated from (`openapi::document`). A route served but missing here, or listed here but
/// not served, fails the integration test `openapi`; add both together.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/authorize"),
    ("POST", "/v1/authorize/batch"),
    ("GET", "/api/v1/health"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    // Monitoring (`crate::monitoring::routes`).
    ("GET", "/api/v1/system/performance/dashboard"),
    ("GET", "/api/v1/system/performance/targets"),
    ("GET", "/api/v1/system/cache/health"),
    ("GET", "/api/v1/system/database/health"),
    ("GET", "/admin/performance-dashboard"),
    ("GET", "/admin/"),
    ("GET", "/admin/login"),
    ("POST", "/admin/login"),
    ("POST", "/admin/login-link"),
    ("POST", "/admin/logout"),
];

/// The origin's router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/authorize", post(authorize::authorize))
        .route("/v1/authorize/batch", post(authorize::authorize_batch))
        .route("/api/v1/health", get(health::health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(crate::openapi::serve))
        .merge(crate::monitoring::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_request,
        ))
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

/// Records each request's latency and status under its route template (never the raw path),
/// and each error response of the decision routes, by code, in the monitoring window.
async fn record_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |path| match path.as_str() {
            "/v1/authorize" => "/v1/authorize",
            "/v1/authorize/batch" => "/v1/authorize/batch",
            "/api/v1/health" => "/api/v1/health",
            "/metrics" => "/metrics",
            "/openapi.json" => "/openapi.json",
            // Every other route is a template of ROUTES: low cardinality as it is.
            other => ROUTES
                .iter()
                .find(|(_, path)| *path == other)
                .map_or("other", |(_, path)| path),
        });
    let started = Instant::now();
    let response = next.run(request).await;
    if matches!(route, "/v1/authorize" | "/v1/authorize/batch")
        && (response.status().is_client_error() || response.status().is_server_error())
    {
        let code = response
            .extensions()
            .get::<crate::error::ErrorCode>()
            .map_or("other", |code| code.0);
        state
            .monitoring
            .record_error(code, response.status().is_server_error());
    }
    // Static labels for the statuses this API answers; any other is rendered once per call.
    let status: std::borrow::Cow<'static, str> = match response.status().as_u16() {
        200 => "200".into(),
        400 => "400".into(),
        401 => "401".into(),
        403 => "403".into(),
        404 => "404".into(),
        413 => "413".into(),
        429 => "429".into(),
        503 => "503".into(),
        other => other.to_string().into(),
    };
    metrics::histogram!("authz_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("authz_http_requests_total", "route" => route, "status" => status)
        .increment(1);
    response
}
