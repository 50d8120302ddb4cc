//! The gRPC clients of every service, over a sandbox's channel, by the
//! short names the tests use: `Orgs::new(sandbox.channel().await?)`.

use tenantry_proto::tenantry::audit::v1 as audit;
use tenantry_proto::tenantry::authz::v1 as authz;
use tenantry_proto::tenantry::billing::v1 as billing;
use tenantry_proto::tenantry::identity::v1 as identity;
use tenantry_proto::tenantry::organization::v1 as organization;
use tenantry_proto::tenantry::rbac::v1 as rbac;
use tonic::transport::Channel;

/// Sign-up, login, sessions and the caller's own account.
pub type Identity = identity::identity_service_client::IdentityServiceClient<Channel>;
/// API keys of an organization.
pub type Keys = identity::api_key_service_client::ApiKeyServiceClient<Channel>;
/// Service accounts and their client credentials.
pub type ServiceAccounts =
    identity::service_account_service_client::ServiceAccountServiceClient<Channel>;

/// Organizations and their trees.
pub type Orgs = organization::organization_service_client::OrganizationServiceClient<Channel>;
/// Projects of an organization.
pub type Projects = organization::project_service_client::ProjectServiceClient<Channel>;
/// Teams of an organization.
pub type Teams = organization::team_service_client::TeamServiceClient<Channel>;
/// Workspaces, which hold roots.
pub type Workspaces = organization::workspace_service_client::WorkspaceServiceClient<Channel>;

/// Memberships of an organization.
pub type Members = rbac::membership_service_client::MembershipServiceClient<Channel>;
/// Custom roles.
pub type Roles = rbac::role_service_client::RoleServiceClient<Channel>;
/// Members of a team.
pub type TeamMembers = rbac::team_member_service_client::TeamMemberServiceClient<Channel>;
/// Grants on a project.
pub type Grants = rbac::project_grant_service_client::ProjectGrantServiceClient<Channel>;
/// Invitations into an organization.
pub type Invitations = rbac::invitation_service_client::InvitationServiceClient<Channel>;

/// Permission checks.
pub type Authz = authz::authorization_service_client::AuthorizationServiceClient<Channel>;
/// The object types services register.
pub type Schema = authz::schema_service_client::SchemaServiceClient<Channel>;

/// The audit log.
pub type Audit = audit::audit_service_client::AuditServiceClient<Channel>;
/// What edges report to the audit log.
pub type EdgeReports = audit::edge_report_service_client::EdgeReportServiceClient<Channel>;

/// The plan catalog.
pub type Plans = billing::plan_service_client::PlanServiceClient<Channel>;
/// Billing accounts.
pub type Accounts = billing::billing_account_service_client::BillingAccountServiceClient<Channel>;
/// Subscriptions to plans.
pub type Subscriptions = billing::subscription_service_client::SubscriptionServiceClient<Channel>;
/// Entitlements and limits.
pub type Entitlements = billing::entitlement_service_client::EntitlementServiceClient<Channel>;
/// Metered usage.
pub type Usage = billing::usage_service_client::UsageServiceClient<Channel>;
/// Invoices.
pub type Invoices = billing::invoice_service_client::InvoiceServiceClient<Channel>;
/// The payment provider's webhooks.
pub type Webhooks = billing::provider_webhook_service_client::ProviderWebhookServiceClient<Channel>;
