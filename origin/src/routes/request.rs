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
    let named = match object.get("user_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(
            Principal::parse(Some(text), "user_id")
                .map_err(|error| AppError::parse(&error, text, at("user_id")))?,
        ),
        Some(other) => {
            return Err(AppError::bad_request(
                "invalid_uuid",
                format!("expected a uuid string or null, got {other}"),
                Some(at("user_id")),
            ));
        }
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
    let resource_type = required_string(object, prefix, "resource_type")?;
    let resource_type = authz_core::ResourceType::parse(resource_type, "resource_type")
        .map_err(|error| AppError::parse(&error, resource_type, at("resource_type")))?;
    let resource_id = required_string(object, prefix, "resource_id")?;
    let resource = Resource::from_parts(resource_type, resource_id)
        .map_err(|error| AppError::parse(&error, resource_id, at("resource_id")))?;
    let operation = required_string(object, prefix, "operation")?;
    let operation = authz_core::Operation::parse(operation, "operation")
        .map_err(|error| AppError::parse(&error, operation, at("operation")))?;
    let min_revision = match object.get("min_revision") {
        None | Some(Value::Null) => None,
        Some(value) => Some(value.as_u64().ok_or_else(|| {
            AppError::invalid_request(
                format!("expected a non-negative integer, got {value}"),
                at("min_revision"),
            )
        })?),
    };
    Ok((
        Question {
            principal,
            resource,
            operation,
        },
        min_revision,
    ))
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
