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

use std::sync::OnceLock;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::AppError;
use crate::openapi::schemas::MonitoringDocument;
use crate::state::AppState;

/// Every route with its OpenAPI operation: each handler's `#[utoipa::path]` gives its method
/// and path, so this one list is the router, the document and the metrics' route labels.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(crate::openapi::base())
        .routes(routes!(authorize::authorize))
        .routes(routes!(authorize::authorize_batch))
        .routes(routes!(health::health))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
        .merge(crate::monitoring::routes())
}

/// The OpenAPI document, built once.
pub fn document() -> &'static OpenApi {
    static DOCUMENT: OnceLock<OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(|| api().into_openapi())
}

/// Every `(METHOD, path)` the router serves, from the document.
pub fn served() -> Vec<(String, &'static str)> {
    let mut served = Vec::new();
    for (path, item) in &document().paths.paths {
        let methods = [
            ("GET", item.get.is_some()),
            ("POST", item.post.is_some()),
            ("PUT", item.put.is_some()),
            ("PATCH", item.patch.is_some()),
            ("DELETE", item.delete.is_some()),
            ("HEAD", item.head.is_some()),
            ("OPTIONS", item.options.is_some()),
        ];
        for (method, present) in methods {
            if present {
                served.push((method.to_owned(), path.as_str()));
            }
        }
    }
    served
}

/// The origin's router.
pub fn router(state: AppState) -> Router {
    let (router, _) = api().split_for_parts();
    router
        .fallback(not_found)
        .layer(RecordLayer {
            monitoring: Arc::clone(&state.monitoring),
        })
        .with_state(state)
}

async fn not_found() -> AppError {
    AppError::NotFound
}

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain")),
)]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// The OpenAPI document as JSON, rendered once.
fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        document()
            .to_json()
            .unwrap_or_else(|error| serde_json::json!({ "error": error.to_string() }).to_string())
    })
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    summary = "this document",
    responses((status = 200, description = "an OpenAPI 3.1 document", body = MonitoringDocument)),
)]
async fn openapi_json() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], document_json())
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
            // Every other route is a path of the document: low cardinality as it is.
            other => document()
                .paths
                .paths
                .keys()
                .find(|path| path.as_str() == other)
                .map_or("other", String::as_str),
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
