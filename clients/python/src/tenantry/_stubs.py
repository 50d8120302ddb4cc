"""The typed stub of every public service, as attributes of the clients. (Internal
services — IndexService, BillingFeedService, AuditFeedService, EdgeReportService,
ProviderWebhookService — are left out; build
their stubs on `client.channel` if you need them.)"""

from __future__ import annotations

from typing import Any

from tenantry.audit.v1 import audit_pb2_grpc
from tenantry.authz.v1 import authorization_pb2_grpc
from tenantry.authz.v1 import schema_pb2_grpc
from tenantry.billing.v1 import billing_account_pb2_grpc
from tenantry.billing.v1 import entitlement_pb2_grpc
from tenantry.billing.v1 import invoice_pb2_grpc
from tenantry.billing.v1 import plan_pb2_grpc
from tenantry.billing.v1 import subscription_pb2_grpc
from tenantry.billing.v1 import usage_pb2_grpc
from tenantry.identity.v1 import api_key_pb2_grpc
from tenantry.identity.v1 import identity_service_pb2_grpc
from tenantry.identity.v1 import service_account_pb2_grpc
from tenantry.organization.v1 import organization_service_pb2_grpc
from tenantry.organization.v1 import project_pb2_grpc
from tenantry.organization.v1 import team_pb2_grpc
from tenantry.organization.v1 import workspace_pb2_grpc
from tenantry.rbac.v1 import invitation_pb2_grpc
from tenantry.rbac.v1 import membership_pb2_grpc
from tenantry.rbac.v1 import project_grant_pb2_grpc
from tenantry.rbac.v1 import role_pb2_grpc
from tenantry.rbac.v1 import team_member_pb2_grpc


class Stubs:
    """The stubs of the sync client."""

    identity: "identity_service_pb2_grpc.IdentityServiceStub"
    """IdentityService: sign-in, sessions, users, MFA."""
    api_keys: "api_key_pb2_grpc.ApiKeyServiceStub"
    """ApiKeyService: API keys."""
    service_accounts: "service_account_pb2_grpc.ServiceAccountServiceStub"
    """ServiceAccountService: service accounts and their client credentials."""
    organizations: "organization_service_pb2_grpc.OrganizationServiceStub"
    """OrganizationService: organizations (a tree), ownership."""
    workspaces: "workspace_pb2_grpc.WorkspaceServiceStub"
    """WorkspaceService: workspaces (billing containers)."""
    teams: "team_pb2_grpc.TeamServiceStub"
    """TeamService: teams."""
    projects: "project_pb2_grpc.ProjectServiceStub"
    """ProjectService: projects and environments."""
    memberships: "membership_pb2_grpc.MembershipServiceStub"
    """MembershipService: memberships and their roles."""
    roles: "role_pb2_grpc.RoleServiceStub"
    """RoleService: built-in and custom roles."""
    team_members: "team_member_pb2_grpc.TeamMemberServiceStub"
    """TeamMemberService: team members."""
    invitations: "invitation_pb2_grpc.InvitationServiceStub"
    """InvitationService: invitations."""
    project_grants: "project_grant_pb2_grpc.ProjectGrantServiceStub"
    """ProjectGrantService: project access grants."""
    authorization: "authorization_pb2_grpc.AuthorizationServiceStub"
    """AuthorizationService: CheckPermission, lookups, relationships, Watch."""
    schema: "schema_pb2_grpc.SchemaServiceStub"
    """SchemaService: registered resource types."""
    plans: "plan_pb2_grpc.PlanServiceStub"
    """PlanService: the plan catalog."""
    subscriptions: "subscription_pb2_grpc.SubscriptionServiceStub"
    """SubscriptionService: subscriptions."""
    billing_accounts: "billing_account_pb2_grpc.BillingAccountServiceStub"
    """BillingAccountService: billing accounts."""
    entitlements: "entitlement_pb2_grpc.EntitlementServiceStub"
    """EntitlementService: limits, quotas, features."""
    usage: "usage_pb2_grpc.UsageServiceStub"
    """UsageService: usage metering."""
    invoices: "invoice_pb2_grpc.InvoiceServiceStub"
    """InvoiceService: invoices."""
    audit: "audit_pb2_grpc.AuditServiceStub"
    """AuditService: the audit log."""

    def _build_stubs(self, channel: Any) -> None:
        self.identity = identity_service_pb2_grpc.IdentityServiceStub(channel)
        self.api_keys = api_key_pb2_grpc.ApiKeyServiceStub(channel)
        self.service_accounts = service_account_pb2_grpc.ServiceAccountServiceStub(channel)
        self.organizations = organization_service_pb2_grpc.OrganizationServiceStub(channel)
        self.workspaces = workspace_pb2_grpc.WorkspaceServiceStub(channel)
        self.teams = team_pb2_grpc.TeamServiceStub(channel)
        self.projects = project_pb2_grpc.ProjectServiceStub(channel)
        self.memberships = membership_pb2_grpc.MembershipServiceStub(channel)
        self.roles = role_pb2_grpc.RoleServiceStub(channel)
        self.team_members = team_member_pb2_grpc.TeamMemberServiceStub(channel)
        self.invitations = invitation_pb2_grpc.InvitationServiceStub(channel)
        self.project_grants = project_grant_pb2_grpc.ProjectGrantServiceStub(channel)
        self.authorization = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        self.schema = schema_pb2_grpc.SchemaServiceStub(channel)
        self.plans = plan_pb2_grpc.PlanServiceStub(channel)
        self.subscriptions = subscription_pb2_grpc.SubscriptionServiceStub(channel)
        self.billing_accounts = billing_account_pb2_grpc.BillingAccountServiceStub(channel)
        self.entitlements = entitlement_pb2_grpc.EntitlementServiceStub(channel)
        self.usage = usage_pb2_grpc.UsageServiceStub(channel)
        self.invoices = invoice_pb2_grpc.InvoiceServiceStub(channel)
        self.audit = audit_pb2_grpc.AuditServiceStub(channel)


class AsyncStubs:
    """The stubs of the asyncio client (each method returns an awaitable)."""

    identity: "identity_service_pb2_grpc.IdentityServiceAsyncStub"
    """IdentityService: sign-in, sessions, users, MFA."""
    api_keys: "api_key_pb2_grpc.ApiKeyServiceAsyncStub"
    """ApiKeyService: API keys."""
    service_accounts: "service_account_pb2_grpc.ServiceAccountServiceAsyncStub"
    """ServiceAccountService: service accounts and their client credentials."""
    organizations: "organization_service_pb2_grpc.OrganizationServiceAsyncStub"
    """OrganizationService: organizations (a tree), ownership."""
    workspaces: "workspace_pb2_grpc.WorkspaceServiceAsyncStub"
    """WorkspaceService: workspaces (billing containers)."""
    teams: "team_pb2_grpc.TeamServiceAsyncStub"
    """TeamService: teams."""
    projects: "project_pb2_grpc.ProjectServiceAsyncStub"
    """ProjectService: projects and environments."""
    memberships: "membership_pb2_grpc.MembershipServiceAsyncStub"
    """MembershipService: memberships and their roles."""
    roles: "role_pb2_grpc.RoleServiceAsyncStub"
    """RoleService: built-in and custom roles."""
    team_members: "team_member_pb2_grpc.TeamMemberServiceAsyncStub"
    """TeamMemberService: team members."""
    invitations: "invitation_pb2_grpc.InvitationServiceAsyncStub"
    """InvitationService: invitations."""
    project_grants: "project_grant_pb2_grpc.ProjectGrantServiceAsyncStub"
    """ProjectGrantService: project access grants."""
    authorization: "authorization_pb2_grpc.AuthorizationServiceAsyncStub"
    """AuthorizationService: CheckPermission, lookups, relationships, Watch."""
    schema: "schema_pb2_grpc.SchemaServiceAsyncStub"
    """SchemaService: registered resource types."""
    plans: "plan_pb2_grpc.PlanServiceAsyncStub"
    """PlanService: the plan catalog."""
    subscriptions: "subscription_pb2_grpc.SubscriptionServiceAsyncStub"
    """SubscriptionService: subscriptions."""
    billing_accounts: "billing_account_pb2_grpc.BillingAccountServiceAsyncStub"
    """BillingAccountService: billing accounts."""
    entitlements: "entitlement_pb2_grpc.EntitlementServiceAsyncStub"
    """EntitlementService: limits, quotas, features."""
    usage: "usage_pb2_grpc.UsageServiceAsyncStub"
    """UsageService: usage metering."""
    invoices: "invoice_pb2_grpc.InvoiceServiceAsyncStub"
    """InvoiceService: invoices."""
    audit: "audit_pb2_grpc.AuditServiceAsyncStub"
    """AuditService: the audit log."""

    def _build_stubs(self, channel: Any) -> None:
        self.identity = identity_service_pb2_grpc.IdentityServiceStub(channel)
        self.api_keys = api_key_pb2_grpc.ApiKeyServiceStub(channel)
        self.service_accounts = service_account_pb2_grpc.ServiceAccountServiceStub(channel)
        self.organizations = organization_service_pb2_grpc.OrganizationServiceStub(channel)
        self.workspaces = workspace_pb2_grpc.WorkspaceServiceStub(channel)
        self.teams = team_pb2_grpc.TeamServiceStub(channel)
        self.projects = project_pb2_grpc.ProjectServiceStub(channel)
        self.memberships = membership_pb2_grpc.MembershipServiceStub(channel)
        self.roles = role_pb2_grpc.RoleServiceStub(channel)
        self.team_members = team_member_pb2_grpc.TeamMemberServiceStub(channel)
        self.invitations = invitation_pb2_grpc.InvitationServiceStub(channel)
        self.project_grants = project_grant_pb2_grpc.ProjectGrantServiceStub(channel)
        self.authorization = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        self.schema = schema_pb2_grpc.SchemaServiceStub(channel)
        self.plans = plan_pb2_grpc.PlanServiceStub(channel)
        self.subscriptions = subscription_pb2_grpc.SubscriptionServiceStub(channel)
        self.billing_accounts = billing_account_pb2_grpc.BillingAccountServiceStub(channel)
        self.entitlements = entitlement_pb2_grpc.EntitlementServiceStub(channel)
        self.usage = usage_pb2_grpc.UsageServiceStub(channel)
        self.invoices = invoice_pb2_grpc.InvoiceServiceStub(channel)
        self.audit = audit_pb2_grpc.AuditServiceStub(channel)
