//! Reading request bodies: a 64 KiB limit answered with API.md's 413, then the core's wire
//! parsers (`authz_core::wire::request`), with the principal resolved against the caller (a
//! service names it; an end user is it).

use authz_core::wire::request::{self, Check, PrincipalSource};
use authz_core::wire::{MAX_BODY_BYTES, WireError};
use axum::body::{Body, Bytes};

use crate::auth::Caller;
use crate::error::AppError;

/// Reads the whole body, refusing more than 64 KiB (413) and a body slower than
/// `AUTHZ_BODY_READ_TIMEOUT_MS` (408, `crate::connection::TimedBody`).
pub async fn read_body(body: Body) -> Result<Bytes, AppError> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|error| match crate::connection::timed_out(&error) {
            Some(millis) => AppError::RequestTimeout(millis),
            None => AppError::Request(WireError::body_too_large()),
        })
}

impl From<Caller> for PrincipalSource {
    fn from(caller: Caller) -> Self {
        match caller {
            Caller::Service => Self::Named,
            Caller::EndUser(user) => Self::Subject(user),
        }
    }
}

/// Parses the body of `POST /v1/authorize` for `caller`.
pub fn parse_single(body: &[u8], caller: Caller) -> Result<Check, AppError> {
    Ok(request::parse_single(body, caller.into())?)
}

/// Parses the body of `POST /v1/authorize/batch` for `caller`.
pub fn parse_batch(body: &[u8], caller: Caller) -> Result<Vec<Check>, AppError> {
    Ok(request::parse_batch(body, caller.into())?)
}
