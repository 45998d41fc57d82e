//! The UUID standard of DOMAIN.md and the typed ids built on it.
//!
//! Accepted: the canonical hyphenated `8-4-4-4-12` form, 36 characters, hex digits in either
//! case, any version and variant. Rejected: every other layout (braces, `urn:uuid:`, the simple
//! form, whitespace), non-hex characters, the nil and the max UUID. Parsing allocates nothing
//! and never panics; output is always lowercase.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{ParseError, ParseErrorKind};

const EXPECTED: &str = "a canonical hyphenated uuid (8-4-4-4-12 hex digits), not nil and not max";

/// Parses the project's UUID standard into 16 bytes. `field` names the wire field in the error.
///
/// With exactly 36 bytes, the only layout `uuid` accepts is the hyphenated one (the simple form
/// has 32, braces 38, `urn:uuid:` 45), and its table-driven parser checks the hyphens' places
/// and every hex digit in either case: the standard's rule, at a fraction of a byte-by-byte
/// loop's cost (this runs twice per request on the origin's hot path).
pub fn parse_uuid(input: &str, field: &'static str) -> Result<uuid::Uuid, ParseError> {
    let error = || ParseError::new(ParseErrorKind::InvalidUuid, field, EXPECTED);
    let bytes = input.as_bytes();
    if bytes.len() != 36 {
        return Err(error());
    }
    let id = uuid::Uuid::try_parse_ascii(bytes).map_err(|_| error())?;
    if id.is_nil() || id.is_max() {
        return Err(error());
    }
    Ok(id)
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// The wire field this id is usually read from, used in parse errors.
            pub const FIELD: &'static str = $field;

            /// Parses the UUID standard, naming `field` in the error.
            pub fn parse(input: &str, field: &'static str) -> Result<Self, ParseError> {
                parse_uuid(input, field).map(Self)
            }

            /// Wraps an already-validated UUID. Returns `None` for nil and max.
            pub fn from_uuid(id: uuid::Uuid) -> Option<Self> {
                (!id.is_nil() && !id.is_max()).then_some(Self(id))
            }

            /// The UUID.
            pub const fn as_uuid(&self) -> &uuid::Uuid {
                &self.0
            }

            /// The 16 bytes, big-endian as written.
            pub const fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(input: &str) -> Result<Self, Self::Err> {
                Self::parse(input, $field)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut buffer = uuid::Uuid::encode_buffer();
                serializer.serialize_str(self.0.hyphenated().encode_lower(&mut buffer))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <alloc::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::parse(&text, $field).map_err(serde::de::Error::custom)
            }
        }
    };
}

typed_id!(
    /// A user's id.
    UserId,
    "user_id"
);
typed_id!(
    /// A team's id.
    TeamId,
    "team_id"
);
typed_id!(
    /// A project's id.
    ProjectId,
    "project_id"
);
typed_id!(
    /// A generation's id.
    GenerationId,
    "generation_id"
);

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::{String, ToString};

    fn check(input: &str, expected: Option<&str>) {
        let got = parse_uuid(input, "id").ok().map(|id| {
            let mut buffer = uuid::Uuid::encode_buffer();
            String::from(id.hyphenated().encode_lower(&mut buffer))
        });
        assert_eq!(got.as_deref(), expected, "input {input:?}");
    }

    #[test]
    fn uuid_table() {
        let lower = "6f1d2c3b-4a59-4e68-8d7c-0b1a2f3e4d5c";
        check(lower, Some(lower));
        check("6F1D2C3B-4A59-4E68-8D7C-0B1A2F3E4D5C", Some(lower));
        check("6F1d2C3b-4a59-4E68-8d7C-0b1A2f3E4d5C", Some(lower));
        // v1, v4, v7 and a non-RFC variant are all accepted.
        check(
            "c232ab00-9414-11ec-b3c8-9f6bdeced846",
            Some("c232ab00-9414-11ec-b3c8-9f6bdeced846"),
        );
        check(
            "017f22e2-79b0-7cc3-98c4-dc0c0c07398f",
            Some("017f22e2-79b0-7cc3-98c4-dc0c0c07398f"),
        );
        check(
            "00000000-0000-0000-0000-000000000001",
            Some("00000000-0000-0000-0000-000000000001"),
        );
        check(
            "ffffffff-ffff-ffff-ffff-fffffffffffe",
            Some("ffffffff-ffff-ffff-ffff-fffffffffffe"),
        );
        for rejected in [
            "00000000-0000-0000-0000-000000000000",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
            "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
            "{6f1d2c3b-4a59-4e68-8d7c-0b1a2f3e4d5c}",
            "urn:uuid:6f1d2c3b-4a59-4e68-8d7c-0b1a2f3e4d5c",
            "6f1d2c3b4a594e688d7c0b1a2f3e4d5c",
            " 6f1d2c3b-4a59-4e68-8d7c-0b1a2f3e4d5c",
            "6f1d2c3b-4a59-4e68-8d7c-0b1a2f3e4d5c ",
            "6f1d2c3b-4a59-4e68-8d7c-0b1a2f3e4d5",
            "6f1d2c3b-4a59-4e68-8d7c-0b1a2f3e4d5c0",
            "6f1d2c3b-4a59-4e68-8d7c-0b1a2f3e4d5g",
            "6f1d2c3b_4a59-4e68-8d7c-0b1a2f3e4d5c",
            "6f1d2c3b-4a594-e68-8d7c-0b1a2f3e4d5c",
            "6f1d2c3b-4a59-4e68-8d7c-0b1a2f3e4d5\u{e9}",
            "",
            "anonymous",
        ] {
            check(rejected, None);
        }
    }

    #[test]
    fn error_names_field_and_code() {
        let error = UserId::parse("nope", "user_id").unwrap_err();
        assert_eq!(error.code(), "invalid_uuid");
        assert_eq!(error.field, "user_id");
        assert_eq!(
            error.message("nope"),
            "invalid user_id \"nope\": expected a canonical hyphenated uuid (8-4-4-4-12 hex digits), not nil and not max"
        );
    }

    #[test]
    fn a_million_random_v4_and_some_v7_are_accepted() {
        for _ in 0..1_000_000 {
            let id = uuid::Uuid::new_v4();
            let text = id.hyphenated().to_string();
            assert_eq!(parse_uuid(&text, "id"), Ok(id), "{text}");
            let upper = text.to_uppercase();
            assert_eq!(parse_uuid(&upper, "id"), Ok(id), "{upper}");
        }
        for _ in 0..10_000 {
            let id = uuid::Uuid::now_v7();
            assert_eq!(parse_uuid(&id.to_string(), "id"), Ok(id));
        }
    }
}
