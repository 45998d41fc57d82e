//! Reading what a client sent: the bearer token into a principal (verified by the core), the
//! `GET /v1/authorize` query and the batch body into validated checks.
//!
//! Pure functions over strings and bytes, so they are unit-tested natively. Every rule of what
//! is valid (the UUID standard, the vocabularies, the JWT checks) lives in `authz-core`; this
//! module only locates the inputs and names the parameter at fault.

use authz_core::jwt::{self, JwtConfig, JwtKey};
use authz_core::wire::{MAX_BATCH_CHECKS, MAX_BODY_BYTES};
use authz_core::{Operation, Principal, Question, Resource, ResourceType};
use serde_json::{Map, Value};

use crate::error::EdgeError;

/// One question and the revision its answer must be at or after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// The validated question.
    pub question: Question,
    /// The caller's `min_revision`, if any.
    pub min_revision: Option<u64>,
}

/// The principal of a request: anonymous without an `Authorization` header, else the `sub` of
/// an HS256 JWT that the core verifies. Any other credential is a 401.
pub fn principal(
    authorization: Option<&str>,
    key: Option<&JwtKey>,
    now_unix_seconds: i64,
) -> Result<Principal, EdgeError> {
    let Some(value) = authorization else {
        return Ok(Principal::Anonymous);
    };
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or(EdgeError::Unauthenticated("expected a bearer token"))?
        .trim();
    if token.is_empty() {
        return Err(EdgeError::Unauthenticated("empty bearer token"));
    }
    let key = key.ok_or(EdgeError::Unauthenticated(
        "end-user tokens are not accepted",
    ))?;
    jwt::verify(token, key, &JwtConfig::default(), now_unix_seconds)
        .map(|claims| Principal::User(claims.sub))
        .map_err(EdgeError::jwt)
}

const QUERY_PARAMETERS: [&str; 4] = ["resource_type", "resource_id", "operation", "min_revision"];

/// Parses the query of `GET /v1/authorize` for `principal`. Unknown and repeated parameters
/// are errors; fields are checked in the order `resource_type`, `resource_id`, `operation`,
/// `min_revision`.
pub fn parse_query(query: Option<&str>, principal: Principal) -> Result<Check, EdgeError> {
    let mut values: [Option<String>; 4] = Default::default();
    for (name, value) in worker::url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let Some(index) = QUERY_PARAMETERS.iter().position(|known| *known == name) else {
            return Err(EdgeError::invalid_request(
                format!(
                    "unknown parameter \"{}\"; expected resource_type, resource_id, operation, min_revision",
                    shorten(&name)
                ),
                name.into_owned(),
            ));
        };
        let Some(slot) = values.get_mut(index) else {
            continue;
        };
        if slot.is_some() {
            return Err(EdgeError::invalid_request(
                format!("parameter \"{name}\" given more than once"),
                name.into_owned(),
            ));
        }
        *slot = Some(value.into_owned());
    }
    let [resource_type, resource_id, operation, min_revision] = values;
    let required = |value: Option<String>, name: &str| {
        value.ok_or_else(|| {
            EdgeError::invalid_request(format!("missing parameter \"{name}\""), name)
        })
    };
    let resource_type = required(resource_type, "resource_type")?;
    let resource_id = required(resource_id, "resource_id")?;
    let operation = required(operation, "operation")?;
    let question = question(principal, &resource_type, &resource_id, &operation, "")?;
    let min_revision = min_revision
        .map(|text| {
            parse_revision(&text).ok_or_else(|| {
                EdgeError::invalid_request(
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

/// At most 64 characters of client input in a message.
fn shorten(text: &str) -> String {
    let mut shown: String = text.chars().take(64).collect();
    if text.chars().nth(64).is_some() {
        shown.push_str("...");
    }
    shown
}

fn field_path(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

/// The question of `principal` about the wire fields, errors naming `prefix`.`field`.
fn question(
    principal: Principal,
    resource_type: &str,
    resource_id: &str,
    operation: &str,
    prefix: &str,
) -> Result<Question, EdgeError> {
    let at = |field: &str| field_path(prefix, field);
    let parsed_type = ResourceType::parse(resource_type, "resource_type")
        .map_err(|error| EdgeError::parse(&error, resource_type, at("resource_type")))?;
    let resource = Resource::from_parts(parsed_type, resource_id)
        .map_err(|error| EdgeError::parse(&error, resource_id, at("resource_id")))?;
    let operation = Operation::parse(operation, "operation")
        .map_err(|error| EdgeError::parse(&error, operation, at("operation")))?;
    Ok(Question {
        principal,
        resource,
        operation,
    })
}

const CHECK_FIELDS: [&str; 4] = ["resource_type", "resource_id", "operation", "min_revision"];

/// Parses a batch body `{"checks": [...]}` (at most 100, the body at most 64 KiB) for
/// `principal`. A check has no `user_id`: the principal is the token's.
pub fn parse_batch(body: &[u8], principal: Principal) -> Result<Vec<Check>, EdgeError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(body_too_large());
    }
    let object = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => object,
        Ok(_) => {
            return Err(EdgeError::BadRequest {
                code: "invalid_request",
                message: "expected a json object".to_owned(),
                field: None,
            });
        }
        Err(error) => {
            return Err(EdgeError::BadRequest {
                code: "invalid_request",
                message: format!("malformed json: {error}"),
                field: None,
            });
        }
    };
    if let Some(unknown) = object.keys().find(|key| key.as_str() != "checks") {
        return Err(EdgeError::invalid_request(
            format!("unknown field \"{}\"; expected checks", shorten(unknown)),
            unknown.clone(),
        ));
    }
    let checks = match object.get("checks") {
        Some(Value::Array(checks)) => checks,
        None | Some(Value::Null) => {
            return Err(EdgeError::invalid_request(
                "missing field \"checks\"",
                "checks",
            ));
        }
        Some(_) => {
            return Err(EdgeError::invalid_request(
                "expected an array of checks",
                "checks",
            ));
        }
    };
    if checks.len() > MAX_BATCH_CHECKS {
        return Err(EdgeError::PayloadTooLarge(format!(
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
                Value::Object(object) => parse_check(object, &prefix, principal),
                _ => Err(EdgeError::invalid_request("expected a json object", prefix)),
            }
        })
        .collect()
}

/// The 413 of a body over 64 KiB.
pub fn body_too_large() -> EdgeError {
    EdgeError::PayloadTooLarge(format!("request body over {MAX_BODY_BYTES} bytes"))
}

fn parse_check(
    object: &Map<String, Value>,
    prefix: &str,
    principal: Principal,
) -> Result<Check, EdgeError> {
    if let Some(unknown) = object
        .keys()
        .find(|key| !CHECK_FIELDS.contains(&key.as_str()))
    {
        let hint = if unknown == "user_id" {
            "; the principal is the bearer token's"
        } else {
            "; expected resource_type, resource_id, operation, min_revision"
        };
        return Err(EdgeError::invalid_request(
            format!("unknown field \"{}\"{hint}", shorten(unknown)),
            field_path(prefix, unknown),
        ));
    }
    let text = |field: &str| match object.get(field) {
        Some(Value::String(text)) => Ok(text.as_str()),
        None | Some(Value::Null) => Err(EdgeError::invalid_request(
            format!("missing field \"{field}\""),
            field_path(prefix, field),
        )),
        Some(other) => Err(EdgeError::invalid_request(
            format!("expected a string, got {}", shorten(&other.to_string())),
            field_path(prefix, field),
        )),
    };
    let resource_type = text("resource_type")?;
    let resource_id = text("resource_id")?;
    let operation = text("operation")?;
    let question = question(principal, resource_type, resource_id, operation, prefix)?;
    let min_revision = match object.get("min_revision") {
        None | Some(Value::Null) => None,
        Some(value) => Some(value.as_u64().ok_or_else(|| {
            EdgeError::invalid_request(
                format!(
                    "expected a non-negative integer, got {}",
                    shorten(&value.to_string())
                ),
                field_path(prefix, "min_revision"),
            )
        })?),
    };
    Ok(Check {
        question,
        min_revision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use authz_core::UserId;

    const GENERATION: &str = "d0000000-0000-4000-8000-000000000001";
    const USER: &str = "a0000000-0000-4000-8000-000000000001";
    const SECRET: &[u8] = b"test-jwt-secret-0123456789abcdef0123456789";
    const NOW: i64 = 1_780_000_000;

    fn user() -> Principal {
        Principal::User(UserId::parse(USER, "sub").unwrap())
    }

    /// `query` → `Ok(min_revision)` or `Err((code, field))`.
    fn check(query: &str, expected: Result<Option<u64>, (&str, &str)>) {
        let got = parse_query(Some(query), Principal::Anonymous);
        match (got, expected) {
            (Ok(check), Ok(min_revision)) => {
                assert_eq!(check.min_revision, min_revision, "{query}")
            }
            (Err(EdgeError::BadRequest { code, field, .. }), Err((want_code, want_field))) => {
                assert_eq!(
                    (code, field.as_deref()),
                    (want_code, Some(want_field)),
                    "{query}"
                );
            }
            (got, expected) => panic!("{query}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn query_table() {
        let ok = format!("resource_type=generation&resource_id={GENERATION}&operation=read");
        check(&ok, Ok(None));
        check(&format!("{ok}&min_revision=42"), Ok(Some(42)));
        check(
            &format!("{ok}&min_revision=-1"),
            Err(("invalid_request", "min_revision")),
        );
        check(
            &format!("{ok}&min_revision=%2B1"),
            Err(("invalid_request", "min_revision")),
        );
        check(
            &format!("{ok}&min_revision="),
            Err(("invalid_request", "min_revision")),
        );
        check(
            &format!("{ok}&user_id={USER}"),
            Err(("invalid_request", "user_id")),
        );
        check(
            &format!("{ok}&operation=read"),
            Err(("invalid_request", "operation")),
        );
        check(
            &format!("resource_id={GENERATION}&operation=read"),
            Err(("invalid_request", "resource_type")),
        );
        check(
            "resource_type=generation&operation=read",
            Err(("invalid_request", "resource_id")),
        );
        check(
            &format!("resource_type=file&resource_id={GENERATION}&operation=read"),
            Err(("invalid_resource_type", "resource_type")),
        );
        check(
            "resource_type=project&resource_id=00000000-0000-0000-0000-000000000000&operation=read",
            Err(("invalid_uuid", "resource_id")),
        );
        check(
            &format!("resource_type=team&resource_id={GENERATION}&operation=READ"),
            Err(("invalid_operation", "operation")),
        );
    }

    #[test]
    fn messages_quote_the_input() {
        let error = parse_query(
            Some("resource_type=generation&resource_id=nope&operation=read"),
            Principal::Anonymous,
        )
        .unwrap_err();
        let EdgeError::BadRequest { message, .. } = error else {
            panic!("{error:?}");
        };
        assert!(message.contains("\"nope\""), "{message}");
    }

    #[test]
    fn principal_table() {
        let key = JwtKey::new(SECRET).unwrap();
        let token = jwt::sign_hs256(&format!(r#"{{"sub":"{USER}","exp":{}}}"#, NOW + 60), &key);
        assert_eq!(principal(None, Some(&key), NOW), Ok(Principal::Anonymous));
        assert_eq!(
            principal(Some(&format!("Bearer {token}")), Some(&key), NOW),
            Ok(user())
        );
        for bad in [
            String::new(),
            "Bearer ".to_owned(),
            format!("Basic {token}"),
            token.clone(),
        ] {
            assert!(
                matches!(
                    principal(Some(&bad), Some(&key), NOW),
                    Err(EdgeError::Unauthenticated(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            principal(Some(&format!("Bearer {token}")), None, NOW),
            Err(EdgeError::Unauthenticated(
                "end-user tokens are not accepted"
            ))
        );
        assert_eq!(
            principal(Some(&format!("Bearer {token}")), Some(&key), NOW + 3600),
            Err(EdgeError::Unauthenticated("token expired"))
        );
    }

    #[test]
    fn batch_table() {
        let good = format!(
            r#"{{"checks":[{{"resource_type":"generation","resource_id":"{GENERATION}","operation":"read"}},{{"resource_type":"team","resource_id":"{GENERATION}","operation":"admin","min_revision":7}}]}}"#
        );
        let checks = parse_batch(good.as_bytes(), user()).unwrap();
        assert_eq!(checks.len(), 2);
        assert_eq!(checks[0].question.principal, user());
        assert_eq!(checks[1].min_revision, Some(7));

        let error = |body: &str| parse_batch(body.as_bytes(), user()).unwrap_err();
        let field = |body: &str| match error(body) {
            EdgeError::BadRequest { code, field, .. } => (code, field),
            other => panic!("{other:?}"),
        };
        assert_eq!(field("[]"), ("invalid_request", None));
        assert_eq!(field("{"), ("invalid_request", None));
        assert_eq!(field("{}"), ("invalid_request", Some("checks".to_owned())));
        assert_eq!(
            field(&format!(
                r#"{{"checks":[{{"user_id":"{USER}","resource_type":"team","resource_id":"{GENERATION}","operation":"read"}}]}}"#
            )),
            ("invalid_request", Some("checks[0].user_id".to_owned()))
        );
        assert_eq!(
            field(r#"{"checks":[{"resource_type":"team","resource_id":"x","operation":"read"}]}"#),
            ("invalid_uuid", Some("checks[0].resource_id".to_owned()))
        );
        assert_eq!(
            field(&format!(
                r#"{{"checks":[{{"resource_type":"team","resource_id":"{GENERATION}","operation":"read","min_revision":-3}}]}}"#
            )),
            ("invalid_request", Some("checks[0].min_revision".to_owned()))
        );
        let one = format!(
            r#"{{"resource_type":"team","resource_id":"{GENERATION}","operation":"read"}}"#
        );
        let many = format!(
            r#"{{"checks":[{}]}}"#,
            vec![one; MAX_BATCH_CHECKS + 1].join(",")
        );
        assert!(matches!(error(&many), EdgeError::PayloadTooLarge(_)));
        let huge = format!(r#"{{"checks":[],"pad":"{}"}}"#, "x".repeat(MAX_BODY_BYTES));
        assert!(matches!(error(&huge), EdgeError::PayloadTooLarge(_)));
    }
}
