//! The one error of the wire parsers: API.md's `{code, message, field}`, which each service
//! renders as its JSON error body with the status [`WireError::status`] gives.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;
use core::fmt;

use crate::error::ParseError;
#[cfg(test)]
use crate::error::{QUOTED_CHARS, shorten};

use super::{MAX_BATCH_CHECKS, MAX_BODY_BYTES};

/// Client input the parsers refuse, as API.md's error object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// API.md's code: `invalid_uuid`, `invalid_resource_type`, `invalid_operation`,
    /// `invalid_request`, `payload_too_large` or `forbidden`.
    pub code: &'static str,
    /// What was expected, quoting at most [`QUOTED_CHARS`](crate::error::QUOTED_CHARS) characters of the bad input.
    pub message: String,
    /// The parameter or body field at fault (`checks[3].resource_id` in a batch), if one is.
    pub field: Option<String>,
}

impl WireError {
    /// A 400 `invalid_request` naming `field`.
    pub fn invalid_request(message: impl Into<String>, field: impl Into<String>) -> Self {
        Self {
            code: "invalid_request",
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// A 400 `invalid_request` about the body as a whole (no field).
    pub fn invalid_body(message: impl Into<String>) -> Self {
        Self {
            code: "invalid_request",
            message: message.into(),
            field: None,
        }
    }

    /// A core parse error of `input`, reported at `field`.
    pub fn parse(error: &ParseError, input: &str, field: impl Into<String>) -> Self {
        Self {
            code: error.code(),
            message: error.message(input),
            field: Some(field.into()),
        }
    }

    /// The 413 of a body over [`MAX_BODY_BYTES`].
    pub fn body_too_large() -> Self {
        Self {
            code: "payload_too_large",
            message: format!("request body over {MAX_BODY_BYTES} bytes"),
            field: None,
        }
    }

    /// The 413 of a batch over [`MAX_BATCH_CHECKS`].
    pub fn too_many_checks(count: usize) -> Self {
        Self {
            code: "payload_too_large",
            message: format!("a batch holds at most {MAX_BATCH_CHECKS} checks, got {count}"),
            field: None,
        }
    }

    /// The 403 of an end user asking for another principal.
    pub fn not_own_subject() -> Self {
        Self {
            code: "forbidden",
            message: "an end-user token may only ask for its own subject".to_owned(),
            field: None,
        }
    }

    /// The HTTP status of this error: 403, 413 or 400.
    pub fn status(&self) -> u16 {
        match self.code {
            "forbidden" => 403,
            "payload_too_large" => 413,
            _ => 400,
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for WireError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_codes() {
        assert_eq!(WireError::body_too_large().status(), 413);
        assert_eq!(WireError::too_many_checks(101).status(), 413);
        assert_eq!(WireError::not_own_subject().status(), 403);
        assert_eq!(WireError::invalid_body("x").status(), 400);
        assert_eq!(WireError::invalid_request("x", "f").status(), 400);
    }

    #[test]
    fn shorten_cuts_long_input() {
        assert_eq!(shorten("abc"), "abc");
        let long = "é".repeat(QUOTED_CHARS + 1);
        assert_eq!(shorten(&long), format!("{}...", "é".repeat(QUOTED_CHARS)));
        assert_eq!(shorten(&"x".repeat(QUOTED_CHARS)), "x".repeat(QUOTED_CHARS));
    }
}
