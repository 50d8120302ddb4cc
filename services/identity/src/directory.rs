//! What identity needs to know from the organization and rbac services,
//! asked over their gRPC contracts: a user's memberships, an organization's
//! sign-in settings, and creating a first organization for a new user.
//!
//! Identity calls as itself: a short-lived service token it signs with its
//! own key. A deployment that runs identity without those services (they
//! answer UNIMPLEMENTED) reads as "no organizations yet", so sign-up and
//! sign-in keep working.

use tenantry_kit::error::{Error, Result};
use tenantry_kit::names::{MembershipName, OrganizationName, TeamMemberName, UserName};
use tenantry_kit::peer::{Peer, PeerChannel};
use tenantry_kit::permission::Permission;
use tenantry_proto::tenantry::authz::v1 as authz_pb;
use tenantry_proto::tenantry::billing::v1 as billing_pb;
use tenantry_proto::tenantry::bulk::v1 as bulk_pb;
use tenantry_proto::tenantry::organization::v1 as org_pb;
use tenantry_proto::tenantry::rbac::v1 as rbac_pb;

use crate::error::Error as Refusal;

/// A user's membership, as identity reports it in `Me`.
#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    pub organization_id: String,
    pub display_name: String,
    pub slug: String,
    pub root_organization_id: String,
    pub roles: Vec<String>,
    pub require_mfa: bool,
}

/// An organization's settings that matter at sign-in.
#[derive(Debug, Clone, PartialEq)]
pub struct SignInPolicy {
    /// Whether the organization can be signed in to at all.
    pub active: bool,
    /// Whether members need MFA to get a token for it.
    pub require_mfa: bool,
}

/// The services that hold the records of an import besides identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOwner {
    /// Organizations, teams and projects.
    Organization,
    /// Memberships, team members and project grants.
    Rbac,
}

/// Pages of exported records.
pub type RecordPages =
    futures::stream::BoxStream<'static, std::result::Result<Vec<bulk_pb::Record>, tonic::Status>>;

/// Produces the bearer token identity presents to other services.
pub type TokenSource = std::sync::Arc<dyn Fn() -> String + Send + Sync>;

/// Clients of the organization, rbac and billing services.
#[derive(Clone)]
pub struct Directory {
    organization: PeerChannel,
    rbac: PeerChannel,
    billing: PeerChannel,
    token: TokenSource,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Directory")
    }
}

/// Whether a failure means the other service does not serve the RPC yet.
fn not_served(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Unimplemented
}

fn unavailable(what: &'static str, status: tonic::Status) -> Error {
    Refusal::DependencyUnavailable { what, status }.into()
}

/// The id of an organization another service named in its answer. A
/// malformed name is that service's fault, not the caller's: INTERNAL.
fn answered_organization(name: &str) -> Result<String> {
    OrganizationName::parse("organization", name)
        .map(|name| name.id)
        .map_err(|error| {
            Error::internal(anyhow::anyhow!(
                "a peer answered a malformed organization name: {error}"
            ))
        })
}

/// A membership rbac named in its answer. A malformed name is rbac's
/// fault, not the caller's: INTERNAL.
fn answered_membership(name: &str) -> Result<MembershipName> {
    MembershipName::parse("membership", name).map_err(|error| {
        Error::internal(anyhow::anyhow!(
            "a peer answered a malformed membership name: {error}"
        ))
    })
}

impl Directory {
    /// Clients of the three services (in this process or over the network).
    pub fn new(
        peers: &tenantry_kit::peer::PeerDirectory,
        token: TokenSource,
    ) -> anyhow::Result<Self> {
        Ok(Directory {
            organization: peers.channel(Peer::Organization)?,
            rbac: peers.channel(Peer::Rbac)?,
            billing: peers.channel(Peer::Billing)?,
            token,
        })
    }

    /// Succeeds when the organization may have one more of `metric`, asked
    /// of billing, and holds it for the object `reservation` (its id) until
    /// the object is counted. A deployment without billing (UNIMPLEMENTED)
    /// has no limits; a billing that cannot answer fails the creation.
    pub async fn ensure_quota(
        &self,
        organization_id: &str,
        metric: billing_pb::Metric,
        reservation: &str,
    ) -> Result<()> {
        let mut client = billing_pb::entitlement_service_client::EntitlementServiceClient::new(
            self.billing.clone(),
        );
        let request = self.request(billing_pb::CheckQuotaRequest {
            organization: OrganizationName::new(organization_id).to_string(),
            metric: metric as i32,
            delta: 1,
            reservation_id: reservation.to_string(),
        });
        match client.check_quota(request).await {
            Ok(response) => {
                let answer = response.into_inner();
                if answer.allowed {
                    Ok(())
                } else {
                    Err(tenantry_kit::quota::denied("identity", metric, &answer))
                }
            }
            Err(status) if not_served(&status) => Ok(()),
            Err(status) => Err(unavailable("the billing service", status)),
        }
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        self.request_as(message, &(self.token)())
    }

    /// Hands a batch of an import to the service that owns its records
    /// (organization or rbac). Their refusals reach the importer as they
    /// are: they name the record.
    pub async fn import_records(
        &self,
        owner: RecordOwner,
        batch: bulk_pb::RecordBatch,
    ) -> std::result::Result<bulk_pb::ImportCounts, tonic::Status> {
        let counts = match owner {
            RecordOwner::Organization => {
                bulk_pb::organization_records_service_client::OrganizationRecordsServiceClient::new(
                    self.organization.clone(),
                )
                .import_organization_records(
                    self.request(bulk_pb::ImportOrganizationRecordsRequest { batch: Some(batch) }),
                )
                .await?
                .into_inner()
                .counts
            }
            RecordOwner::Rbac => {
                bulk_pb::membership_records_service_client::MembershipRecordsServiceClient::new(
                    self.rbac.clone(),
                )
                .import_membership_records(
                    self.request(bulk_pb::ImportMembershipRecordsRequest { batch: Some(batch) }),
                )
                .await?
                .into_inner()
                .counts
            }
        };
        Ok(counts.unwrap_or_default())
    }

    /// The records `owner` exports, a page at a time.
    pub async fn export_records(
        &self,
        owner: RecordOwner,
    ) -> std::result::Result<RecordPages, tonic::Status> {
        use futures::StreamExt as _;
        Ok(match owner {
            RecordOwner::Organization => {
                bulk_pb::organization_records_service_client::OrganizationRecordsServiceClient::new(
                    self.organization.clone(),
                )
                .export_organization_records(
                    self.request(bulk_pb::ExportOrganizationRecordsRequest {}),
                )
                .await?
                .into_inner()
                .map(|page| page.map(|page| page.records))
                .boxed()
            }
            RecordOwner::Rbac => {
                bulk_pb::membership_records_service_client::MembershipRecordsServiceClient::new(
                    self.rbac.clone(),
                )
                .export_membership_records(self.request(bulk_pb::ExportMembershipRecordsRequest {}))
                .await?
                .into_inner()
                .map(|page| page.map(|page| page.records))
                .boxed()
            }
        })
    }

    /// A request made with `bearer`: identity's own token, or a short one of
    /// the user identity acts for (so that what it does is theirs).
    fn request_as<T>(&self, message: T, bearer: &str) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Ok(value) = format!("Bearer {bearer}").parse() {
            request.metadata_mut().insert("authorization", value);
        }
        // Carry the caller's trace, and what the caller must see, to the
        // next service.
        tenantry_kit::telemetry::inject_metadata(request.metadata_mut());
        tenantry_kit::consistency::inject(request.metadata_mut());
        request
    }

    /// The user's memberships; empty while rbac does not serve them.
    pub async fn memberships(&self, user_id: &str) -> Result<Vec<Membership>> {
        let mut client =
            rbac_pb::membership_service_client::MembershipServiceClient::new(self.rbac.clone());
        let request = self.request(rbac_pb::ListUserMembershipsRequest {
            parent: UserName::new(user_id).to_string(),
            page_size: 1000,
            ..Default::default()
        });
        match client.list_user_memberships(request).await {
            Ok(response) => response
                .into_inner()
                .memberships
                .into_iter()
                .map(|m| {
                    Ok(Membership {
                        organization_id: answered_membership(&m.name)?.organization,
                        display_name: String::new(),
                        slug: String::new(),
                        root_organization_id: String::new(),
                        roles: m.roles,
                        require_mfa: false,
                    })
                })
                .collect(),
            Err(status) if not_served(&status) => Ok(Vec::new()),
            Err(status) => Err(unavailable("the membership service", status)),
        }
    }

    /// The user's memberships with each organization's names, root and
    /// sign-in policy, as the organization service lists them to the user
    /// (`user_token`, a short token of theirs); `None` while it does not
    /// serve them.
    pub async fn my_organizations(&self, user_token: &str) -> Result<Option<Vec<Membership>>> {
        let mut client = org_pb::organization_service_client::OrganizationServiceClient::new(
            self.organization.clone(),
        );
        let mut summaries = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = org_pb::ListMyOrganizationsRequest {
                page_size: 1000,
                page_token,
                ..Default::default()
            };
            let page = match client
                .list_my_organizations(self.request_as(request, user_token))
                .await
            {
                Ok(response) => response.into_inner(),
                Err(status) if not_served(&status) => return Ok(None),
                Err(status) => return Err(unavailable("the organization service", status)),
            };
            for mine in page.organizations {
                let organization = mine.organization.unwrap_or_default();
                summaries.push(Membership {
                    organization_id: answered_organization(&organization.name)?,
                    root_organization_id: answered_organization(&organization.root)?,
                    require_mfa: organization.settings.is_some_and(|s| s.require_mfa),
                    display_name: organization.display_name,
                    slug: organization.slug,
                    roles: mine.roles,
                });
            }
            if page.next_page_token.is_empty() {
                return Ok(Some(summaries));
            }
            page_token = page.next_page_token;
        }
    }

    /// The organization's sign-in policy; `None` when it does not exist (or
    /// the organization service does not serve it yet).
    pub async fn sign_in_policy(&self, organization_id: &str) -> Result<Option<SignInPolicy>> {
        let mut client = org_pb::organization_service_client::OrganizationServiceClient::new(
            self.organization.clone(),
        );
        let request = self.request(org_pb::GetOrganizationRequest {
            name: OrganizationName::new(organization_id).to_string(),
        });
        match client.get_organization(request).await {
            Ok(response) => {
                let organization = response.into_inner().organization.unwrap_or_default();
                Ok(Some(SignInPolicy {
                    active: organization.state() != org_pb::OrganizationState::Deactivated,
                    require_mfa: organization.settings.is_some_and(|s| s.require_mfa),
                }))
            }
            Err(status) if not_served(&status) || status.code() == tonic::Code::NotFound => {
                Ok(None)
            }
            Err(status) => Err(unavailable("the organization service", status)),
        }
    }

    /// Creates a first organization owned by the user; `None` while the
    /// organization service does not serve it.
    pub async fn create_first_organization(
        &self,
        user_id: &str,
        user_token: &str,
        display_name: &str,
    ) -> Result<Option<String>> {
        let mut client = org_pb::organization_service_client::OrganizationServiceClient::new(
            self.organization.clone(),
        );
        // Made as the user (a short token of theirs): the organization, its
        // default project and their events are the user's own doing.
        let request = self.request_as(
            org_pb::CreateOrganizationRequest {
                organization: Some(org_pb::Organization {
                    display_name: display_name.to_string(),
                    owner: UserName::new(user_id).to_string(),
                    ..Default::default()
                }),
                // One first organization per user, however often this is retried.
                request_id: format!("first-organization-{user_id}"),
                with_default_project: true,
            },
            user_token,
        );
        match client.create_organization(request).await {
            Ok(response) => {
                // The caller's answer covers the organization's write too.
                tenantry_kit::consistency::absorb(response.metadata());
                response
                    .into_inner()
                    .organization
                    .map(|o| answered_organization(&o.name))
                    .transpose()
            }
            Err(status) if not_served(&status) => Ok(None),
            Err(status) => Err(unavailable("the organization service", status)),
        }
    }

    /// Whether `user_id` holds `permission` on an object, asked of the
    /// authorization service. Fails closed: when it cannot answer (not
    /// reachable, or not serving the RPC yet) the answer is an error, never
    /// a yes.
    pub async fn check_permission(
        &self,
        user_id: &str,
        object_type: &str,
        object_id: &str,
        permission: Permission,
    ) -> Result<bool> {
        Ok(self
            .holds(user_id, object_type, object_id, permission.as_str())
            .await?
            == Holds::Yes)
    }

    /// Whether the user holds `permission` on an object, telling a
    /// permission of another type (a `project.read` asked of an
    /// organization) and an unknown one apart from one not held.
    pub async fn holds(
        &self,
        user_id: &str,
        object_type: &str,
        object_id: &str,
        permission: &str,
    ) -> Result<Holds> {
        let mut client = authz_pb::authorization_service_client::AuthorizationServiceClient::new(
            self.rbac.clone(),
        );
        let request = self.request(authz_pb::CheckPermissionRequest {
            consistency: None,
            resource: Some(authz_pb::ObjectReference {
                object_type: object_type.to_string(),
                object_id: object_id.to_string(),
            }),
            permission: permission.to_string(),
            subject: Some(authz_pb::SubjectReference {
                object: Some(authz_pb::ObjectReference {
                    object_type: "user".into(),
                    object_id: user_id.to_string(),
                }),
                optional_relation: String::new(),
            }),
            with_tracing: false,
        });
        match client.check_permission(request).await {
            Ok(response) => Ok(
                if response.into_inner().permissionship() == authz_pb::Permissionship::Allowed {
                    Holds::Yes
                } else {
                    Holds::No
                },
            ),
            Err(status) if status.code() == tonic::Code::InvalidArgument => {
                Ok(match tenantry_kit::error::reason_of(&status).as_deref() {
                    Some("PERMISSION_OF_ANOTHER_TYPE") => Holds::OtherType,
                    _ => Holds::Unknown,
                })
            }
            Err(status) => Err(unavailable("the authorization service", status)),
        }
    }

    /// Whether the user is a member of the team (lead or member).
    pub async fn is_team_member(
        &self,
        organization_id: &str,
        team_id: &str,
        user_id: &str,
    ) -> Result<bool> {
        let mut client =
            rbac_pb::team_member_service_client::TeamMemberServiceClient::new(self.rbac.clone());
        let request = self.request(rbac_pb::GetTeamMemberRequest {
            name: TeamMemberName::new(organization_id, team_id, user_id).to_string(),
        });
        match client.get_team_member(request).await {
            Ok(_) => Ok(true),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(false),
            Err(status) => Err(unavailable("the membership service", status)),
        }
    }

    /// The organization and invited email behind an invitation token; `None`
    /// when rbac knows no such pending invitation.
    pub async fn lookup_invitation(&self, token: &str) -> Result<Option<InvitationPreview>> {
        let mut client =
            rbac_pb::invitation_service_client::InvitationServiceClient::new(self.rbac.clone());
        let request = self.request(rbac_pb::LookupInvitationRequest {
            token: token.to_string(),
        });
        match client.lookup_invitation(request).await {
            Ok(response) => response
                .into_inner()
                .preview
                .map(|preview| {
                    Ok(InvitationPreview {
                        organization_id: answered_organization(&preview.organization)?,
                        email: preview.email,
                    })
                })
                .transpose(),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(unavailable("the invitation service", status)),
        }
    }

    /// Accepts an invitation as the invited user, whose access token
    /// `user_token` is presented (rbac checks the email matches); whether
    /// it made them a member (an external invitation grants projects only).
    pub async fn accept_invitation(&self, token: &str, user_token: &str) -> Result<bool> {
        let mut client =
            rbac_pb::invitation_service_client::InvitationServiceClient::new(self.rbac.clone());
        let request = self.request_as(
            rbac_pb::AcceptInvitationRequest {
                token: token.to_string(),
            },
            user_token,
        );
        client
            .accept_invitation(request)
            .await
            .map(|response| {
                tenantry_kit::consistency::absorb(response.metadata());
                response.into_inner().membership.is_some()
            })
            .map_err(|status| unavailable("the invitation service", status))
    }
}

/// What an invitation token stands for.
#[derive(Debug, Clone, PartialEq)]
pub struct InvitationPreview {
    pub organization_id: String,
    pub email: String,
}

/// What rbac answers about a permission on an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    /// Held.
    Yes,
    /// A permission of the object's type, not held.
    No,
    /// A permission of another type.
    OtherType,
    /// No such permission (or object type).
    Unknown,
}
