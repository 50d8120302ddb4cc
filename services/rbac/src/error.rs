//! The reasons the rbac service refuses a request: one enum, converted once
//! into the kit error (code, reason, ErrorInfo domain `crate::NAME`).
//! Generic refusals (a bad field, a hidden object, a missing permission)
//! are the kit's own; the engine's own errors ([`IndexError`],
//! [`SchemaError`]) are carried by the variants that answer them.

use std::time::Duration;

use tenantry_kit::error::{Code, Error as KitError};

use crate::engine::{IndexError, SchemaError};

/// How long a replica that cannot answer yet asks to be left alone.
const REPLICA_RETRY: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A check or lookup names an unknown type or permission, or a
    /// permission of another type: each with its own reason, so callers
    /// (identity, checking an API key's permissions) can tell them apart.
    #[error("invalid `{field}`: {0}", field = index_field(.0))]
    Index(IndexError),
    /// A type registration names a built-in type.
    #[error("{0}")]
    TypeBuiltIn(SchemaError),
    /// A type registration gives a registered type another parent.
    #[error("{0}")]
    ParentChanged(SchemaError),
    /// A type registration needs more permissions than the schema holds.
    #[error("{0}")]
    SchemaFull(SchemaError),
    /// A deletion of a built-in type.
    #[error("built-in types cannot be deleted")]
    BuiltInTypeDeleted,
    /// A registration of a type another service registered.
    #[error("the resource type `{name}` is registered by another service")]
    TypeOwnedByAnother {
        /// The type's name.
        name: String,
    },
    /// A deletion of a type that objects, other types or roles still use.
    #[error("objects, other types or custom roles still use this type")]
    TypeInUse {
        /// How many custom roles name the type's permissions.
        roles: i64,
        /// How many objects of the type exist.
        objects: i64,
    },
    /// A user outside the organization was added to one of its teams.
    #[error("only members of the organization can join its teams")]
    NotAMember,
    /// A user was added to a team they are in.
    #[error("the user is already in the team")]
    AlreadyInTeam,
    /// A membership names a user the organization's tree does not know.
    #[error("no such user in this organization's tree; invite people from outside it")]
    UserNotFound,
    /// A membership was given the owner role.
    #[error("the owner role changes only through an ownership transfer")]
    OwnerRoleReserved {
        /// The request field that named the role.
        field: String,
    },
    /// A membership was created for a member.
    #[error("the user is already a member")]
    AlreadyMember,
    /// An update of the owner's membership.
    #[error("the owner's roles change only through an ownership transfer")]
    OwnerMembership,
    /// A removal of the owner's membership.
    #[error("the owner cannot be removed; transfer the ownership first")]
    OwnerCannotLeave,
    /// A row changed between its read and its write.
    #[error("the {kind} changed; retry")]
    ConcurrentUpdate {
        /// What changed, as the message names it.
        kind: &'static str,
    },
    /// A second grant of one project to one subject.
    #[error("the subject already has a grant on this project")]
    AlreadyGranted,
    /// A custom role named like another of its organization.
    #[error("the organization has a role with this name")]
    RoleNameTaken,
    /// An update of a built-in role.
    #[error("built-in roles cannot change")]
    BuiltInRoleChanged,
    /// A deletion of a built-in role.
    #[error("built-in roles cannot be deleted")]
    BuiltInRoleDeleted,
    /// A deletion of a role still held or granted, with nothing to
    /// reassign it to.
    #[error(
        "members hold this role or projects are granted to it; name a role to reassign them to"
    )]
    RoleInUse {
        /// How many members hold the role.
        holders: usize,
        /// How many project grants name the role.
        grants: usize,
    },
    /// An invitation of an email that belongs to a member.
    #[error("this email belongs to a member of the organization")]
    AlreadyAMember,
    /// A second pending invitation of one email to one organization.
    #[error("this email already has a pending invitation to the organization")]
    InvitationPending,
    /// An invitation token that opens no pending invitation.
    #[error("no pending invitation has this token")]
    InvitationNotFound,
    /// An invitation accepted by someone whose verified email is another.
    #[error("the invitation is for another email address, or yours is not verified yet")]
    EmailMismatch,
    /// A resend or revocation of an invitation no longer pending.
    #[error("only a pending invitation can be {action}")]
    InvitationNotPending {
        /// What was asked (`resent`, `revoked`).
        action: &'static str,
    },
    /// A resend too soon after the last one, or past the most sends.
    #[error("the invitation was sent too recently or too often")]
    ResendRateLimited {
        /// How many sends one invitation may have.
        max_sends: u32,
        /// How long until the next send is allowed, when time is the limit.
        retry_after: Option<Duration>,
    },
    /// A member from an email domain the organization does not allow.
    #[error("the organization does not allow members from this email domain")]
    EmailDomainNotAllowed {
        /// The email's domain.
        domain: String,
    },
    /// A relationship update names an object that does not exist.
    #[error("{field} does not exist")]
    ObjectNotFound {
        /// The request field naming the object.
        field: String,
    },
    /// A relationship created twice.
    #[error("{field} already exists")]
    RelationshipExists {
        /// The request field naming the relationship.
        field: String,
    },
    /// A precondition of a relationship write does not hold.
    #[error("precondition {index} does not hold")]
    PreconditionFailed {
        /// The precondition's position in the request.
        index: usize,
    },
    /// A relationship update moves an object into another tree.
    #[error("an object stays in its organization tree")]
    CrossTenantMove,
    /// A deletion by filter matches more relationships than its limit.
    #[error("more relationships match than the limit; raise it or allow partial deletions")]
    TooManyRelationships {
        /// The limit the deletion had.
        limit: i64,
    },
    /// A `Watch` asked to start before the retained change history.
    #[error(
        "the start token is older than the retained change history; read the current state with ReadRelationships and watch from its token"
    )]
    StartCompacted,
    /// A running `Watch` fell behind the retained change history.
    #[error("the watch fell behind the retained change history; resynchronise")]
    WatchCompacted,
    /// A replica that cannot tell whether it is current.
    #[error("this replica cannot vouch for its freshness right now; retry")]
    ReplicaIsolated,
    /// A replica that has not reached the revision asked for in time.
    #[error("this replica has not caught up with the requested revision yet; retry")]
    IndexBehind,
}

/// The request field an index error is about.
fn index_field(error: &IndexError) -> &'static str {
    match error {
        IndexError::UnknownType(_) => "resource.object_type",
        _ => "permission",
    }
}

impl Error {
    /// Answers a write's unique violation (the database's ALREADY_EXISTS)
    /// with this refusal; any other failure as it is.
    pub(crate) fn on_conflict(self) -> impl FnOnce(KitError) -> KitError {
        move |error| {
            if error.code() == Code::AlreadyExists {
                self.into()
            } else {
                error
            }
        }
    }

    /// The code and the stable reason clients branch on.
    fn code_and_reason(&self) -> (Code, &'static str) {
        match self {
            Error::Index(IndexError::UnknownType(_)) => (Code::InvalidArgument, "UNKNOWN_TYPE"),
            Error::Index(IndexError::UnknownPermission(_)) => {
                (Code::InvalidArgument, "UNKNOWN_PERMISSION")
            }
            Error::Index(IndexError::WrongType { .. }) => {
                (Code::InvalidArgument, "PERMISSION_OF_ANOTHER_TYPE")
            }
            Error::Index(_) => (Code::InvalidArgument, "INVALID_ARGUMENT"),
            Error::TypeBuiltIn(_) => (Code::AlreadyExists, "TYPE_BUILT_IN"),
            Error::ParentChanged(_) => (Code::FailedPrecondition, "PARENT_CHANGED"),
            Error::SchemaFull(_) => (Code::FailedPrecondition, "SCHEMA_FULL"),
            Error::BuiltInTypeDeleted => (Code::FailedPrecondition, "TYPE_BUILT_IN"),
            Error::TypeOwnedByAnother { .. } => (Code::AlreadyExists, "TYPE_OWNED_BY_ANOTHER"),
            Error::TypeInUse { .. } => (Code::FailedPrecondition, "TYPE_IN_USE"),
            Error::NotAMember => (Code::FailedPrecondition, "NOT_A_MEMBER"),
            Error::AlreadyInTeam => (Code::AlreadyExists, "ALREADY_IN_TEAM"),
            Error::UserNotFound => (Code::NotFound, "USER_NOT_FOUND"),
            Error::OwnerRoleReserved { .. } => (Code::InvalidArgument, "OWNER_ROLE_RESERVED"),
            Error::AlreadyMember => (Code::AlreadyExists, "ALREADY_MEMBER"),
            Error::OwnerMembership => (Code::FailedPrecondition, "OWNER_MEMBERSHIP"),
            Error::OwnerCannotLeave => (Code::FailedPrecondition, "OWNER_CANNOT_LEAVE"),
            Error::ConcurrentUpdate { .. } => (Code::Aborted, "CONCURRENT_UPDATE"),
            Error::AlreadyGranted => (Code::AlreadyExists, "ALREADY_GRANTED"),
            Error::RoleNameTaken => (Code::AlreadyExists, "ROLE_NAME_TAKEN"),
            Error::BuiltInRoleChanged | Error::BuiltInRoleDeleted => {
                (Code::FailedPrecondition, "BUILT_IN_ROLE")
            }
            Error::RoleInUse { .. } => (Code::FailedPrecondition, "ROLE_IN_USE"),
            Error::AlreadyAMember => (Code::AlreadyExists, "ALREADY_A_MEMBER"),
            Error::InvitationPending => (Code::AlreadyExists, "INVITATION_PENDING"),
            Error::InvitationNotFound => (Code::NotFound, "INVITATION_NOT_FOUND"),
            Error::EmailMismatch => (Code::PermissionDenied, "EMAIL_MISMATCH"),
            Error::InvitationNotPending { .. } => {
                (Code::FailedPrecondition, "INVITATION_NOT_PENDING")
            }
            Error::ResendRateLimited { .. } => (Code::ResourceExhausted, "RESEND_RATE_LIMITED"),
            Error::EmailDomainNotAllowed { .. } => {
                (Code::FailedPrecondition, "EMAIL_DOMAIN_NOT_ALLOWED")
            }
            Error::ObjectNotFound { .. } => (Code::NotFound, "OBJECT_NOT_FOUND"),
            Error::RelationshipExists { .. } => (Code::AlreadyExists, "RELATIONSHIP_EXISTS"),
            Error::PreconditionFailed { .. } => (Code::FailedPrecondition, "PRECONDITION_FAILED"),
            Error::CrossTenantMove => (Code::FailedPrecondition, "CROSS_TENANT_MOVE"),
            Error::TooManyRelationships { .. } => {
                (Code::FailedPrecondition, "TOO_MANY_RELATIONSHIPS")
            }
            Error::StartCompacted | Error::WatchCompacted => {
                (Code::FailedPrecondition, "HISTORY_COMPACTED")
            }
            Error::ReplicaIsolated => (Code::Unavailable, "REPLICA_ISOLATED"),
            Error::IndexBehind => (Code::Unavailable, "INDEX_BEHIND"),
        }
    }
}

impl From<Error> for KitError {
    fn from(error: Error) -> KitError {
        let (code, reason) = error.code_and_reason();
        let kit = KitError::new(code, reason, error.to_string());
        match error {
            // The index's refusals have always answered in the kit's own
            // domain, as the field violations they are.
            Error::Index(index) => kit.with_violation(index_field(&index), index.to_string()),
            other => {
                let kit = kit.with_domain(crate::NAME);
                match other {
                    Error::OwnerRoleReserved { field } => {
                        kit.with_violation(field, "cannot be assigned")
                    }
                    Error::RoleNameTaken => kit.with_violation("role.display_name", "is in use"),
                    Error::TypeInUse { roles, objects } => kit
                        .with_metadata("roles", roles)
                        .with_metadata("objects", objects),
                    Error::RoleInUse { holders, grants } => kit
                        .with_metadata("holders", holders)
                        .with_metadata("grants", grants),
                    Error::ResendRateLimited {
                        max_sends,
                        retry_after,
                    } => {
                        let kit = kit.with_metadata("max_sends", max_sends);
                        match retry_after {
                            Some(delay) => kit.with_retry_after(delay),
                            None => kit,
                        }
                    }
                    Error::EmailDomainNotAllowed { domain } => kit.with_metadata("domain", domain),
                    Error::PreconditionFailed { index } => kit.with_metadata("index", index),
                    Error::TooManyRelationships { limit } => kit.with_metadata("limit", limit),
                    Error::ReplicaIsolated | Error::IndexBehind => {
                        kit.with_retry_after(REPLICA_RETRY)
                    }
                    _ => kit,
                }
            }
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> tonic::Status {
        KitError::from(error).into()
    }
}
