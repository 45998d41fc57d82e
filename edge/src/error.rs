//! One error type for the worker, [`EdgeError`], and one function, [`respond`], that turns it
//! into API.md's JSON error `{"error": {"code", "message", "field"?}}`.
//!
//! Never `respond_with_errors`: that sends `e.to_string()` of arbitrary errors to clients. Here
//! each variant decides its own client-facing message, and 5xx bodies say nothing internal (the
//! detail goes to the worker's log).

use authz_core::ParseError;
use authz_core::jwt::JwtError;
use serde_json::{Value, json};
use worker::{Headers, Response};

/// Every error the worker answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeError {
    /// Malformed input (400).
    BadRequest {
        /// `invalid_uuid`, `invalid_resource_type`, `invalid_operation` or `invalid_request`.
        code: &'static str,
        /// What was expected, quoting the bad input.
        message: String,
        /// The query parameter or body field at fault (`checks[3].resource_id` in a batch).
        field: Option<String>,
    },
    /// Missing, malformed, expired or wrongly signed credentials (401).
    Unauthenticated(&'static str),
    /// No such route (404).
    NotFound,
    /// A route that exists for other methods (405).
    MethodNotAllowed(&'static str),
    /// A body over 64 KiB or a batch over 100 checks (413).
    PayloadTooLarge(String),
    /// The origin is down, slow or answered something unexpected (503). The detail is logged.
    Unavailable(String),
    /// A binding is missing (503: the worker cannot decide). The detail is logged.
    Misconfigured(&'static str),
}

impl EdgeError {
    /// A 400 `invalid_request` naming `field`.
    pub fn invalid_request(message: impl Into<String>, field: impl Into<String>) -> Self {
        Self::BadRequest {
            code: "invalid_request",
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// A core parse error of `input`, reported at `field`.
    pub fn parse(error: &ParseError, input: &str, field: impl Into<String>) -> Self {
        Self::BadRequest {
            code: error.code(),
            message: error.message(input),
            field: Some(field.into()),
        }
    }

    /// A refused JWT. The message says which check failed, never echoing the token.
    pub const fn jwt(error: JwtError) -> Self {
        Self::Unauthenticated(match error {
            JwtError::Expired => "token expired",
            JwtError::NotYetValid => "token not yet valid",
            JwtError::BadSignature => "invalid token signature",
            JwtError::UnsupportedAlgorithm => "unsupported token algorithm: only HS256 is accepted",
            JwtError::MissingExp => "token has no exp claim",
            JwtError::InvalidSubject => "token sub is not a valid user uuid",
            JwtError::WrongAudience => "token audience mismatch",
            JwtError::TooLarge => "token too large",
            JwtError::Malformed | JwtError::BadBase64 | JwtError::InvalidClaims => {
                "malformed token"
            }
        })
    }

    /// API.md's code.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. } => code,
            Self::Unauthenticated(_) => "unauthenticated",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::Unavailable(_) | Self::Misconfigured(_) => "unavailable",
        }
    }

    /// The HTTP status.
    pub const fn status(&self) -> u16 {
        match self {
            Self::BadRequest { .. } => 400,
            Self::Unauthenticated(_) => 401,
            Self::NotFound => 404,
            Self::MethodNotAllowed(_) => 405,
            Self::PayloadTooLarge(_) => 413,
            Self::Unavailable(_) | Self::Misconfigured(_) => 503,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let message = match self {
            Self::BadRequest { message, .. } | Self::PayloadTooLarge(message) => message.clone(),
            Self::Unauthenticated(message) => (*message).to_owned(),
            Self::NotFound => "no such endpoint".to_owned(),
            Self::MethodNotAllowed(allowed) => format!("method not allowed; use {allowed}"),
            Self::Unavailable(_) | Self::Misconfigured(_) => {
                "the service cannot decide now; retry later".to_owned()
            }
        };
        let mut error = json!({ "code": self.code(), "message": message });
        if let Self::BadRequest {
            field: Some(field), ..
        } = self
        {
            error["field"] = json!(field);
        }
        json!({ "error": error })
    }
}

/// The response for `error`: status, JSON body, and `WWW-Authenticate` on a 401 or `Allow` on
/// a 405. A 503's detail is logged here, once.
pub fn respond(error: &EdgeError) -> Response {
    match error {
        EdgeError::Unavailable(detail) => worker::console_warn!("503 unavailable: {detail}"),
        EdgeError::Misconfigured(detail) => worker::console_error!("503 misconfigured: {detail}"),
        _ => {}
    }
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json");
    match error {
        EdgeError::Unauthenticated(_) => {
            let _ = headers.set("www-authenticate", "Bearer");
        }
        EdgeError::MethodNotAllowed(allowed) => {
            let _ = headers.set("allow", allowed);
        }
        _ => {}
    }
    Response::builder()
        .with_status(error.status())
        .with_headers(headers)
        .fixed(error.body().to_string().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(error: EdgeError, status: u16, expected: Value) {
        assert_eq!(error.status(), status);
        assert_eq!(error.body(), expected);
    }

    #[test]
    fn bodies_follow_the_api_error_shape() {
        check(
            EdgeError::invalid_request("missing parameter \"operation\"", "operation"),
            400,
            json!({"error": {"code": "invalid_request", "message": "missing parameter \"operation\"", "field": "operation"}}),
        );
        check(
            EdgeError::jwt(JwtError::UnsupportedAlgorithm),
            401,
            json!({"error": {"code": "unauthenticated", "message": "unsupported token algorithm: only HS256 is accepted"}}),
        );
        check(
            EdgeError::Unavailable("connection refused to 10.0.0.1".to_owned()),
            503,
            json!({"error": {"code": "unavailable", "message": "the service cannot decide now; retry later"}}),
        );
        check(
            EdgeError::PayloadTooLarge("a batch holds at most 100 checks, got 101".to_owned()),
            413,
            json!({"error": {"code": "payload_too_large", "message": "a batch holds at most 100 checks, got 101"}}),
        );
    }
}
