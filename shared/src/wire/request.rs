//! The authorize requests of API.md, parsed into [`Check`]s: the body of
//! `POST /v1/authorize` ([`parse_single`]), the batch body ([`parse_batch`]) and the edge's
//! `GET /v1/authorize` query ([`parse_query`]).
//!
//! Every malformed input is a [`WireError`] naming the field at fault; fields are judged in
//! the order `user_id`, `resource_type`, `resource_id`, `operation`, `min_revision` (shapes
//! first, then values). Messages quote at most 64 characters of the input.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde_json::{Map, Value};

use super::error::WireError;
use super::{MAX_BATCH_CHECKS, MAX_BODY_BYTES};
use crate::error::shorten;
use crate::id::UserId;
use crate::model::{Operation, Principal, ResourceType};
use crate::question::{Question, Resource};

/// One question and the revision its answer must be at or after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// The validated question.
    pub question: Question,
    /// The caller's `min_revision`, if any.
    pub min_revision: Option<u64>,
}

/// Where the principal of each check comes from, which decides whether a check may name a
/// `user_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalSource {
    /// A trusted service names it in each check's `user_id` (absent or null: anonymous).
    Named,
    /// An end user's verified token at the origin: the principal is its subject; a check may
    /// repeat it as `user_id`, and naming anyone else is a 403 `forbidden`.
    Subject(UserId),
    /// The edge: the principal is the bearer token's (or anonymous) and a check has no
    /// `user_id` field.
    Fixed(Principal),
}

impl PrincipalSource {
    /// The fields a check may hold.
    const fn fields(self) -> &'static [&'static str] {
        match self {
            Self::Fixed(_) => &CHECK_FIELDS_FIXED,
            Self::Named | Self::Subject(_) => &CHECK_FIELDS,
        }
    }

    /// The principal of a check that named `named`.
    fn resolve(self, named: Option<Principal>) -> Result<Principal, WireError> {
        match (self, named) {
            (Self::Named, named) => Ok(named.unwrap_or(Principal::Anonymous)),
            (Self::Subject(user), None) => Ok(Principal::User(user)),
            (Self::Subject(user), Some(Principal::User(named))) if named == user => {
                Ok(Principal::User(user))
            }
            (Self::Subject(_), Some(_)) => Err(WireError::not_own_subject()),
            (Self::Fixed(principal), _) => Ok(principal),
        }
    }
}

const CHECK_FIELDS: [&str; 5] = [
    "user_id",
    "resource_type",
    "resource_id",
    "operation",
    "min_revision",
];
const CHECK_FIELDS_FIXED: [&str; 4] = ["resource_type", "resource_id", "operation", "min_revision"];

fn field_path(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

/// Parses a body as a JSON object.
pub fn json_object(body: &[u8]) -> Result<Map<String, Value>, WireError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(WireError::invalid_body("expected a json object")),
        Err(error) => Err(WireError::invalid_body(format!("malformed json: {error}"))),
    }
}

/// The fields of one check as strings, before validation: the wire form that
/// [`parse_single`] reads borrowing the body. Anything that does not fit (an unknown field, a
/// wrong type, an escaped string) goes through [`parse_check_object`], which names the field
/// at fault.
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

/// Parses the body of `POST /v1/authorize`: the borrowed fast path, else the precise path
/// for the error.
pub fn parse_single(body: &[u8], source: PrincipalSource) -> Result<Check, WireError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(WireError::body_too_large());
    }
    // The body's UTF-8 is checked once here, so the parser does not check each string again.
    // Where a check has no `user_id` field, the precise path judges its presence (even null).
    let fields = core::str::from_utf8(body)
        .ok()
        .filter(|_| !matches!(source, PrincipalSource::Fixed(_)))
        .and_then(|text| serde_json::from_str::<CheckFields<'_>>(text).ok());
    match fields {
        Some(fields) => check_from_fields(&fields, "", source),
        None => parse_check_object(&json_object(body)?, "", source),
    }
}

/// Parses one check given as a JSON object (`prefix` locates it in a batch, e.g.
/// `checks[3]`).
pub fn parse_check_object(
    object: &Map<String, Value>,
    prefix: &str,
    source: PrincipalSource,
) -> Result<Check, WireError> {
    let fields = source.fields();
    if let Some(unknown) = object.keys().find(|key| !fields.contains(&key.as_str())) {
        let hint = if matches!(source, PrincipalSource::Fixed(_)) && unknown == "user_id" {
            "the principal is the bearer token's".to_owned()
        } else {
            format!("expected {}", fields.join(", "))
        };
        return Err(WireError::invalid_request(
            format!("unknown field \"{}\"; {hint}", shorten(unknown)),
            field_path(prefix, unknown),
        ));
    }
    let at = |field: &str| field_path(prefix, field);
    let user_id = match object.get("user_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.as_str()),
        Some(other) => {
            return Err(WireError {
                code: "invalid_uuid",
                message: format!(
                    "expected a uuid string or null, got {}",
                    shorten(&other.to_string())
                ),
                field: Some(at("user_id")),
            });
        }
    };
    // Fields are judged in order: a bad user_id is reported before a missing resource_type.
    if let Some(text) = user_id {
        Principal::parse(Some(text), "user_id")
            .map_err(|error| WireError::parse(&error, text, at("user_id")))?;
    }
    let text = |field: &str| match object.get(field) {
        Some(Value::String(text)) => Ok(text.as_str()),
        None | Some(Value::Null) => Err(WireError::invalid_request(
            format!("missing field \"{field}\""),
            at(field),
        )),
        Some(other) => Err(WireError::invalid_request(
            format!("expected a string, got {}", shorten(&other.to_string())),
            at(field),
        )),
    };
    let resource_type = text("resource_type")?;
    let resource_id = text("resource_id")?;
    let operation = text("operation")?;
    let min_revision = match object.get("min_revision") {
        None | Some(Value::Null) => None,
        Some(value) => Some(revision(value).ok_or_else(|| {
            WireError::invalid_request(
                format!(
                    "expected a non-negative integer, got {}",
                    shorten(&value.to_string())
                ),
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
    check_from_fields(&fields, prefix, source)
}

/// A `min_revision` number: an integer from 0 to `u64::MAX`, also when written with a zero
/// fraction or an exponent (`7.0`, `7e2`), which JSON Schema's `integer` counts as integers
/// (the OpenAPI document declares it so). Such a number is read as a double, like a JSON
/// Schema validator reads it, so past 2^53 it is the nearest double's integer.
fn revision(value: &Value) -> Option<u64> {
    if let Some(integer) = value.as_u64() {
        return Some(integer);
    }
    let number = value.as_f64()?;
    // 2^64 is the first double past `u64::MAX`; in [0, 2^64) the cast is exact for an
    // integral double and truncates any other (no `f64::fract` without std).
    if !(0.0..18_446_744_073_709_551_616.0).contains(&number) {
        return None;
    }
    let integer = number as u64;
    (integer as f64 == number).then_some(integer)
}

/// Validates one check's fields, in the order user_id, resource_type, resource_id,
/// operation.
fn check_from_fields(
    fields: &CheckFields<'_>,
    prefix: &str,
    source: PrincipalSource,
) -> Result<Check, WireError> {
    let named = match fields.user_id {
        None => None,
        Some(text) => Some(
            Principal::parse(Some(text), "user_id")
                .map_err(|error| WireError::parse(&error, text, field_path(prefix, "user_id")))?,
        ),
    };
    let principal = source.resolve(named)?;
    Ok(Check {
        question: question(
            principal,
            fields.resource_type,
            fields.resource_id,
            fields.operation,
            prefix,
        )?,
        min_revision: fields.min_revision,
    })
}

/// The question of `principal` about the wire fields, errors naming `prefix`.`field`.
fn question(
    principal: Principal,
    resource_type: &str,
    resource_id: &str,
    operation: &str,
    prefix: &str,
) -> Result<Question, WireError> {
    let at = |field: &str| field_path(prefix, field);
    let parsed_type = ResourceType::parse(resource_type, "resource_type")
        .map_err(|error| WireError::parse(&error, resource_type, at("resource_type")))?;
    let resource = Resource::from_parts(parsed_type, resource_id)
        .map_err(|error| WireError::parse(&error, resource_id, at("resource_id")))?;
    let operation = Operation::parse(operation, "operation")
        .map_err(|error| WireError::parse(&error, operation, at("operation")))?;
    Ok(Question {
        principal,
        resource,
        operation,
    })
}

/// Parses a batch body `{"checks": [...]}`: at most 100 checks, the body at most 64 KiB.
pub fn parse_batch(body: &[u8], source: PrincipalSource) -> Result<Vec<Check>, WireError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(WireError::body_too_large());
    }
    let object = json_object(body)?;
    if let Some(unknown) = object.keys().find(|key| key.as_str() != "checks") {
        return Err(WireError::invalid_request(
            format!("unknown field \"{}\"; expected checks", shorten(unknown)),
            unknown.clone(),
        ));
    }
    let checks = match object.get("checks") {
        Some(Value::Array(checks)) => checks,
        None | Some(Value::Null) => {
            return Err(WireError::invalid_request(
                "missing field \"checks\"",
                "checks",
            ));
        }
        Some(_) => {
            return Err(WireError::invalid_request(
                "expected an array of checks",
                "checks",
            ));
        }
    };
    if checks.len() > MAX_BATCH_CHECKS {
        return Err(WireError::too_many_checks(checks.len()));
    }
    checks
        .iter()
        .enumerate()
        .map(|(index, check)| {
            let prefix = format!("checks[{index}]");
            match check {
                Value::Object(object) => parse_check_object(object, &prefix, source),
                _ => Err(WireError::invalid_request("expected a json object", prefix)),
            }
        })
        .collect()
}

const QUERY_PARAMETERS: [&str; 4] = ["resource_type", "resource_id", "operation", "min_revision"];

/// Parses the query of `GET /v1/authorize` (the edge's) for `principal`. Unknown and
/// repeated parameters are errors; parameters are judged in the order `resource_type`,
/// `resource_id`, `operation`, `min_revision`.
pub fn parse_query(query: Option<&str>, principal: Principal) -> Result<Check, WireError> {
    let mut values: [Option<String>; 4] = Default::default();
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let Some(index) = QUERY_PARAMETERS.iter().position(|known| *known == name) else {
            return Err(WireError::invalid_request(
                format!(
                    "unknown parameter \"{}\"; expected {}",
                    shorten(&name),
                    QUERY_PARAMETERS.join(", ")
                ),
                name.into_owned(),
            ));
        };
        let Some(slot) = values.get_mut(index) else {
            continue;
        };
        if slot.is_some() {
            return Err(WireError::invalid_request(
                format!("parameter \"{name}\" given more than once"),
                name.into_owned(),
            ));
        }
        *slot = Some(value.into_owned());
    }
    let [resource_type, resource_id, operation, min_revision] = values;
    let required = |value: Option<String>, name: &str| {
        value.ok_or_else(|| {
            WireError::invalid_request(format!("missing parameter \"{name}\""), name)
        })
    };
    let resource_type = required(resource_type, "resource_type")?;
    let resource_id = required(resource_id, "resource_id")?;
    let operation = required(operation, "operation")?;
    let question = question(principal, &resource_type, &resource_id, &operation, "")?;
    let min_revision = min_revision
        .map(|text| {
            parse_revision(&text).ok_or_else(|| {
                WireError::invalid_request(
                    format!(
                        "invalid min_revision \"{}\": expected a non-negative integer",
                        shorten(&text)
                    ),
                    "min_revision",
                )
            })
        })
        .transpose()?;
    Ok(Check {
        question,
        min_revision,
    })
}

/// Decimal digits only (`u64::from_str` would also take a leading `+`).
fn parse_revision(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests;
