//! One error type for every handler, rendered as API.md's JSON error shape
//! `{"error": {"code", "message", "field"?}}`. Each kind has a short static code used both in
//! the body and as the metrics label. 5xx bodies say nothing internal; the detail is logged.

use authz_core::wire::WireError;
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
    /// A request the core's wire parsers refuse: 400 malformed input, 403 an end user asking
    /// for another principal, 413 a body or batch over the limits.
    #[error("{0}")]
    Request(WireError),
    /// Missing, malformed, expired or wrongly signed credentials (401).
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// Valid credentials that may not do this (403).
    #[error("{0}")]
    Forbidden(&'static str),
    /// No such route (404).
    #[error("no such endpoint")]
    NotFound,
    /// Over a rate limit (429), with the seconds to wait.
    #[error("rate limit exceeded")]
    RateLimited {
        /// `Retry-After`, in seconds.
        retry_after_seconds: u64,
    },
    /// The body did not arrive within `AUTHZ_BODY_READ_TIMEOUT_MS` (408; the connection is
    /// closed after the answer).
    #[error("the request body did not arrive within {0} ms")]
    RequestTimeout(u64),
    /// The service cannot decide now (503): never a guess. The detail is logged, not sent.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl AppError {
    /// API.md's code, also the metrics label.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Request(error) => error.code,
            Self::Unauthenticated(_) => "unauthenticated",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound => "not_found",
            Self::RateLimited { .. } => "rate_limited",
            Self::RequestTimeout(_) => "request_timeout",
            Self::Unavailable(_) => "unavailable",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Request(error) => {
                StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST)
            }
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
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
        if let Self::Request(WireError {
            field: Some(field), ..
        }) = &self
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
            Self::RequestTimeout(_) => {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

impl From<WireError> for AppError {
    fn from(error: WireError) -> Self {
        Self::Request(error)
    }
}
