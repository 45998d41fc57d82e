//! The OpenAPI 3.1 document of the origin's HTTP API (`utoipa`), served at `GET /openapi.json`.
//!
//! # Decisions
//!
//! * **One declaration per route.** Each handler carries its operation in a
//!   `#[utoipa::path]` attribute, and `routes::api` registers it with utoipa-axum's
//!   `OpenApiRouter`, which takes the route's method and path from that attribute: the router,
//!   the document and the request metrics' route labels all come from it, so a route cannot be
//!   served undocumented. The integration test `openapi` checks that no source routes anything
//!   outside it and probes every method of every documented path on a live origin.
//! * **Vocabularies from the core** (see [`schemas`]).
//! * **Request bodies as the core parses them** (issue 15): no field but the core's
//!   (`additionalProperties: false`), uuids with the core's pattern, `min_revision` up to
//!   `u64::MAX`, at most 100 checks. `scripts/schemathesis.sh` (in `make test`) checks the
//!   document against a live origin.
//! * **Security.** Three bearer schemes: `service_token` (`AUTHZ_SERVICE_TOKEN`),
//!   `end_user_jwt` (HS256 with `AUTHZ_JWT_SECRET`, or RS256, ES256 and EdDSA with the
//!   identity provider's key set) and `admin_token` (`AUTHZ_ADMIN_TOKEN`), and the dashboard
//!   page's session cookie, `admin_session` (`authz_admin`).
//! * **Bodies the document does not pin down.** The monitoring documents (health details,
//!   dashboards, targets) are described as objects with their documented top-level fields;
//!   their inner shape is for diagnosis, not a contract (API.md fixes only what it lists).

pub mod schemas;

use authz_core::wire::MAX_BATCH_CHECKS;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder};

fn bearer(description: &str, format: Option<&str>) -> SecurityScheme {
    let mut http = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .description(Some(description));
    if let Some(format) = format {
        http = http.bearer_format(format);
    }
    SecurityScheme::Http(http.build())
}

/// The document without its operations: the title, the security schemes and the tags. The
/// router adds one operation per handler, and the schemas those operations name.
pub fn base() -> OpenApi {
    let components = ComponentsBuilder::new()
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
                "an end-user JWT: HS256 signed with AUTHZ_JWT_SECRET, or RS256, ES256 or EdDSA \
                 signed by a key of the identity provider's set (AUTHZ_JWKS or \
                 AUTHZ_JWKS_URL), chosen by the token's kid; the key's algorithm must be the \
                 token's alg. exp is required; iss and aud are required when \
                 AUTHZ_JWT_ISSUER and AUTHZ_JWT_AUDIENCE are set. The principal is its sub; \
                 rate-limited per user and per client IP. Every refusal is 401 unauthenticated",
                Some("JWT"),
            ),
        )
        .security_scheme(
            "admin_token",
            bearer("AUTHZ_ADMIN_TOKEN: /admin/* and /api/v1/system/*", None),
        )
        .security_scheme(
            "admin_session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "authz_admin",
                "the dashboard page's session (GET /admin/ only), from POST /admin/login or a \
                 login link",
            ))),
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
