//! How people join an organization in tests: as in the product, by
//! accepting an invitation (an administrator cannot add someone from
//! outside the organization's tree directly).

use tenantry_proto::tenantry::identity::v1 as identity;
use tenantry_proto::tenantry::rbac::v1 as rbac;
use tenantry_testkit::{Sandbox, authed};
use tonic::transport::Channel;

/// Brings the user of `user_token` into `organization` (its id) with
/// `roles`: `admin_token` invites their email, they verify it if they had
/// not, and accept. Returns the acceptance.
pub async fn join(
    sandbox: &Sandbox,
    channel: &Channel,
    admin_token: &str,
    organization: &str,
    user_token: &str,
    roles: &[&str],
) -> rbac::AcceptInvitationResponse {
    let invitation = rbac::Invitation {
        roles: roles.iter().map(|r| r.to_string()).collect(),
        ..Default::default()
    };
    accept(
        sandbox,
        channel,
        admin_token,
        organization,
        user_token,
        invitation,
    )
    .await
}

/// As [`join`], with the whole invitation to send (projects, external…);
/// its email is the user's.
pub async fn accept(
    sandbox: &Sandbox,
    channel: &Channel,
    admin_token: &str,
    organization: &str,
    user_token: &str,
    invitation: rbac::Invitation,
) -> rbac::AcceptInvitationResponse {
    let mut users = identity::identity_service_client::IdentityServiceClient::new(channel.clone());
    let me = users
        .me(authed(identity::MeRequest::default(), user_token))
        .await
        .expect("the invitee is signed in")
        .into_inner()
        .user
        .expect("Me answers the user");
    if !me.email_verified {
        let token = sandbox
            .mail_token(&me.email, "verify_email")
            .expect("the verification was mailed");
        users
            .verify_email(identity::VerifyEmailRequest { token })
            .await
            .expect("the email verifies");
    }
    let mut invitations =
        rbac::invitation_service_client::InvitationServiceClient::new(channel.clone());
    invitations
        .create_invitation(authed(
            rbac::CreateInvitationRequest {
                parent: format!("organizations/{organization}"),
                invitation: Some(rbac::Invitation {
                    email: me.email.clone(),
                    ..invitation
                }),
                ..Default::default()
            },
            admin_token,
        ))
        .await
        .expect("the invitation is made");
    let token = sandbox
        .mail_token(&me.email, "invitation")
        .expect("the invitation was mailed");
    invitations
        .accept_invitation(authed(rbac::AcceptInvitationRequest { token }, user_token))
        .await
        .expect("the invitation is accepted")
        .into_inner()
}
