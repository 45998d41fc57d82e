//! Reading request bodies: a 64 KiB limit answered with API.md's 413, JSON parsed by hand so
//! that every malformed field gets a 400 naming it, and the principal resolved against the
//! caller (a service names it; an end user is it).

use authz_core::wire::{MAX_BATCH_CHECKS, MAX_BODY_BYTES};
use authz_core::{Principal, Question, Resource};
use axum::body::{Body, Bytes};
use serde_json::{Map, Value};

use crate::auth::Caller;
use crate::error::AppError;

/// Reads the whole body, refusing more than 64 KiB.
pub async fn read_body(body: Body) -> Result<Bytes, AppError> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| AppError::PayloadTooLarge(format!("request body over {MAX_BODY_BYTES} bytes")))
}

/// Parses a body as a JSON object.
pub fn json_object(bytes: &[u8]) -> Result<Map<String, Value>, AppError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(AppError::bad_request(
            "invalid_request",
            "expected a json object",
            None,
        )),
        Err(error) => Err(AppError::bad_request(
            "invalid_request",
            format!("malformed json: {error}"),
            None,
        )),
    }
}

const CHECK_FIELDS: [&str; 5] = [
    "user_id",
    "resource_type",
    "resource_id",
    "operation",
    "min_revision",
];

fn field_path(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

fn required_string<'a>(
    object: &'a Map<String, Value>,
    prefix: &str,
    field: &str,
) -> Result<&'a str, AppError> {
    match object.get(field) {
        Some(Value::String(text)) => Ok(text),
        None | Some(Value::Null) => Err(AppError::invalid_request(
            format!("missing field \"{field}\""),
            field_path(prefix, field),
        )),
        Some(other) => Err(AppError::invalid_request(
            format!("expected a string, got {other}"),
            field_path(prefix, field),
        )),
    }
}

/// Parses one question (`prefix` locates it in a batch, e.g. `checks[3]`), for `caller`.
pub fn parse_check(
    object: &Map<String, Value>,
    prefix: &str,
    caller: Caller,
) -> Result<(Question, Option<u64>), AppError> {
    if let Some(unknown) = object
        .keys()
        .find(|key| !CHECK_FIELDS.contains(&key.as_str()))
    {
        return Err(AppError::invalid_request(
            format!(
                "unknown field \"{unknown}\"; expected user_id, resource_type, resource_id, operation, min_revision"
            ),
            field_path(prefix, unknown),
        ));
    }
    let at = |field: &str| field_path(prefix, field);
    let user_id = match object.get("user_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.as_str()),
        Some(other) => {
            return Err(AppError::bad_request(
                "invalid_uuid",
                format!("expected a uuid string or null, got {other}"),
                Some(at("user_id")),
            ));
        }
    };
    // Fields are judged in order: a bad user_id is reported before a missing resource_type.
    if let Some(text) = user_id {
        Principal::parse(Some(text), "user_id")
            .map_err(|error| AppError::parse(&error, text, at("user_id")))?;
    }
    let resource_type = required_string(object, prefix, "resource_type")?;
    let resource_id = required_string(object, prefix, "resource_id")?;
    let operation = required_string(object, prefix, "operation")?;
    let min_revision = match object.get("min_revision") {
        None | Some(Value::Null) => None,
        Some(value) => Some(value.as_u64().ok_or_else(|| {
            AppError::invalid_request(
                format!("expected a non-negative integer, got {value}"),
                at("min_revision"),
            )
        })?),
    };
    let fields = CheckFields {
        user_id,
        resource_type,
        resource_id,
        operation,
        min_revision,
    };
    check_from_fields(&fields, prefix, caller)
}

/// The fields of one check, as strings, before validation. Deserialized directly (borrowing
/// the body) on the fast path; anything that does not fit (an unknown field, a wrong type, an
/// escaped string) goes through the `Value` path, which names the field at fault.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckFields<'a> {
    #[serde(default, borrow)]
    user_id: Option<&'a str>,
    #[serde(borrow)]
    resource_type: &'a str,
    #[serde(borrow)]
    resource_id: &'a str,
    #[serde(borrow)]
    operation: &'a str,
    #[serde(default)]
    min_revision: Option<u64>,
}

/// Validates one check's fields for `caller`, in the order user_id, resource_type,
/// resource_id, operation.
fn check_from_fields(
    fields: &CheckFields<'_>,
    prefix: &str,
    caller: Caller,
) -> Result<(Question, Option<u64>), AppError> {
    let at = |field: &str| field_path(prefix, field);
    let named = match fields.user_id {
        None => None,
        Some(text) => Some(
            Principal::parse(Some(text), "user_id")
                .map_err(|error| AppError::parse(&error, text, at("user_id")))?,
        ),
    };
    let principal = match caller {
        Caller::Service => named.unwrap_or(Principal::Anonymous),
        Caller::EndUser(user) => match named {
            None => Principal::User(user),
            Some(Principal::User(named)) if named == user => Principal::User(user),
            Some(_) => {
                return Err(AppError::Forbidden(
                    "an end-user token may only ask for its own subject",
                ));
            }
        },
    };
    let resource_type = authz_core::ResourceType::parse(fields.resource_type, "resource_type")
        .map_err(|error| AppError::parse(&error, fields.resource_type, at("resource_type")))?;
    let resource = Resource::from_parts(resource_type, fields.resource_id)
        .map_err(|error| AppError::parse(&error, fields.resource_id, at("resource_id")))?;
    let operation = authz_core::Operation::parse(fields.operation, "operation")
        .map_err(|error| AppError::parse(&error, fields.operation, at("operation")))?;
    Ok((
        Question {
            principal,
            resource,
            operation,
        },
        fields.min_revision,
    ))
}

/// Parses the body of `POST /v1/authorize`: the borrowed fast path, else the `Value` path for
/// a precise error.
pub fn parse_single(bytes: &[u8], caller: Caller) -> Result<(Question, Option<u64>), AppError> {
    // The body's UTF-8 is checked once here, so the parser does not check each string again.
    let fields = std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| serde_json::from_str::<CheckFields<'_>>(text).ok());
    match fields {
        Some(fields) => check_from_fields(&fields, "", caller),
        None => parse_check(&json_object(bytes)?, "", caller),
    }
}

/// Parses a batch body `{"checks": [...]}` (at most 100).
pub fn parse_batch(
    object: &Map<String, Value>,
    caller: Caller,
) -> Result<Vec<(Question, Option<u64>)>, AppError> {
    if let Some(unknown) = object.keys().find(|key| key.as_str() != "checks") {
        return Err(AppError::invalid_request(
            format!("unknown field \"{unknown}\"; expected checks"),
            unknown.clone(),
        ));
    }
    let checks = match object.get("checks") {
        Some(Value::Array(checks)) => checks,
        None | Some(Value::Null) => {
            return Err(AppError::invalid_request(
                "missing field \"checks\"",
                "checks",
            ));
        }
        Some(_) => {
            return Err(AppError::invalid_request(
                "expected an array of checks",
                "checks",
            ));
        }
    };
    if checks.len() > MAX_BATCH_CHECKS {
        return Err(AppError::PayloadTooLarge(format!(
            "a batch holds at most {MAX_BATCH_CHECKS} checks, got {}",
            checks.len()
        )));
    }
    checks
        .iter()
        .enumerate()
        .map(|(index, check)| {
            let prefix = format!("checks[{index}]");
            match check {
                Value::Object(object) => parse_check(object, &prefix, caller),
                _ => Err(AppError::invalid_request("expected a json object", prefix)),
            }
        })
        .collect()
}
