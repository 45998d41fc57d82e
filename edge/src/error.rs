//! One error type for the worker, [`EdgeError`], and one function, [`respond`], that turns it
//! into API.md's JSON error `{"error": {"code", "message", "field"?}}`.
//!
//! Never `respond_with_errors`: that sends `e.to_string()` of arbitrary errors to clients. Here
//! each variant decides its own client-facing message, and 5xx bodies say nothing internal (the
//! detail goes to the worker's log).

use authz_core::jwt::JwtError;
use authz_core::wire::WireError;
use serde_json::{Value, json};
use worker::{Headers, Response};

/// Every error the worker answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeError {
    /// A request the core's wire parsers refuse: 400 malformed input (naming the parameter
    /// or body field at fault, `checks[3].resource_id` in a batch), 413 a body or batch over
    /// the limits.
    Request(WireError),
    /// Missing, malformed, expired or wrongly signed credentials (401).
    Unauthenticated(&'static str),
    /// No such route (404).
    NotFound,
    /// A route that exists for other methods (405).
    MethodNotAllowed(&'static str),
    /// The origin is down, slow or answered something unexpected (503). The detail is logged.
    Unavailable(String),
    /// A binding is missing (503: the worker cannot decide). The detail is logged.
    Misconfigured(&'static str),
    /// Over a rate limit (429, with `Retry-After`).
    RateLimited {
        /// Whole seconds to wait, at least 1.
        retry_after_seconds: u64,
    },
}

impl EdgeError {
    /// A 400 `invalid_request` naming `field`.
    pub fn invalid_request(message: impl Into<String>, field: impl Into<String>) -> Self {
        Self::Request(WireError::invalid_request(message, field))
    }

    /// A refused JWT: the core's message for it, which never echoes the token.
    pub const fn jwt(error: JwtError) -> Self {
        Self::Unauthenticated(error.message())
    }

    /// API.md's code.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Request(error) => error.code,
            Self::Unauthenticated(_) => "unauthenticated",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) | Self::Misconfigured(_) => "unavailable",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::Request(error) => error.status(),
            Self::Unauthenticated(_) => 401,
            Self::NotFound => 404,
            Self::MethodNotAllowed(_) => 405,
            Self::RateLimited { .. } => 429,
            Self::Unavailable(_) | Self::Misconfigured(_) => 503,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let message = match self {
            Self::Request(error) => error.message.clone(),
            Self::Unauthenticated(message) => (*message).to_owned(),
            Self::NotFound => "no such endpoint".to_owned(),
            Self::MethodNotAllowed(allowed) => format!("method not allowed; use {allowed}"),
            Self::RateLimited {
                retry_after_seconds,
            } => format!("over the rate limit; retry after {retry_after_seconds} s"),
            Self::Unavailable(_) | Self::Misconfigured(_) => {
                "the service cannot decide now; retry later".to_owned()
            }
        };
        let mut error = json!({ "code": self.code(), "message": message });
        if let Self::Request(WireError {
            field: Some(field), ..
        }) = self
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
        EdgeError::RateLimited {
            retry_after_seconds,
        } => {
            let _ = headers.set("retry-after", &retry_after_seconds.max(&1).to_string());
        }
        _ => {}
    }
    Response::builder()
        .with_status(error.status())
        .with_headers(headers)
        .fixed(error.body().to_string().into_bytes())
}

impl From<WireError> for EdgeError {
    fn from(error: WireError) -> Self {
        Self::Request(error)
    }
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
            json!({"error": {"code": "unauthenticated", "message": "unsupported token algorithm"}}),
        );
        check(
            EdgeError::Unavailable("connection refused to 10.0.0.1".to_owned()),
            503,
            json!({"error": {"code": "unavailable", "message": "the service cannot decide now; retry later"}}),
        );
        check(
            EdgeError::Request(WireError::too_many_checks(101)),
            413,
            json!({"error": {"code": "payload_too_large", "message": "a batch holds at most 100 checks, got 101"}}),
        );
        check(
            EdgeError::RateLimited {
                retry_after_seconds: 10,
            },
            429,
            json!({"error": {"code": "rate_limited", "message": "over the rate limit; retry after 10 s"}}),
        );
    }
}
