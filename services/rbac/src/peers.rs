//! What rbac asks other services, always with the caller's own token: an
//! organization's name and invitation settings (organization), a user's
//! verified email (identity), whether a seat is left and whether the plan
//! includes a feature (billing).
//! Failures close: no answer means no invitation, never a skipped check.

use tenantry_kit::error::{Code, Error, Result};
use tenantry_kit::peer::{Peer, PeerChannel, PeerDirectory};
use tenantry_proto::tenantry::billing::v1 as billing_pb;
use tenantry_proto::tenantry::identity::v1 as identity_pb;
use tenantry_proto::tenantry::organization::v1 as org_pb;

use crate::{Caller, NAME};

/// The clients.
#[derive(Debug, Clone)]
pub struct Peers {
    identity: PeerChannel,
    organization: PeerChannel,
    billing: PeerChannel,
}

/// What invitations need to know about an organization.
#[derive(Debug, Clone, PartialEq)]
pub struct OrganizationInfo {
    pub display_name: String,
    pub allowed_email_domains: Vec<String>,
}

fn unavailable(what: &'static str, status: tonic::Status) -> Error {
    Error::new(
        Code::Unavailable,
        "DEPENDENCY_UNAVAILABLE",
        format!("{what} is unavailable"),
    )
    .with_domain(NAME)
    .with_source(anyhow::anyhow!("{}: {}", status.code(), status.message()))
}

fn request<T>(caller: &Caller, message: T) -> tonic::Request<T> {
    tenantry_kit::request::on_behalf(caller.bearer.as_ref(), message)
}

impl Peers {
    pub fn new(peers: &PeerDirectory) -> anyhow::Result<Peers> {
        Ok(Peers {
            identity: peers.channel(Peer::Identity)?,
            organization: peers.channel(Peer::Organization)?,
            billing: peers.channel(Peer::Billing)?,
        })
    }

    /// An organization as the caller may read it; `None` when they may not.
    pub async fn organization(
        &self,
        caller: &Caller,
        organization_id: &str,
    ) -> Result<Option<OrganizationInfo>> {
        let mut client = org_pb::organization_service_client::OrganizationServiceClient::new(
            self.organization.clone(),
        );
        match client
            .get_organization(request(
                caller,
                org_pb::GetOrganizationRequest {
                    name: format!("organizations/{organization_id}"),
                },
            ))
            .await
        {
            Ok(response) => {
                let org = response.into_inner().organization.unwrap_or_default();
                Ok(Some(OrganizationInfo {
                    display_name: org.display_name,
                    allowed_email_domains: org
                        .settings
                        .map(|s| s.allowed_email_domains)
                        .unwrap_or_default(),
                }))
            }
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(unavailable("the organization service", status)),
        }
    }

    /// A team's display name as the caller may read it; empty when it cannot
    /// be had (a name on a listing never fails the listing).
    pub async fn team_display_name(
        &self,
        caller: &Caller,
        organization_id: &str,
        team_id: &str,
    ) -> String {
        let mut client =
            org_pb::team_service_client::TeamServiceClient::new(self.organization.clone());
        let answer = client
            .get_team(request(
                caller,
                org_pb::GetTeamRequest {
                    name: format!("organizations/{organization_id}/teams/{team_id}"),
                },
            ))
            .await;
        match answer {
            Ok(response) => response
                .into_inner()
                .team
                .map(|team| team.display_name)
                .unwrap_or_default(),
            Err(status) => {
                tracing::warn!(code = ?status.code(), "a team's name could not be read");
                String::new()
            }
        }
    }

    /// The calling user's email, if it is verified.
    pub async fn verified_email(&self, caller: &Caller) -> Result<Option<String>> {
        let user = self.me(caller).await?;
        Ok(user.email_verified.then_some(user.email.to_lowercase()))
    }

    /// The caller's display name: a user's own, empty for API keys and
    /// service accounts (which have none in identity's user directory).
    pub async fn display_name(&self, caller: &Caller) -> Result<String> {
        if caller.principal.kind != tenantry_kit::auth::PrincipalKind::User {
            return Ok(String::new());
        }
        Ok(self.me(caller).await?.display_name)
    }

    async fn me(&self, caller: &Caller) -> Result<identity_pb::User> {
        let mut client =
            identity_pb::identity_service_client::IdentityServiceClient::new(self.identity.clone());
        Ok(client
            .get_user(request(
                caller,
                identity_pb::GetUserRequest {
                    name: "users/me".into(),
                },
            ))
            .await
            .map_err(|status| unavailable("the identity service", status))?
            .into_inner()
            .user
            .unwrap_or_default())
    }

    /// Succeeds when the plan that applies to the organization includes
    /// `feature` (`what` names it for people); FAILED_PRECONDITION
    /// `FEATURE_NOT_INCLUDED` otherwise.
    pub async fn ensure_feature(
        &self,
        caller: &Caller,
        organization_id: &str,
        feature: &str,
        what: &str,
    ) -> Result<()> {
        let mut client = billing_pb::entitlement_service_client::EntitlementServiceClient::new(
            self.billing.clone(),
        );
        let answer = match client
            .check_feature(request(
                caller,
                billing_pb::CheckFeatureRequest {
                    organization: format!("organizations/{organization_id}"),
                    feature: feature.to_string(),
                },
            ))
            .await
        {
            Ok(response) => response.into_inner(),
            // A deployment without billing has no plans to gate features.
            Err(status) if status.code() == tonic::Code::Unimplemented => return Ok(()),
            Err(status) => return Err(unavailable("the billing service", status)),
        };
        if answer.included {
            return Ok(());
        }
        Err(Error::new(
            Code::FailedPrecondition,
            "FEATURE_NOT_INCLUDED",
            format!(
                "the {} plan does not include {what}; change the plan to use them",
                answer.plan_display_name
            ),
        )
        .with_domain(NAME)
        .with_metadata("feature", feature)
        .with_metadata("plan", answer.plan))
    }

    /// Succeeds when the organization has a seat left for one more person,
    /// and holds it for `reservation` (`membership:<organization>/<user>` or
    /// `invitation:<id>`) until the new seat is counted.
    pub async fn ensure_seat(
        &self,
        caller: &Caller,
        organization_id: &str,
        reservation: &str,
    ) -> Result<()> {
        let mut client = billing_pb::entitlement_service_client::EntitlementServiceClient::new(
            self.billing.clone(),
        );
        let answer = match client
            .check_quota(request(
                caller,
                billing_pb::CheckQuotaRequest {
                    organization: format!("organizations/{organization_id}"),
                    metric: billing_pb::Metric::Members as i32,
                    delta: 1,
                    reservation_id: reservation.to_string(),
                },
            ))
            .await
        {
            Ok(response) => response.into_inner(),
            // A deployment without billing has no seat limits.
            Err(status) if status.code() == tonic::Code::Unimplemented => return Ok(()),
            Err(status) => return Err(unavailable("the billing service", status)),
        };
        if answer.allowed {
            return Ok(());
        }
        Err(tenantry_kit::quota::denied(
            NAME,
            billing_pb::Metric::Members,
            &answer,
        ))
    }
}
