//! The reasons the billing service refuses a request: one enum, converted
//! once into the kit error (code, reason, ErrorInfo domain `crate::NAME`).
//! Generic refusals (a bad field, a hidden object, a missing permission)
//! are the kit's own.

use tenantry_kit::error::{Code, Error as KitError};

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A child organization was asked to subscribe (or to be managed as a
    /// subscriber).
    #[error(
        "only root organizations subscribe; child organizations draw from their root's subscription"
    )]
    NotARootOrganization,
    /// A subscription was asked for an archived plan.
    #[error("the plan is closed to new subscriptions")]
    PlanArchived,
    /// A paid plan was chosen with no account to pay for it.
    #[error("a paid plan needs a billing account to pay for it")]
    BillingAccountRequired,
    /// The paying account is closed.
    #[error("the billing account is closed")]
    BillingAccountClosed,
    /// An ASSIGNED workspace's account was to pay for another organization.
    #[error("in an ASSIGNED workspace an account pays only for its own organization")]
    BillingAccountAssignedElsewhere,
    /// The plan and the paying account use different currencies.
    #[error("the plan is priced in {plan} and the account pays in {account}")]
    CurrencyMismatch {
        /// The plan's currency.
        plan: String,
        /// The account's currency.
        account: String,
    },
    /// Subscribe on an organization whose subscription is live.
    #[error("the organization has a live subscription; use ChangePlan")]
    SubscriptionExists,
    /// A plan change on a canceled subscription.
    #[error("the subscription was canceled; Subscribe again")]
    SubscriptionCanceled,
    /// A cancellation of a canceled subscription.
    #[error("the subscription is canceled already")]
    SubscriptionCanceledAlready,
    /// Overrides on a plan that does not take them.
    #[error("only ENTERPRISE and custom plans take per-customer overrides")]
    OverridesNotAllowed,
    /// An update of a plan from the catalog.
    #[error("built-in plans come from the catalog file; edit it instead")]
    BuiltInPlan,
    /// An ASSIGNED account for an organization that is not a live root of
    /// its workspace.
    #[error("the organization is not a top-level organization of this workspace")]
    NotARootOfWorkspace,
    /// A second account for an organization of an ASSIGNED workspace.
    #[error(
        "the organization has a billing account already (ASSIGNED: one per top-level organization)"
    )]
    OrganizationHasAccount,
    /// A second account in a SINGLE workspace.
    #[error("a SINGLE workspace holds exactly one billing account")]
    SingleAccountExists,
    /// A peer service could not answer; its status is logged, not answered.
    #[error("{what} is unavailable")]
    DependencyUnavailable {
        /// The peer, as the message names it.
        what: &'static str,
        /// What the peer answered.
        status: tonic::Status,
    },
    /// A provider webhook's signature header carries no timestamp.
    #[error("the signature header has no timestamp")]
    SignatureWithoutTimestamp,
    /// No signature of a provider webhook matches its payload.
    #[error("the signature does not match")]
    SignatureMismatch,
    /// A provider webhook signed too long ago (or ahead).
    #[error("the signed timestamp is outside the tolerance window")]
    TimestampOutOfTolerance,
    /// An idempotency key of `RecordUsage` reused for different usage.
    #[error("the idempotency key was used for different usage")]
    IdempotencyKeyReused {
        /// The name of the record the key made first.
        usage_record: String,
        /// That record's metric.
        metric: String,
        /// That record's quantity.
        quantity: i64,
    },
    /// `RecordUsage` of a metric counted from events.
    #[error("{metric} follows events and cannot be recorded")]
    MetricNotMetered {
        /// The metric's enum name.
        metric: &'static str,
    },
    /// Recorded usage that would overflow a total.
    #[error("the usage total would overflow")]
    UsageOverflow,
    /// A metric value the API does not know.
    #[error("`{field}` is not a known metric")]
    UnknownMetric {
        /// The request field.
        field: String,
    },
    /// An invoice amount that does not fit in 64 bits.
    #[error("an invoice amount does not fit in 64 bits")]
    AmountOverflow,
}

impl Error {
    /// The code and the stable reason clients branch on.
    fn code_and_reason(&self) -> (Code, &'static str) {
        match self {
            Error::NotARootOrganization => (Code::FailedPrecondition, "NOT_A_ROOT_ORGANIZATION"),
            Error::PlanArchived => (Code::FailedPrecondition, "PLAN_ARCHIVED"),
            Error::BillingAccountRequired => (Code::FailedPrecondition, "BILLING_ACCOUNT_REQUIRED"),
            Error::BillingAccountClosed => (Code::FailedPrecondition, "BILLING_ACCOUNT_CLOSED"),
            Error::BillingAccountAssignedElsewhere => (
                Code::FailedPrecondition,
                "BILLING_ACCOUNT_ASSIGNED_ELSEWHERE",
            ),
            Error::CurrencyMismatch { .. } => (Code::FailedPrecondition, "CURRENCY_MISMATCH"),
            Error::SubscriptionExists => (Code::AlreadyExists, "SUBSCRIPTION_EXISTS"),
            Error::SubscriptionCanceled | Error::SubscriptionCanceledAlready => {
                (Code::FailedPrecondition, "SUBSCRIPTION_CANCELED")
            }
            Error::OverridesNotAllowed => (Code::FailedPrecondition, "OVERRIDES_NOT_ALLOWED"),
            Error::BuiltInPlan => (Code::FailedPrecondition, "BUILT_IN_PLAN"),
            Error::NotARootOfWorkspace => (Code::FailedPrecondition, "NOT_A_ROOT_OF_WORKSPACE"),
            Error::OrganizationHasAccount => (Code::FailedPrecondition, "ORGANIZATION_HAS_ACCOUNT"),
            Error::SingleAccountExists => (Code::FailedPrecondition, "SINGLE_ACCOUNT_EXISTS"),
            Error::DependencyUnavailable { .. } => (Code::Unavailable, "DEPENDENCY_UNAVAILABLE"),
            Error::SignatureWithoutTimestamp | Error::SignatureMismatch => {
                (Code::Unauthenticated, "BAD_SIGNATURE")
            }
            Error::TimestampOutOfTolerance => (Code::Unauthenticated, "TIMESTAMP_OUT_OF_TOLERANCE"),
            Error::IdempotencyKeyReused { .. } => (Code::AlreadyExists, "IDEMPOTENCY_KEY_REUSED"),
            Error::MetricNotMetered { .. } => (Code::InvalidArgument, "METRIC_NOT_METERED"),
            Error::UsageOverflow => (Code::OutOfRange, "USAGE_OVERFLOW"),
            Error::UnknownMetric { .. } => (Code::InvalidArgument, "UNKNOWN_METRIC"),
            Error::AmountOverflow => (Code::OutOfRange, "AMOUNT_OVERFLOW"),
        }
    }
}

impl From<Error> for KitError {
    fn from(error: Error) -> KitError {
        let (code, reason) = error.code_and_reason();
        let kit = KitError::new(code, reason, error.to_string()).with_domain(crate::NAME);
        match error {
            Error::DependencyUnavailable { status, .. } => {
                kit.with_source(anyhow::anyhow!("{}: {}", status.code(), status.message()))
            }
            Error::IdempotencyKeyReused {
                usage_record,
                metric,
                quantity,
            } => kit
                .with_metadata("usage_record", usage_record)
                .with_metadata("metric", metric)
                .with_metadata("quantity", quantity),
            Error::MetricNotMetered { .. } => {
                kit.with_violation("metric", "must be a metered metric")
            }
            Error::UnknownMetric { field } => kit.with_violation(field, "must be a known metric"),
            _ => kit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_answers_its_code_reason_message_and_details() {
        let kit = KitError::from(Error::CurrencyMismatch {
            plan: "USD".into(),
            account: "EUR".into(),
        });
        assert_eq!(kit.code(), Code::FailedPrecondition);
        assert_eq!(kit.reason(), "CURRENCY_MISMATCH");
        assert_eq!(
            kit.message(),
            "the plan is priced in USD and the account pays in EUR"
        );

        let kit = KitError::from(Error::IdempotencyKeyReused {
            usage_record: "organizations/o/usageRecords/r".into(),
            metric: "METRIC_DEPLOYMENTS".into(),
            quantity: 3,
        });
        assert_eq!(kit.code(), Code::AlreadyExists);
        assert_eq!(
            kit.metadata("usage_record"),
            Some("organizations/o/usageRecords/r")
        );
        assert_eq!(kit.metadata("metric"), Some("METRIC_DEPLOYMENTS"));
        assert_eq!(kit.metadata("quantity"), Some("3"));

        let kit = KitError::from(Error::SubscriptionCanceledAlready);
        assert_eq!(kit.reason(), "SUBSCRIPTION_CANCELED");
        assert_eq!(kit.message(), "the subscription is canceled already");
    }
}
