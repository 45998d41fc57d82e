//! The HTTP surface: API.md's routes, the JSON error fallback and the request metrics layer.
//! Handlers only translate HTTP to and from the decider.

pub mod authorize;
pub mod health;
pub mod request;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
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
        .layer(RecordLayer {
            monitoring: Arc::clone(&state.monitoring),
        })
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

/// The statuses this API answers, and their labels.
const STATUSES: [u16; 8] = [200, 400, 401, 403, 404, 413, 429, 503];
const STATUS_LABELS: [&str; 8] = ["200", "400", "401", "403", "404", "413", "429", "503"];

/// The request metrics of the decision routes, each registered at its first use (so
/// `/metrics` shows the same series as before): a labelled `histogram!` or `counter!` hashes
/// its labels and looks the series up in the registry on every call; a handle does not.
struct RouteMetrics {
    /// `authz_http_request_duration_seconds{route}`.
    duration: std::sync::OnceLock<metrics::Histogram>,
    /// `authz_http_requests_total{route,status}`, by the index of the status in `STATUSES`.
    requests: [std::sync::OnceLock<metrics::Counter>; 8],
}

/// `/v1/authorize` and `/v1/authorize/batch`, in that order.
const HOT_ROUTES: [&str; 2] = ["/v1/authorize", "/v1/authorize/batch"];

static HOT_ROUTE_METRICS: [RouteMetrics; 2] = [const {
    RouteMetrics {
        duration: std::sync::OnceLock::new(),
        requests: [const { std::sync::OnceLock::new() }; 8],
    }
}; 2];

/// Records each request's latency and status under its route template (never the raw path),
/// and each error response of the decision routes, by code, in the monitoring window. A tower
/// layer rather than `middleware::from_fn`, which clones the route's service and boxes a future
/// on every request.
#[derive(Clone)]
struct RecordLayer {
    monitoring: Arc<crate::monitoring::Monitoring>,
}

impl<S> tower::Layer<S> for RecordLayer {
    type Service = Record<S>;

    fn layer(&self, inner: S) -> Record<S> {
        Record {
            inner,
            monitoring: Arc::clone(&self.monitoring),
        }
    }
}

/// The service of [`RecordLayer`].
#[derive(Clone)]
struct Record<S> {
    inner: S,
    monitoring: Arc<crate::monitoring::Monitoring>,
}

impl<S> tower::Service<Request> for Record<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = RecordFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let route = route_of(&request);
        RecordFuture {
            inner: self.inner.call(request),
            route,
            started: Instant::now(),
            monitoring: Arc::clone(&self.monitoring),
        }
    }
}

pin_project_lite::pin_project! {
    /// The route's response future, recorded when it completes.
    struct RecordFuture<F> {
        #[pin]
        inner: F,
        route: &'static str,
        started: Instant,
        monitoring: Arc<crate::monitoring::Monitoring>,
    }
}

impl<F> Future for RecordFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        record_response(this.monitoring, this.route, *this.started, &response);
        Poll::Ready(Ok(response))
    }
}

/// The route template a request matched, as a `'static` label (low cardinality).
fn route_of(request: &Request) -> &'static str {
    request
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
        })
}

fn record_response(
    monitoring: &crate::monitoring::Monitoring,
    route: &'static str,
    started: Instant,
    response: &Response,
) {
    if matches!(route, "/v1/authorize" | "/v1/authorize/batch")
        && (response.status().is_client_error() || response.status().is_server_error())
    {
        let code = response
            .extensions()
            .get::<crate::error::ErrorCode>()
            .map_or("other", |code| code.0);
        monitoring.record_error(code, response.status().is_server_error());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    let hot = HOT_ROUTES.iter().position(|hot| *hot == route);
    match (hot, STATUSES.iter().position(|known| *known == status)) {
        // The decision routes with a status of this API: registered handles, no registry lookup.
        (Some(index), Some(status)) => {
            let handles = &HOT_ROUTE_METRICS[index];
            let route = HOT_ROUTES[index];
            handles
                .duration
                .get_or_init(
                    || metrics::histogram!("authz_http_request_duration_seconds", "route" => route),
                )
                .record(elapsed);
            handles.requests[status]
                .get_or_init(|| {
                    metrics::counter!("authz_http_requests_total", "route" => route,
                        "status" => STATUS_LABELS[status])
                })
                .increment(1);
        }
        _ => {
            // Static labels for the statuses this API answers; any other is rendered per call.
            let status: std::borrow::Cow<'static, str> =
                match STATUSES.iter().position(|known| *known == status) {
                    Some(index) => STATUS_LABELS[index].into(),
                    None => status.to_string().into(),
                };
            metrics::histogram!("authz_http_request_duration_seconds", "route" => route)
                .record(elapsed);
            metrics::counter!("authz_http_requests_total", "route" => route, "status" => status)
                .increment(1);
        }
    }
}
