//! The schemas of the OpenAPI document: hand-written [`ToSchema`] types mirroring API.md and
//! `authz_core::wire` (the no_std core does not depend on `utoipa`), whose vocabularies
//! (`resource_type`, `operation`, `access_method`, `effective_role`, `reason`, `source`) are
//! built from the core's `ALL` lists, so the document cannot drift from what the service
//! parses and writes. Handlers name them in their `#[utoipa::path]` attributes.

use std::borrow::Cow;

use authz_core::wire::Source;
use authz_core::{AccessMethod, DenyReason, Operation as CoreOperation, ResourceType, Role};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type};
use utoipa::{PartialSchema, ToSchema};

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
/// path and `request_timeout` for a body slower than `AUTHZ_BODY_READ_TIMEOUT_MS`).
pub const ERROR_CODES: &[&str] = &[
    "invalid_uuid",
    "invalid_resource_type",
    "invalid_operation",
    "invalid_request",
    "unauthenticated",
    "forbidden",
    "not_found",
    "payload_too_large",
    "request_timeout",
    "rate_limited",
    "unavailable",
];

/// API.md's uuid as `authz_core::id` parses it: the canonical hyphenated 8-4-4-4-12 form, hex
/// digits in either case, neither the nil nor the max uuid. `format: uuid` alone does not say
/// so (a format is an annotation in JSON Schema 2020-12, and validators need not check it). The
/// pattern is 36 characters from `^` to `$`, so the lookaheads need no anchor of their own.
pub const UUID_PATTERN: &str = "^(?!0{8}-0{4}-0{4}-0{4}-0{12})(?![fF]{8}-[fF]{4}-[fF]{4}-[fF]{4}-[fF]{12})\
     [0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

fn uuid_string(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        .pattern(Some(UUID_PATTERN))
        .description(Some(description))
}

/// `user_id`: a uuid or null.
fn user_id_schema() -> ObjectBuilder {
    uuid_string(
        "The principal: a user uuid, or null (or absent) for anonymous. With an end-user JWT it \
         may be omitted (the principal is the token's `sub`) or must equal `sub`.",
    )
    .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
}

/// `resource_id`: a uuid.
fn resource_id_schema() -> ObjectBuilder {
    uuid_string("The resource's uuid.")
}

/// `min_revision`: what the core reads, a `u64` (`authz_core::wire::request`), so no `int64`
/// format; null is the same as absent.
fn min_revision_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .minimum(Some(0_u64))
        .maximum(Some(u64::MAX))
        .description(Some(
            "Refuse to answer from data older than this revision (read-your-writes); a \
             revision the primary has not reached is a 503.",
        ))
}

/// One question: `POST /v1/authorize`'s body, and each element of a batch's `checks`. No other
/// field is accepted (`additionalProperties: false`): the core refuses unknown fields.
#[derive(ToSchema)]
#[schema(as = AuthorizeRequest)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeRequestSchema {
    /// The principal.
    #[schema(schema_with = user_id_schema, required = false)]
    pub user_id: Option<String>,
    /// The kind of resource.
    pub resource_type: ResourceTypeName,
    /// The resource's uuid.
    #[schema(schema_with = resource_id_schema)]
    pub resource_id: String,
    /// The operation.
    pub operation: OperationName,
    /// Read-your-writes.
    #[schema(schema_with = min_revision_schema, required = false)]
    pub min_revision: Option<u64>,
}

/// `POST /v1/authorize/batch`'s body: `checks` only.
#[derive(ToSchema)]
#[schema(as = BatchRequest)]
#[serde(deny_unknown_fields)]
pub struct BatchRequestSchema {
    /// Up to 100 questions (more is a 413); each counts against the caller's rate limit.
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

/// `GET /api/v1/health`'s answer: `status` for everyone, the rest with the admin token only.
#[derive(ToSchema)]
#[schema(as = Health)]
pub struct HealthSchema {
    /// The overall status.
    pub status: HealthStatus,
    /// The origin's version.
    #[schema(required = false)]
    pub version: String,
    /// Seconds since start.
    #[schema(required = false)]
    pub uptime_seconds: u64,
    /// `{"reachable", "latency_ms"}`.
    #[schema(value_type = Object, required = false)]
    pub postgres: (),
    /// `{"enabled", "tiers": {name: {"reachable", "latency_ms", "breaker", "owner", "prefix"}}}`:
    /// `owner` is `claimed`, `unclaimed` (not read yet: the tier is skipped) or `foreign`.
    #[schema(value_type = Object, required = false)]
    pub redis: (),
    /// `{"listener_connected", "revision", "notices"}`.
    #[schema(value_type = Object, required = false)]
    pub invalidation: (),
    /// Decisions held in process.
    #[schema(required = false)]
    pub l1_entries: u64,
}

/// A monitoring document (health details, dashboards, targets): an object with the
/// top-level fields API.md lists; its inner shape is for diagnosis, not a contract.
pub struct MonitoringDocument;

impl PartialSchema for MonitoringDocument {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "a monitoring document; its inner shape is for diagnosis",
            ))
            .into()
    }
}

impl ToSchema for MonitoringDocument {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("MonitoringDocument")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            AppError::RequestTimeout(1),
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
