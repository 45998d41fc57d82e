//! One error type for every handler, rendered as API.md's JSON error shape
//! `{"error": {"code", "message", "field"?}}`. Each kind has a short static code used both in
//! the body and as the metrics label. 5xx bodies say nothing internal; the detail is logged.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The API.md code of an error response, left in the response's extensions so that the
/// request middleware can count errors by code without parsing bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub &'static str);

/// Every error the HTTP API can answer with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Malformed input (400). `code` is one of API.md's 400 codes.
    #[error("{message}")]
    BadRequest {
        /// `invalid_uuid`, `invalid_resource_type`, `invalid_operation` or `invalid_request`.
        code: &'static str,
        /// What was expected, quoting the bad input.
        message: String,
        /// The input field at fault.
        field: Option<String>,
    },
    /// Missing, malformed, expired or wrongly signed credentials (401).
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// Valid credentials that may not do this (403).
    #[error("{0}")]
    Forbidden(&'static str),
    /// No such route (404).
    #[error("no such endpoint")]
    NotFound,
    /// Body over the limit or a batch over 100 checks (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Over a rate limit (429), with the seconds to wait.
    #[error("rate limit exceeded")]
    RateLimited {
        /// `Retry-After`, in seconds.
        retry_after_seconds: u64,
    },
    /// The service cannot decide now (503): never a guess. The detail is logged, not sent.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl AppError {
    /// A 400 with `code`, naming `field`.
    pub fn bad_request(
        code: &'static str,
        message: impl Into<String>,
        field: Option<String>,
    ) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
            field,
        }
    }

    /// A 400 `invalid_request` naming `field`.
    pub fn invalid_request(message: impl Into<String>, field: impl Into<String>) -> Self {
        Self::bad_request("invalid_request", message, Some(field.into()))
    }

    /// A core parse error of `input`, reported at `field` (which may be a path such as
    /// `checks[3].resource_id`).
    pub fn parse(error: &authz_core::ParseError, input: &str, field: String) -> Self {
        Self::bad_request(error.code(), error.message(input), Some(field))
    }

    /// API.md's code, also the metrics label.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. } => code,
            Self::Unauthenticated(_) => "unauthenticated",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound => "not_found",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) => "unavailable",
        }
    }

    /// The HTTP status.
    pub const fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            // The detail of a 503 stays in the log.
            Self::Unavailable(detail) => {
                tracing::warn!(%detail, "answering 503 unavailable");
                "the service cannot decide now; retry later".to_owned()
            }
            other => other.to_string(),
        };
        let mut error = json!({ "code": self.code(), "message": message });
        if let Self::BadRequest {
            field: Some(field), ..
        } = &self
        {
            error["field"] = json!(field);
        }
        metrics::counter!("authz_errors_total", "code" => self.code()).increment(1);
        let mut response = (status, Json(json!({ "error": error }))).into_response();
        response.extensions_mut().insert(ErrorCode(self.code()));
        match self {
            Self::RateLimited {
                retry_after_seconds,
            } => {
                if let Ok(value) = HeaderValue::from_str(&retry_after_seconds.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
            }
            Self::Unauthenticated(_) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}
