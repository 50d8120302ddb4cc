//! The reasons the organization service refuses a request: one enum,
//! converted once into the kit error (code, reason, ErrorInfo domain
//! `crate::NAME`). Generic refusals (a bad field, a hidden object, a missing
//! permission) are the kit's own.

use tenantry_kit::error::{Code, Error as KitError};
use tenantry_kit::permission::Permission;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A new or changed organization slug that a live organization holds.
    #[error("the slug is in use")]
    SlugTaken {
        /// The slug asked for.
        slug: String,
    },
    /// A new or changed team or project slug that a live sibling holds.
    #[error("the slug is in use in the organization")]
    ChildSlugTaken {
        /// The slug asked for.
        slug: String,
    },
    /// A new or changed environment slug that the project has already.
    #[error("the project already has this environment")]
    EnvironmentSlugTaken {
        /// The slug asked for.
        slug: String,
    },
    /// A create or move that would make the tree deeper than allowed.
    #[error("an organization tree is at most {max} levels deep")]
    TreeTooDeep {
        /// The deepest a tree may be.
        max: i64,
    },
    /// A department under an organization that switched departments off.
    #[error("the {holder} has departments switched off")]
    DepartmentsDisabled {
        /// Which organization refuses: `organization` or `new parent`.
        holder: &'static str,
    },
    /// A move of a root organization.
    #[error("a root organization cannot be moved")]
    RootCannotMove,
    /// A move to a parent in another tree.
    #[error("an organization moves only within its own tree")]
    CrossTreeMove,
    /// A move under the organization itself or one of its descendants.
    #[error("an organization cannot move under itself or one of its descendants")]
    MoveCycle,
    /// A delete without `force` of an organization with live children.
    #[error(
        "the organization has live child organizations, teams or projects; delete them first or set force"
    )]
    OrganizationNotEmpty,
    /// An undelete of a live organization.
    #[error("the organization is not deleted")]
    OrganizationNotDeleted,
    /// An undelete of an organization a forced delete of an ancestor took
    /// along.
    #[error("the organization was deleted along with an ancestor; undelete that one")]
    DeletedWithAncestor,
    /// An undelete of an organization whose parent is deleted.
    #[error("the parent organization is deleted; undelete it first")]
    ParentDeleted,
    /// A change inside a soft-deleted organization.
    #[error("the organization is deleted; undelete it first")]
    OrganizationDeleted,
    /// An ownership transfer of a soft-deleted organization, started or
    /// accepted.
    #[error("the organization is deleted")]
    TransferOfDeletedOrganization,
    /// A write that lost a race with another write of the same row.
    #[error("the object changed during the request; read it again and retry")]
    ConcurrentUpdate,
    /// A project purge or environment rename that lost a race with another
    /// write of the same row.
    #[error("the {noun} changed; retry")]
    Changed {
        /// `project` or `environment`.
        noun: &'static str,
    },
    /// An update of a soft-deleted team or project.
    #[error("the {noun} is deleted; undelete it first")]
    Deleted {
        /// `team` or `project`.
        noun: &'static str,
    },
    /// A delete of a soft-deleted team or project.
    #[error("the {noun} is already deleted")]
    AlreadyDeleted {
        /// `team` or `project`.
        noun: &'static str,
    },
    /// An undelete of a live team or project.
    #[error("the {noun} is not deleted")]
    NotDeleted {
        /// `team` or `project`.
        noun: &'static str,
    },
    /// A purge of a live project.
    #[error("only a soft-deleted project can be purged; delete it first")]
    PurgeOfLiveProject,
    /// An undelete of a team or project its organization's forced delete
    /// took along.
    #[error("the {noun} was deleted along with its organization; undelete that one")]
    DeletedWithOrganization {
        /// `team` or `project`.
        noun: &'static str,
    },
    /// A delete of a team that owns live projects.
    #[error("the team owns live projects; move or delete them first")]
    TeamOwnsProjects,
    /// A purge of a project that still has grants or resources.
    #[error("the project still has access grants or resources; remove them first")]
    ProjectInUse,
    /// A change of a workspace's billing mode.
    #[error("a workspace's billing mode is fixed at creation")]
    BillingModeImmutable,
    /// `ListMyOrganizations` by a caller who is not a user.
    #[error("only a signed-in user has organizations of their own")]
    UserRequired,
    /// An ownership transfer started by someone other than the owner.
    #[error("only the organization's owner can transfer its ownership")]
    OwnerRequired,
    /// An ownership transfer to someone who is not a member.
    #[error("ownership can only go to a member of the organization")]
    TargetNotAMember,
    /// A transfer accepted by someone who has left the organization since.
    #[error("you are no longer a member of the organization")]
    NoLongerAMember,
    /// A transfer accepted after ownership moved some other way.
    #[error("the organization has another owner now")]
    OwnerChanged,
    /// A transfer ended that is accepted, cancelled, declined or expired.
    #[error("the transfer is no longer pending")]
    TransferNotPending,
    /// A transfer token that does not match a pending transfer.
    #[error("the token is wrong, used or expired")]
    InvalidTransferToken,
}

impl Error {
    /// The code and the stable reason clients branch on.
    fn code_and_reason(&self) -> (Code, &'static str) {
        match self {
            Error::SlugTaken { .. }
            | Error::ChildSlugTaken { .. }
            | Error::EnvironmentSlugTaken { .. } => (Code::AlreadyExists, "SLUG_TAKEN"),
            Error::TreeTooDeep { .. } => (Code::FailedPrecondition, "TREE_TOO_DEEP"),
            Error::DepartmentsDisabled { .. } => (Code::FailedPrecondition, "DEPARTMENTS_DISABLED"),
            Error::RootCannotMove => (Code::FailedPrecondition, "ROOT_CANNOT_MOVE"),
            Error::CrossTreeMove => (Code::FailedPrecondition, "CROSS_TREE_MOVE"),
            Error::MoveCycle => (Code::FailedPrecondition, "MOVE_CYCLE"),
            Error::OrganizationNotEmpty => (Code::FailedPrecondition, "ORGANIZATION_NOT_EMPTY"),
            Error::OrganizationNotDeleted => (Code::FailedPrecondition, "ORGANIZATION_NOT_DELETED"),
            Error::DeletedWithAncestor => (Code::FailedPrecondition, "DELETED_WITH_ANCESTOR"),
            Error::ParentDeleted => (Code::FailedPrecondition, "PARENT_DELETED"),
            Error::OrganizationDeleted | Error::TransferOfDeletedOrganization => {
                (Code::FailedPrecondition, "ORGANIZATION_DELETED")
            }
            Error::ConcurrentUpdate => (Code::Aborted, "CONCURRENT_UPDATE"),
            Error::Changed { .. } => (Code::FailedPrecondition, "CONCURRENT_UPDATE"),
            Error::Deleted { .. } => (Code::FailedPrecondition, "DELETED"),
            Error::AlreadyDeleted { .. } => (Code::FailedPrecondition, "ALREADY_DELETED"),
            Error::NotDeleted { .. } | Error::PurgeOfLiveProject => {
                (Code::FailedPrecondition, "NOT_DELETED")
            }
            Error::DeletedWithOrganization { .. } => {
                (Code::FailedPrecondition, "DELETED_WITH_ORGANIZATION")
            }
            Error::TeamOwnsProjects => (Code::FailedPrecondition, "TEAM_OWNS_PROJECTS"),
            Error::ProjectInUse => (Code::FailedPrecondition, "PROJECT_IN_USE"),
            Error::BillingModeImmutable => (Code::InvalidArgument, "BILLING_MODE_IMMUTABLE"),
            Error::UserRequired => (Code::FailedPrecondition, "USER_REQUIRED"),
            Error::OwnerRequired => (Code::PermissionDenied, "OWNER_REQUIRED"),
            Error::TargetNotAMember | Error::NoLongerAMember => {
                (Code::FailedPrecondition, "TARGET_NOT_A_MEMBER")
            }
            Error::OwnerChanged => (Code::FailedPrecondition, "OWNER_CHANGED"),
            Error::TransferNotPending => (Code::FailedPrecondition, "TRANSFER_NOT_PENDING"),
            Error::InvalidTransferToken => (Code::InvalidArgument, "INVALID_TRANSFER_TOKEN"),
        }
    }
}

impl From<Error> for KitError {
    fn from(error: Error) -> KitError {
        error.into_kit("slug")
    }
}

impl Error {
    /// The refusal as the kit error about record `record` of an import
    /// (`records[3]`): a slug refusal's violation names `records[3].slug`,
    /// any other refusal gets a violation naming the record.
    pub(crate) fn at(self, record: &str) -> KitError {
        match self {
            Error::SlugTaken { .. } | Error::ChildSlugTaken { .. } => {
                self.into_kit(&format!("{record}.slug"))
            }
            other => {
                let message = other.to_string();
                other.into_kit("slug").with_violation(record, message)
            }
        }
    }

    /// The kit error, with a slug refusal's violation naming `slug_field`.
    pub(crate) fn into_kit(self, slug_field: &str) -> KitError {
        let (code, reason) = self.code_and_reason();
        let kit = KitError::new(code, reason, self.to_string()).with_domain(crate::NAME);
        match self {
            Error::SlugTaken { slug } | Error::ChildSlugTaken { slug } => kit
                .with_metadata("slug", slug)
                .with_violation(slug_field, "is in use"),
            Error::EnvironmentSlugTaken { slug } => kit
                .with_metadata("slug", slug)
                .with_violation("environment.slug", "is in use"),
            Error::TreeTooDeep { max } => kit.with_metadata("max_depth", max),
            Error::BillingModeImmutable => {
                kit.with_violation("update_mask", "`billing_mode` cannot change")
            }
            Error::OwnerRequired => {
                kit.with_metadata("permission", Permission::ORGANIZATION_OWNERSHIP_TRANSFER)
            }
            Error::InvalidTransferToken => kit.with_violation("token", "is wrong, used or expired"),
            _ => kit,
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> tonic::Status {
        KitError::from(error).into()
    }
}
