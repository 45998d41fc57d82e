//! The closed vocabularies of DOMAIN.md: resource types, operations, roles, levels, statuses,
//! access methods and deny reasons, each parsed from and written as its wire string.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{ParseError, ParseErrorKind};
use crate::id::UserId;

macro_rules! wire_enum {
    (
        $(#[$doc:meta])*
        $name:ident, $kind:ident, $field:literal, $expected:literal {
            $( $(#[$vdoc:meta])* $variant:ident = $wire:literal ),+ $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $( $(#[$vdoc])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The wire field this value is usually read from, used in parse errors.
            pub const FIELD: &'static str = $field;

            /// The wire string.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire),+
                }
            }

            /// Parses the wire string (exact, case-sensitive), naming `field` in the error.
            pub fn parse(input: &str, field: &'static str) -> Result<Self, ParseError> {
                match input {
                    $($wire => Ok(Self::$variant),)+
                    _ => Err(ParseError::new(ParseErrorKind::$kind, field, $expected)),
                }
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
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
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

wire_enum!(
    /// The kinds of resource a question may be about.
    ResourceType, InvalidResourceType, "resource_type", "one of generation, project, team" {
        /// An AI generation (image, video, audio).
        Generation = "generation",
        /// A project grouping generations.
        Project = "project",
        /// A team of users.
        Team = "team",
    }
);

wire_enum!(
    /// The operations a principal may ask for.
    Operation, InvalidOperation, "operation",
    "one of read, download, write, delete, share, admin" {
        /// See the resource.
        Read = "read",
        /// Download its media.
        Download = "download",
        /// Change it.
        Write = "write",
        /// Delete it.
        Delete = "delete",
        /// Share it with others.
        Share = "share",
        /// Administer it.
        Admin = "admin",
    }
);

wire_enum!(
    /// Roles, weakest to strongest (the derived `Ord` follows this order).
    Role, InvalidRequest, "role", "one of viewer, editor, admin, owner" {
        /// May read.
        Viewer = "viewer",
        /// May read, download and write.
        Editor = "editor",
        /// May also delete and share.
        Admin = "admin",
        /// May do everything.
        Owner = "owner",
    }
);

wire_enum!(
    /// A project's visibility.
    Visibility, InvalidRequest, "visibility", "one of private, team-only, public" {
        /// Only the owner (team links count as nothing).
        Private = "private",
        /// The owner and members of linked teams.
        TeamOnly = "team-only",
        /// As team-only, plus reads by anyone.
        Public = "public",
    }
);

wire_enum!(
    /// The level a team is linked to a project with; it caps the members' roles.
    AccessLevel, InvalidRequest, "access_level", "one of read, write, admin" {
        /// Caps at viewer.
        Read = "read",
        /// Caps at editor.
        Write = "write",
        /// Caps at admin.
        Admin = "admin",
    }
);

wire_enum!(
    /// The level of an explicit generation share.
    ShareLevel, InvalidRequest, "permission_level", "one of read, download, edit" {
        /// Read.
        Read = "read",
        /// Read and download.
        Download = "download",
        /// Read, download and write.
        Edit = "edit",
    }
);

wire_enum!(
    /// A generation's status; only `completed` ones are public.
    GenerationStatus, InvalidRequest, "status",
    "one of pending, processing, completed, failed, cancelled" {
        /// Queued.
        Pending = "pending",
        /// Running.
        Processing = "processing",
        /// Done.
        Completed = "completed",
        /// Failed.
        Failed = "failed",
        /// Cancelled.
        Cancelled = "cancelled",
    }
);

wire_enum!(
    /// How a grant was reached. Declared strongest first: a smaller value is stronger.
    AccessMethod, InvalidRequest, "access_method",
    "one of direct_owner, project_owner, team_owner, team_member, explicit_share, public_access" {
        /// The principal owns the resource.
        DirectOwner = "direct_owner",
        /// The principal owns the generation's project.
        ProjectOwner = "project_owner",
        /// The principal is the team's owner member.
        TeamOwner = "team_owner",
        /// Through membership of a team (linked to the project, or the team itself).
        TeamMember = "team_member",
        /// Through an active, unexpired generation share.
        ExplicitShare = "explicit_share",
        /// A read of something public.
        PublicAccess = "public_access",
    }
);

wire_enum!(
    /// Why a question was denied.
    DenyReason, InvalidRequest, "reason",
    "one of user_inactive, user_not_found, resource_not_found, no_relationship, insufficient_role, share_expired, anonymous_not_allowed" {
        /// The principal's user row is inactive.
        UserInactive = "user_inactive",
        /// The principal has no user row.
        UserNotFound = "user_not_found",
        /// The resource does not exist.
        ResourceNotFound = "resource_not_found",
        /// Nothing relates the principal to the resource.
        NoRelationship = "no_relationship",
        /// The principal holds a role, too weak for the operation.
        InsufficientRole = "insufficient_role",
        /// Only an expired share relates the principal to the resource.
        ShareExpired = "share_expired",
        /// Anonymous principals may only read public things.
        AnonymousNotAllowed = "anonymous_not_allowed",
    }
);

impl Role {
    /// Whether this role allows `operation` (DOMAIN.md's role table).
    pub const fn allows(self, operation: Operation) -> bool {
        match operation {
            Operation::Read => true,
            Operation::Download | Operation::Write => !matches!(self, Self::Viewer),
            Operation::Delete | Operation::Share => matches!(self, Self::Admin | Self::Owner),
            Operation::Admin => matches!(self, Self::Owner),
        }
    }
}

impl AccessLevel {
    /// The strongest role a team linked at this level can confer.
    pub const fn role_cap(self) -> Role {
        match self {
            Self::Read => Role::Viewer,
            Self::Write => Role::Editor,
            Self::Admin => Role::Admin,
        }
    }
}

impl ShareLevel {
    /// The role a share reports (`editor` for `edit`, else `viewer`).
    pub const fn role(self) -> Role {
        match self {
            Self::Edit => Role::Editor,
            Self::Read | Self::Download => Role::Viewer,
        }
    }

    /// Whether a share at this level allows `operation`. A `download` share allows a download
    /// although its reported role (`viewer`) would not.
    pub const fn allows(self, operation: Operation) -> bool {
        match operation {
            Operation::Read => true,
            Operation::Download => matches!(self, Self::Download | Self::Edit),
            Operation::Write => matches!(self, Self::Edit),
            Operation::Delete | Operation::Share | Operation::Admin => false,
        }
    }
}

/// Who is asking: an authenticated user, or nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Principal {
    /// An unauthenticated caller.
    Anonymous,
    /// An authenticated user.
    User(UserId),
}

impl Principal {
    /// Parses the wire form: `None` (JSON null) is anonymous, else a user id.
    pub fn parse(input: Option<&str>, field: &'static str) -> Result<Self, ParseError> {
        match input {
            None => Ok(Self::Anonymous),
            Some(text) => UserId::parse(text, field).map(Self::User),
        }
    }

    /// The user id, if any.
    pub const fn user_id(&self) -> Option<UserId> {
        match self {
            Self::Anonymous => None,
            Self::User(id) => Some(*id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_table() {
        use Operation::*;
        let table: [(Role, [bool; 6]); 4] = [
            (Role::Viewer, [true, false, false, false, false, false]),
            (Role::Editor, [true, true, true, false, false, false]),
            (Role::Admin, [true, true, true, true, true, false]),
            (Role::Owner, [true, true, true, true, true, true]),
        ];
        for (role, allowed) in table {
            for (operation, expected) in [Read, Download, Write, Delete, Share, Admin]
                .into_iter()
                .zip(allowed)
            {
                assert_eq!(role.allows(operation), expected, "{role} {operation}");
            }
        }
    }

    #[test]
    fn wire_strings_round_trip_and_unknowns_name_the_field() {
        for op in Operation::ALL {
            assert_eq!(Operation::parse(op.as_str(), "operation"), Ok(*op));
        }
        assert_eq!(
            Visibility::parse("team-only", "visibility"),
            Ok(Visibility::TeamOnly)
        );
        let error = Operation::parse("READ", "operation").unwrap_err();
        assert_eq!(
            (error.code(), error.field),
            ("invalid_operation", "operation")
        );
        let error = ResourceType::parse("file", "resource_type").unwrap_err();
        assert_eq!(error.code(), "invalid_resource_type");
        assert!(AccessMethod::DirectOwner < AccessMethod::PublicAccess);
        assert!(Role::Viewer < Role::Owner);
    }
}
