//! `GET /openapi.json`: the OpenAPI 3.1 document of the origin's HTTP API (`utoipa`).
//!
//! This module owns the document: the request, decision and error schemas (hand-written
//! [`ToSchema`] types mirroring API.md and `authz_core::wire`; the no_std core does not depend
//! on `utoipa`) and one operation per route. It must not serve or route anything itself.
//!
//! # Decisions
//!
//! * **One list of routes.** The document is generated from [`crate::routes::ROUTES`], the
//!   list the router is checked against: every `(method, path)` there gets the operation
//!   [`operation`] describes for it. The integration test `openapi` fails when a route is
//!   served but not in `ROUTES` (it reads the `.route(...)` calls of the sources and probes
//!   every method on the live router), when a route in `ROUTES` is not served, and when
//!   [`operation`] has no description for a route in `ROUTES`.
//! * **Vocabularies from the core.** The enums of the schemas (`resource_type`, `operation`,
//!   `access_method`, `effective_role`, `reason`, `source`) are built from the core's `ALL`
//!   lists, so the document cannot drift from what the service parses and writes.
//! * **Security.** Three bearer schemes: `service_token` (`AUTHZ_SERVICE_TOKEN`),
//!   `end_user_jwt` (HS256, `AUTHZ_JWT_SECRET`) and `admin_token` (`AUTHZ_ADMIN_TOKEN`), and
//!   the dashboard page's session cookie, `admin_session` (`authz_admin`).
//! * **Bodies the document does not pin down.** The monitoring documents (health details,
//!   dashboards, targets) are described as objects with their documented top-level fields;
//!   their inner shape is for diagnosis, not a contract (API.md fixes only what it lists).

use std::borrow::Cow;
use std::sync::OnceLock;

use authz_core::wire::{MAX_BATCH_CHECKS, Source};
use authz_core::{AccessMethod, DenyReason, Operation as CoreOperation, ResourceType, Role};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde_json::json;
use utoipa::openapi::path::{Operation, OperationBuilder};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, HttpMethod, InfoBuilder, OpenApi, OpenApiBuilder, Paths,
    Ref, RefOr, ResponseBuilder,
};
use utoipa::{PartialSchema, ToSchema};

use crate::routes::ROUTES;

/// A string schema whose values are one of the core vocabulary's wire strings.
macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident, $description:literal, $values:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some($description))
                    .enum_values(Some($values))
                    .into()
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

vocabulary!(
    /// `resource_type`.
    ResourceTypeName,
    "the kind of resource asked about",
    ResourceType::ALL.iter().map(|value| value.as_str())
);
vocabulary!(
    /// `operation`.
    OperationName,
    "what the principal wants to do",
    CoreOperation::ALL.iter().map(|value| value.as_str())
);
vocabulary!(
    /// `access_method`.
    AccessMethodName,
    "the strongest relationship that grants (null on a deny)",
    AccessMethod::ALL.iter().map(|value| value.as_str())
);
vocabulary!(
    /// `effective_role`.
    RoleName,
    "the role of that relationship (null on a deny)",
    Role::ALL.iter().map(|value| value.as_str())
);
vocabulary!(
    /// `reason`.
    DenyReasonName,
    "why not (null on a grant)",
    DenyReason::ALL.iter().map(|value| value.as_str())
);
vocabulary!(
    /// `source`.
    SourceName,
    "which tier answered: for diagnosis, clients must not depend on it",
    [Source::L1, Source::L2, Source::Db, Source::Edge]
        .into_iter()
        .map(|source| serde_json::to_value(source).unwrap_or_default())
);
vocabulary!(
    /// `status` of `/api/v1/health`.
    HealthStatus,
    "ok, degraded (a Redis tier or the change listener down) or down (Postgres unreachable, 503)",
    ["ok", "degraded", "down"]
);
vocabulary!(
    /// `error.code`: API.md's error codes.
    ErrorCode,
    "a short static code, also the metrics label",
    ERROR_CODES.iter().copied()
);

/// Every `error.code` the origin answers with (API.md's table, plus `not_found` for an unknown
/// path).
pub const ERROR_CODES: &[&str] = &[
    "invalid_uuid",
    "invalid_resource_type",
    "invalid_operation",
    "invalid_request",
    "unauthenticated",
    "forbidden",
    "not_found",
    "payload_too_large",
    "rate_limited",
    "unavailable",
];

/// One question: `POST /v1/authorize`'s body, and each element of a batch's `checks`.
#[derive(ToSchema)]
#[schema(as = AuthorizeRequest)]
pub struct AuthorizeRequestSchema {
    /// The principal: a user uuid, or null for anonymous. With an end-user JWT it may be
    /// omitted (the principal is the token's `sub`) or must equal `sub`.
    #[schema(format = Uuid, nullable, required = false)]
    pub user_id: Option<String>,
    /// The kind of resource.
    pub resource_type: ResourceTypeName,
    /// The resource's uuid.
    #[schema(format = Uuid)]
    pub resource_id: String,
    /// The operation.
    pub operation: OperationName,
    /// Refuse to answer from data older than this revision (read-your-writes).
    #[schema(minimum = 0, required = false)]
    pub min_revision: Option<u64>,
}

/// `POST /v1/authorize/batch`'s body.
#[derive(ToSchema)]
#[schema(as = BatchRequest)]
pub struct BatchRequestSchema {
    /// Up to 100 questions; each counts against the caller's rate limit.
    #[schema(max_items = 100)]
    pub checks: Vec<AuthorizeRequestSchema>,
}

/// API.md's decision object.
#[derive(ToSchema)]
#[schema(as = Decision)]
pub struct DecisionSchema {
    /// Whether the operation is allowed.
    pub granted: bool,
    /// On a grant, the strongest method that grants; null on a deny.
    #[schema(nullable, required = true)]
    pub access_method: Option<AccessMethodName>,
    /// On a grant, that method's role; null on a deny.
    #[schema(nullable, required = true)]
    pub effective_role: Option<RoleName>,
    /// On a deny, why; null on a grant.
    #[schema(nullable, required = true)]
    pub reason: Option<DenyReasonName>,
    /// The data revision the decision was computed at.
    #[schema(minimum = 0)]
    pub revision: u64,
    /// Null unless the grant rests on something that expires (a share): its expiry, RFC 3339.
    #[schema(format = DateTime, nullable, required = true)]
    pub valid_until: Option<String>,
    /// How long the answer may be cached, in milliseconds.
    #[schema(minimum = 0)]
    pub ttl_ms: u64,
    /// Which tier answered.
    pub source: SourceName,
}

/// `POST /v1/authorize/batch`'s answer.
#[derive(ToSchema)]
#[schema(as = BatchResponse)]
pub struct BatchResponseSchema {
    /// One decision per check, in order.
    pub results: Vec<DecisionSchema>,
}

/// The error inside API.md's error shape.
#[derive(ToSchema)]
#[schema(as = ErrorDetail)]
pub struct ErrorDetailSchema {
    /// The code.
    pub code: ErrorCode,
    /// What was expected, quoting the bad input (lowercase, no trailing period).
    pub message: String,
    /// The input field at fault, when one is (e.g. `checks[3].resource_id`); absent otherwise.
    #[schema(required = false, nullable = false)]
    pub field: Option<String>,
}

/// API.md's error shape: every error is `{"error": {...}}`.
#[derive(ToSchema)]
#[schema(as = Error)]
pub struct ErrorSchema {
    /// The error.
    pub error: ErrorDetailSchema,
}

/// `GET /api/v1/health`'s answer.
#[derive(ToSchema)]
#[schema(as = Health)]
pub struct HealthSchema {
    /// The overall status.
    pub status: HealthStatus,
    /// The origin's version.
    pub version: String,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// `{"reachable", "latency_ms"}`.
    #[schema(value_type = Object)]
    pub postgres: (),
    /// `{"enabled", "tiers": {name: {"reachable", "latency_ms", "breaker"}}}`.
    #[schema(value_type = Object)]
    pub redis: (),
    /// `{"listener_connected", "revision", "notices"}`.
    #[schema(value_type = Object)]
    pub invalidation: (),
    /// Decisions held in process.
    pub l1_entries: u64,
}

fn schema_ref<T: ToSchema>() -> Ref {
    Ref::from_schema_name(T::name())
}

fn json_response(description: &str, schema: impl Into<RefOr<Schema>>) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(schema)).build(),
        )
        .build()
}

fn html_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "text/html",
            ContentBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build(),
        )
        .build()
}

fn error_response(description: &str) -> utoipa::openapi::Response {
    json_response(description, schema_ref::<ErrorSchema>())
}

fn object(description: &str) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(description))
        .into()
}

fn secured(builder: OperationBuilder, schemes: &[&str]) -> OperationBuilder {
    schemes.iter().fold(builder, |builder, scheme| {
        builder.security(SecurityRequirement::new(*scheme, Vec::<String>::new()))
    })
}

fn authorize_operation(summary: &str, request: Ref, response: Ref, batch: bool) -> Operation {
    let mut builder = OperationBuilder::new()
        .tag("authorize")
        .summary(Some(summary))
        .request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(utoipa::openapi::Required::True))
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(request)).build(),
                )
                .build(),
        ))
        .response(
            "200",
            json_response("the decision (a deny is a 200 too)", response),
        )
        .response("400", error_response("malformed input; `field` names it"))
        .response(
            "401",
            error_response("missing, malformed, expired or wrongly signed credentials"),
        )
        .response(
            "403",
            error_response("an end-user token asking about another principal"),
        );
    builder = builder
        .response(
            "413",
            error_response(if batch {
                "body over 64 KiB or more than 100 checks"
            } else {
                "body over 64 KiB"
            }),
        )
        .response(
            "429",
            ResponseBuilder::new()
                .description(
                    "over a rate limit (per end user, per client IP, or the service limit when \
                     configured); `Retry-After` says when to retry",
                )
                .header(
                    "Retry-After",
                    utoipa::openapi::header::HeaderBuilder::new()
                        .schema(
                            ObjectBuilder::new()
                                .schema_type(Type::Integer)
                                .minimum(Some(1)),
                        )
                        .description(Some("whole seconds, at least 1"))
                        .build(),
                )
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(schema_ref::<ErrorSchema>()))
                        .build(),
                )
                .build(),
        )
        .response(
            "503",
            error_response("the service cannot decide now; never a guess"),
        );
    secured(builder, &["service_token", "end_user_jwt"]).build()
}

fn admin_json(summary: &str, description: &str) -> Operation {
    let builder = OperationBuilder::new()
        .tag("monitoring")
        .summary(Some(summary))
        .response("200", json_response(description, object(description)))
        .response("401", error_response("missing or invalid bearer token"))
        .response(
            "403",
            error_response(
                "valid credentials that are not the admin token, or admin endpoints disabled",
            ),
        );
    secured(builder, &["admin_token"]).build()
}

/// The operation served at `(method, path)`, or `None` when this module does not describe it
/// (the `openapi` tests fail then).
pub fn operation(method: &str, path: &str) -> Option<Operation> {
    let operation = match (method, path) {
        ("POST", "/v1/authorize") => authorize_operation(
            "one decision",
            schema_ref::<AuthorizeRequestSchema>(),
            schema_ref::<DecisionSchema>(),
            false,
        ),
        ("POST", "/v1/authorize/batch") => authorize_operation(
            "up to 100 decisions, in order",
            schema_ref::<BatchRequestSchema>(),
            schema_ref::<BatchResponseSchema>(),
            true,
        ),
        ("GET", "/api/v1/health") => OperationBuilder::new()
            .tag("operations")
            .summary(Some("liveness and dependencies"))
            .response(
                "200",
                json_response("ok or degraded", schema_ref::<HealthSchema>()),
            )
            .response(
                "503",
                json_response("down: Postgres unreachable", schema_ref::<HealthSchema>()),
            )
            .build(),
        ("GET", "/metrics") => OperationBuilder::new()
            .tag("operations")
            .summary(Some("Prometheus metrics"))
            .response(
                "200",
                ResponseBuilder::new()
                    .description("Prometheus text format 0.0.4")
                    .content(
                        "text/plain",
                        ContentBuilder::new()
                            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                            .build(),
                    )
                    .build(),
            )
            .build(),
        ("GET", "/openapi.json") => OperationBuilder::new()
            .tag("operations")
            .summary(Some("this document"))
            .response(
                "200",
                json_response("an OpenAPI 3.1 document", object("OpenAPI document")),
            )
            .build(),
        ("GET", "/api/v1/system/performance/dashboard") => admin_json(
            "live performance metrics",
            "latency percentiles, throughput, cache hit rates per tier, pool use, error rate and \
             `performance_tier`",
        ),
        ("GET", "/api/v1/system/performance/targets") => admin_json(
            "performance targets",
            "each target with its measured value and met/unmet, plus \
             `performance_tier_acceptable`",
        ),
        ("GET", "/api/v1/system/cache/health") => admin_json(
            "cache health",
            "each Redis tier and L1: reachable, latency, hit rate, circuit-breaker state",
        ),
        ("GET", "/api/v1/system/database/health") => admin_json(
            "database pool health",
            "each pool: size, in use, idle, waiters, utilisation, errors",
        ),
        ("GET", "/admin/performance-dashboard") => admin_json(
            "all monitoring documents",
            "the dashboard, targets, cache health and database health in one object",
        ),
        ("GET", "/admin/") => {
            let builder = OperationBuilder::new()
                .tag("monitoring")
                .summary(Some("the dashboard web page"))
                .description(Some(
                    "the admin token in the Authorization header, or the session cookie of \
                     `POST /admin/login` or of a login link; without credentials a browser \
                     asking for HTML gets the login form (401)",
                ))
                .response(
                    "200",
                    ResponseBuilder::new()
                        .description("an HTML page")
                        .content(
                            "text/html",
                            ContentBuilder::new()
                                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                                .build(),
                        )
                        .build(),
                )
                .response(
                    "401",
                    ResponseBuilder::new()
                        .description(
                            "no valid credentials: the login form for a browser asking for \
                             HTML, API.md's JSON error otherwise",
                        )
                        .content(
                            "text/html",
                            ContentBuilder::new()
                                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                                .build(),
                        )
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(schema_ref::<ErrorSchema>()))
                                .build(),
                        )
                        .build(),
                )
                .response(
                    "403",
                    error_response("valid credentials that are not the admin token"),
                );
            secured(builder, &["admin_token", "admin_session"]).build()
        }
        ("GET", "/admin/login") => OperationBuilder::new()
            .tag("monitoring")
            .summary(Some("the dashboard's login form, or a one-time login link"))
            .description(Some(
                "without `link`: the HTML login form; with `?link=<nonce>` from \
                 `POST /admin/login-link`: sets the page's session cookie and redirects to \
                 `/admin/` (303), or 401 when the link is unknown, used or expired",
            ))
            .response("200", html_response("the login form"))
            .response(
                "303",
                ResponseBuilder::new().description("signed in").build(),
            )
            .response("401", html_response("an invalid link, with the login form"))
            .build(),
        ("POST", "/admin/login") => OperationBuilder::new()
            .tag("monitoring")
            .summary(Some("signs a browser in to the dashboard page"))
            .description(Some(
                "form field `token` (the admin token): sets the HttpOnly, SameSite=Strict \
                 session cookie accepted by `GET /admin/` only, and redirects there (303)",
            ))
            .response(
                "303",
                ResponseBuilder::new().description("signed in").build(),
            )
            .response("401", html_response("a wrong token, with the login form"))
            .response("403", error_response("AUTHZ_ADMIN_TOKEN is not set"))
            .build(),
        ("POST", "/admin/login-link") => secured(
            OperationBuilder::new()
                .tag("monitoring")
                .summary(Some("a one-time login link for the dashboard page"))
                .description(Some(
                    "`{\"path\": \"/admin/login?link=<nonce>\", \"expires_in_seconds\": 60}`: \
                     for a browser that cannot send the Authorization header; valid once",
                ))
                .response("200", json_response("the link", object("login link")))
                .response("401", error_response("invalid bearer token"))
                .response(
                    "403",
                    error_response("valid credentials that are not the admin token"),
                ),
            &["admin_token"],
        )
        .build(),
        ("POST", "/admin/logout") => OperationBuilder::new()
            .tag("monitoring")
            .summary(Some("signs the browser out of the dashboard page"))
            .response(
                "303",
                ResponseBuilder::new().description("cookie cleared").build(),
            )
            .build(),
        _ => return None,
    };
    Some(operation)
}

fn http_method(method: &str) -> Option<HttpMethod> {
    Some(match method {
        "GET" => HttpMethod::Get,
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "DELETE" => HttpMethod::Delete,
        "PATCH" => HttpMethod::Patch,
        "HEAD" => HttpMethod::Head,
        "OPTIONS" => HttpMethod::Options,
        _ => return None,
    })
}

fn bearer(description: &str, format: Option<&str>) -> SecurityScheme {
    let mut http = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .description(Some(description));
    if let Some(format) = format {
        http = http.bearer_format(format);
    }
    SecurityScheme::Http(http.build())
}

/// Builds the document: one operation per entry of [`ROUTES`].
pub fn document() -> OpenApi {
    let mut paths = Paths::new();
    for (method, path) in ROUTES {
        let (Some(http), Some(operation)) = (http_method(method), operation(method, path)) else {
            // Listed in ROUTES but not described: the tests fail; the document still lists it.
            if let Some(http) = http_method(method) {
                paths.add_path_operation(
                    path,
                    vec![http],
                    OperationBuilder::new()
                        .summary(Some("undocumented"))
                        .build(),
                );
            }
            continue;
        };
        paths.add_path_operation(path, vec![http], operation);
    }
    let mut schemas = Vec::new();
    for (name, schema) in [
        (
            AuthorizeRequestSchema::name(),
            AuthorizeRequestSchema::schema(),
        ),
        (BatchRequestSchema::name(), BatchRequestSchema::schema()),
        (DecisionSchema::name(), DecisionSchema::schema()),
        (BatchResponseSchema::name(), BatchResponseSchema::schema()),
        (ErrorSchema::name(), ErrorSchema::schema()),
        (HealthSchema::name(), HealthSchema::schema()),
    ] {
        schemas.push((name.into_owned(), schema));
    }
    AuthorizeRequestSchema::schemas(&mut schemas);
    BatchRequestSchema::schemas(&mut schemas);
    DecisionSchema::schemas(&mut schemas);
    BatchResponseSchema::schemas(&mut schemas);
    ErrorSchema::schemas(&mut schemas);
    HealthSchema::schemas(&mut schemas);
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .security_scheme(
            "service_token",
            bearer(
                "AUTHZ_SERVICE_TOKEN: trusted callers (the edge, backend services) that name the \
                 principal in user_id; exempt from rate limits unless \
                 AUTHZ_RATE_LIMIT_SERVICE_PER_MINUTE is set",
                None,
            ),
        )
        .security_scheme(
            "end_user_jwt",
            bearer(
                "an HS256 JWT signed with AUTHZ_JWT_SECRET; the principal is its sub; \
                 rate-limited per user and per client IP",
                Some("JWT"),
            ),
        )
        .security_scheme(
            "admin_token",
            bearer("AUTHZ_ADMIN_TOKEN: /admin/* and /api/v1/system/*", None),
        )
        .security_scheme(
            "admin_session",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Cookie(
                utoipa::openapi::security::ApiKeyValue::with_description(
                    "authz_admin",
                    "the dashboard page's session (GET /admin/ only), from POST /admin/login \
                     or a login link",
                ),
            )),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("authz-origin")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(format!(
                    "The authorization origin: may principal P perform operation O on resource R? \
                     A deny is a 200 with granted false, never an error. Every error is \
                     {{\"error\": {{\"code\", \"message\", \"field\"?}}}}. Batches hold at most \
                     {MAX_BATCH_CHECKS} checks; bodies at most 64 KiB."
                )))
                .build(),
        )
        .paths(paths)
        .components(Some(components))
        .tags(Some(
            [
                ("authorize", "decisions"),
                ("operations", "health, metrics and this document"),
                ("monitoring", "admin-only performance and health documents"),
            ]
            .into_iter()
            .map(|(name, description)| {
                TagBuilder::new()
                    .name(name)
                    .description(Some(description))
                    .build()
            }),
        ))
        .build()
}

/// The document as JSON, built once.
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        document()
            .to_json()
            .unwrap_or_else(|error| json!({ "error": error.to_string() }).to_string())
    })
}

/// `GET /openapi.json`.
pub async fn serve() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], document_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_route_is_described() {
        for (method, path) in ROUTES {
            assert!(http_method(method).is_some(), "{method} {path}");
            assert!(
                operation(method, path).is_some(),
                "{method} {path} is in routes::ROUTES but openapi::operation does not describe it"
            );
        }
    }

    #[test]
    fn every_error_code_is_listed() {
        use crate::error::AppError;
        let errors = [
            AppError::Request(authz_core::wire::WireError::invalid_body("x")),
            AppError::Request(authz_core::wire::WireError::not_own_subject()),
            AppError::Request(authz_core::wire::WireError::body_too_large()),
            AppError::Unauthenticated("x"),
            AppError::Forbidden("x"),
            AppError::NotFound,
            AppError::RateLimited {
                retry_after_seconds: 1,
            },
            AppError::Unavailable("x".to_owned()),
        ];
        for error in errors {
            assert!(ERROR_CODES.contains(&error.code()), "{}", error.code());
        }
        for kind in ["invalid_uuid", "invalid_resource_type", "invalid_operation"] {
            assert!(ERROR_CODES.contains(&kind));
        }
    }
}
