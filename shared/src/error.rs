//! Errors of parsing at the boundary: each names the wire field at fault and carries the
//! short static code of API.md's error table, so the origin and the edge map it to one JSON shape.
//!
//! The decision function itself never returns an error (see `decide`).

use core::fmt;

/// What kind of input was wrong. Its [`code`](ParseErrorKind::code) is API.md's error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// Not a UUID of the project's standard (layout, hex, nil or max).
    InvalidUuid,
    /// Not one of `generation`, `project`, `team`.
    InvalidResourceType,
    /// Not one of the six operations.
    InvalidOperation,
    /// Any other malformed value (an unknown role, level, status, visibility or timestamp).
    InvalidRequest,
}

impl ParseErrorKind {
    /// API.md's error code for this kind.
    pub const fn code(self) -> &'static str {
        match self {
            Self::InvalidUuid => "invalid_uuid",
            Self::InvalidResourceType => "invalid_resource_type",
            Self::InvalidOperation => "invalid_operation",
            Self::InvalidRequest => "invalid_request",
        }
    }
}

/// A value at the boundary that does not parse. `field` is the wire name of the input at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError {
    /// The kind, which gives the API code.
    pub kind: ParseErrorKind,
    /// The wire name of the field (`user_id`, `resource_id`, `operation`, ...).
    pub field: &'static str,
    /// What was expected, as a lowercase sentence fragment without a trailing period.
    pub expected: &'static str,
}

impl ParseError {
    /// Builds an error for `field` of `kind`, expecting `expected`.
    pub const fn new(kind: ParseErrorKind, field: &'static str, expected: &'static str) -> Self {
        Self {
            kind,
            field,
            expected,
        }
    }

    /// Returns the same error attributed to another wire field.
    #[must_use]
    pub const fn with_field(mut self, field: &'static str) -> Self {
        self.field = field;
        self
    }

    /// API.md's error code.
    pub const fn code(&self) -> &'static str {
        self.kind.code()
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` must be {}", self.field, self.expected)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ParseError {}

impl ParseError {
    /// The client-facing message, quoting the bad input (cut by [`shorten`] so an error never
    /// echoes a whole oversized value).
    pub fn message(&self, input: &str) -> alloc::string::String {
        alloc::format!(
            "invalid {} \"{}\": expected {}",
            self.field,
            shorten(input),
            self.expected
        )
    }
}

/// The most characters of client input an error message quotes (then `...`).
pub const QUOTED_CHARS: usize = 64;

/// `text` cut to [`QUOTED_CHARS`] characters, with `...` when it was longer: how every error
/// message of the boundary quotes client input.
pub fn shorten(text: &str) -> alloc::string::String {
    let mut shown: alloc::string::String = text.chars().take(QUOTED_CHARS).collect();
    if text.chars().nth(QUOTED_CHARS).is_some() {
        shown.push_str("...");
    }
    shown
}
