//! Every `List…`, `Lookup…` and `ReadRelationships` as a stream of items:
//! the pages (`page_token` in, `next_page_token` out, empty at the end) are
//! fetched one after the other as the stream is read.

use futures::stream::{self, BoxStream, StreamExt as _, TryStreamExt as _};
use tenantry_proto::tenantry::{audit, authz, billing, identity, organization, rbac};

use crate::error::Error;

/// A request of a paginated method.
pub trait PageRequest: Clone + Send + 'static {
    /// The method's response.
    type Response: Send + 'static;
    /// What a page holds.
    type Item: Send + 'static;
    /// Asks for the page after the one `token` came with.
    fn set_page_token(&mut self, token: String);
    /// A page's items and the token of the next page (empty when last).
    fn into_page(response: Self::Response) -> (Vec<Self::Item>, String);
}

/// Streams every item of a paginated method, calling `call` once per page:
///
/// ```no_run
/// # async fn run(client: tenantry_client::Client) -> Result<(), tenantry_client::Error> {
/// use futures::TryStreamExt as _;
/// use tenantry_client::pb::organization::v1::ListProjectsRequest;
/// let projects = client.projects();
/// let all: Vec<_> = tenantry_client::paginate(
///     ListProjectsRequest { parent: "organizations/0190…".into(), ..Default::default() },
///     move |request| {
///         let mut projects = projects.clone();
///         async move { projects.list_projects(request).await }
///     },
/// )
/// .try_collect()
/// .await?;
/// # Ok(()) }
/// ```
pub fn paginate<R, F, Fut>(request: R, call: F) -> BoxStream<'static, Result<R::Item, Error>>
where
    R: PageRequest,
    F: FnMut(R) -> Fut + Send + 'static,
    Fut: Future<Output = Result<tonic::Response<R::Response>, tonic::Status>> + Send + 'static,
{
    stream::try_unfold((call, Some(request)), |(mut call, next)| async move {
        let Some(request) = next else {
            return Ok(None);
        };
        let response = call(request.clone()).await?.into_inner();
        let (items, token) = R::into_page(response);
        let next = (!token.is_empty()).then(|| {
            let mut request = request;
            request.set_page_token(token);
            request
        });
        Ok::<_, Error>(Some((
            stream::iter(items.into_iter().map(Ok)),
            (call, next),
        )))
    })
    .try_flatten()
    .boxed()
}

macro_rules! paged {
    ($($request:ty => $response:ty, $field:ident: $item:ty;)*) => {$(
        impl PageRequest for $request {
            type Response = $response;
            type Item = $item;
            fn set_page_token(&mut self, token: String) {
                self.page_token = token;
            }
            fn into_page(response: $response) -> (Vec<$item>, String) {
                (response.$field, response.next_page_token)
            }
        }
    )*};
}

paged! {
    audit::v1::ListAuditEventsRequest => audit::v1::ListAuditEventsResponse, audit_events: audit::v1::AuditEvent;
    audit::v1::ListAuditCheckpointsRequest => audit::v1::ListAuditCheckpointsResponse, audit_checkpoints: audit::v1::AuditCheckpoint;
    authz::v1::LookupResourcesRequest => authz::v1::LookupResourcesResponse, resource_ids: String;
    authz::v1::LookupSubjectsRequest => authz::v1::LookupSubjectsResponse, subjects: authz::v1::ResolvedSubject;
    authz::v1::ReadRelationshipsRequest => authz::v1::ReadRelationshipsResponse, relationships: authz::v1::Relationship;
    authz::v1::ListResourceTypesRequest => authz::v1::ListResourceTypesResponse, resource_types: authz::v1::ResourceType;
    billing::v1::ListBillingAccountsRequest => billing::v1::ListBillingAccountsResponse, billing_accounts: billing::v1::BillingAccount;
    billing::v1::ListPlansRequest => billing::v1::ListPlansResponse, plans: billing::v1::Plan;
    billing::v1::ListUsageRecordsRequest => billing::v1::ListUsageRecordsResponse, usage_records: billing::v1::UsageRecord;
    identity::v1::ListApiKeysRequest => identity::v1::ListApiKeysResponse, api_keys: identity::v1::ApiKey;
    identity::v1::ListUsersRequest => identity::v1::ListUsersResponse, users: identity::v1::User;
    identity::v1::ListSessionsRequest => identity::v1::ListSessionsResponse, sessions: identity::v1::Session;
    identity::v1::ListServiceAccountsRequest => identity::v1::ListServiceAccountsResponse, service_accounts: identity::v1::ServiceAccount;
    identity::v1::ListServiceAccountCredentialsRequest => identity::v1::ListServiceAccountCredentialsResponse, credentials: identity::v1::ServiceAccountCredential;
    organization::v1::ListOrganizationsRequest => organization::v1::ListOrganizationsResponse, organizations: organization::v1::Organization;
    organization::v1::ListMyOrganizationsRequest => organization::v1::ListMyOrganizationsResponse, organizations: organization::v1::MyOrganization;
    organization::v1::ListProjectsRequest => organization::v1::ListProjectsResponse, projects: organization::v1::Project;
    organization::v1::ListEnvironmentsRequest => organization::v1::ListEnvironmentsResponse, environments: organization::v1::Environment;
    organization::v1::ListTeamsRequest => organization::v1::ListTeamsResponse, teams: organization::v1::Team;
    organization::v1::ListWorkspacesRequest => organization::v1::ListWorkspacesResponse, workspaces: organization::v1::Workspace;
    rbac::v1::ListInvitationsRequest => rbac::v1::ListInvitationsResponse, invitations: rbac::v1::Invitation;
    rbac::v1::ListMembershipsRequest => rbac::v1::ListMembershipsResponse, memberships: rbac::v1::Membership;
    rbac::v1::ListUserMembershipsRequest => rbac::v1::ListUserMembershipsResponse, memberships: rbac::v1::Membership;
    rbac::v1::ListProjectGrantsRequest => rbac::v1::ListProjectGrantsResponse, project_grants: rbac::v1::ProjectGrant;
    rbac::v1::ListRolesRequest => rbac::v1::ListRolesResponse, roles: rbac::v1::Role;
    rbac::v1::ListPermissionsRequest => rbac::v1::ListPermissionsResponse, permissions: rbac::v1::Permission;
    rbac::v1::ListTeamMembersRequest => rbac::v1::ListTeamMembersResponse, team_members: rbac::v1::TeamMember;
}
