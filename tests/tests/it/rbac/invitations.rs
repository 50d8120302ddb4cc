//! Invitations: single use, stored hashed, rate-limited, bound to the
//! verified email and the organization's allowed domains.

use super::*;
use tenantry_proto::tenantry::identity::v1 as identity_pb;
use tenantry_testkit::clients::Invitations;

fn invite(
    org_name: &str,
    email: &str,
    teams: Vec<pb::InvitationTeam>,
) -> pb::CreateInvitationRequest {
    pb::CreateInvitationRequest {
        parent: org_name.into(),
        invitation: Some(pb::Invitation {
            email: email.into(),
            roles: vec!["roles/member".into()],
            teams,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Acme, Ada's, with the Core team.
struct Acme {
    w: World,
    ada: User,
    acme: org::Organization,
    acme_id: String,
    team: org::Team,
}

impl Acme {
    async fn start(storage: Storage) -> Acme {
        let w = World::start(storage).await;
        let ada = w.user("ada@example.com").await;
        let acme = w.organization(&ada, "Acme", None).await;
        let acme_id = id(&acme.name);
        let team = Teams::new(w.channel.clone())
            .create_team(authed(
                org::CreateTeamRequest {
                    parent: acme.name.clone(),
                    team: Some(org::Team {
                        display_name: "Core".into(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .team
            .unwrap();
        w.assert_allowed(&ada, "team", &id(&team.name), "team.manage")
            .await;
        Acme {
            w,
            ada,
            acme,
            acme_id,
            team,
        }
    }
}

#[tokio::test]
async fn invitations_are_single_use_hashed_rate_limited_and_bound_to_the_verified_email() {
    for storage in storages() {
        let a = Acme::start(storage).await;
        let (invitation, token) = an_invitation_is_mailed_and_stored_hashed(&a).await;
        one_pending_invitation_per_address_with_valid_terms(&a, &invitation).await;
        let eve = another_signed_in_user_cannot_take_it(&a, &token).await;
        let hire = signing_up_through_it_makes_a_member_of_the_team(&a, &invitation, &token).await;
        the_token_is_spent_and_a_member_is_not_invited_again(&a, &token, &hire).await;
        revoked_invitations_stop_and_allowed_domains_hold(&a).await;
        members_may_not_invite_and_strangers_see_nothing(&a, &hire, &eve).await;
        a_recruiter_sees_the_invitations_they_send(&a, &hire).await;
        a.w.sandbox.shutdown().await.unwrap();
    }
}

async fn an_invitation_is_mailed_and_stored_hashed(a: &Acme) -> (pb::Invitation, String) {
    let Acme {
        w, ada, acme, team, ..
    } = a;
    let mut invitations = Invitations::new(w.channel.clone());

    let invitation = invitations
        .create_invitation(authed(
            invite(
                &acme.name,
                "New.Hire@Example.com",
                vec![pb::InvitationTeam {
                    team: team.name.clone(),
                    role: authz::TeamRole::Member as i32,
                }],
            ),
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .invitation
        .unwrap();
    assert_eq!(invitation.email, "new.hire@example.com");
    assert_eq!(invitation.state, pb::invitation::State::Pending as i32);
    let token = w
        .sandbox
        .mail_token("new.hire@example.com", "invitation")
        .expect("the invitation was mailed");
    // Stored hashed: the token is nowhere in the database.
    {
        use sqlx::Row;
        let db = w.sandbox.database.connect_as_operator().await.unwrap();
        let stored: String = sqlx::query("SELECT token_hash FROM rbac_invitations")
            .fetch_one(db.pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        assert_ne!(stored, token);
        assert_eq!(stored, tenantry_kit::secret::hash_token(&token));
        db.close().await;
    }
    (invitation, token)
}

async fn one_pending_invitation_per_address_with_valid_terms(
    a: &Acme,
    invitation: &pb::Invitation,
) {
    let Acme { w, ada, acme, .. } = a;
    let mut invitations = Invitations::new(w.channel.clone());
    // One pending invitation per address; a second is refused.
    let twice = invitations
        .create_invitation(authed(
            invite(&acme.name, "new.hire@example.com", vec![]),
            &ada.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::AlreadyExists);
    // Resending at once is rate-limited, with a retry delay.
    let resend = invitations
        .resend_invitation(authed(
            pb::ResendInvitationRequest {
                name: invitation.name.clone(),
                etag: String::new(),
            },
            &ada.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(resend.code(), Code::ResourceExhausted);
    assert!(resend.get_details_retry_info().is_some());
    let too_long = invitations
        .create_invitation(authed(
            pb::CreateInvitationRequest {
                expire_after: Some(prost_types::Duration {
                    seconds: 31 * 86_400,
                    nanos: 0,
                }),
                ..invite(&acme.name, "later@example.com", vec![])
            },
            &ada.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(too_long.code(), Code::InvalidArgument);
    let too_short = invitations
        .create_invitation(authed(
            pb::CreateInvitationRequest {
                expire_after: Some(prost_types::Duration {
                    seconds: 3_599,
                    nanos: 0,
                }),
                ..invite(&acme.name, "soon@example.com", vec![])
            },
            &ada.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(too_short.code(), Code::InvalidArgument);
    assert!(
        w.sandbox
            .mail_token("soon@example.com", "invitation")
            .is_none(),
        "nothing was sent"
    );
    let owner_role = invitations
        .create_invitation(authed(
            pb::CreateInvitationRequest {
                invitation: Some(pb::Invitation {
                    email: "boss@example.com".into(),
                    roles: vec!["roles/owner".into()],
                    ..Default::default()
                }),
                ..invite(&acme.name, "", vec![])
            },
            &ada.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(owner_role.code(), Code::InvalidArgument);
}

async fn another_signed_in_user_cannot_take_it(a: &Acme, token: &str) -> User {
    let Acme { w, .. } = a;
    let mut invitations = Invitations::new(w.channel.clone());
    // A signed-in user with another email cannot take it.
    let eve = w.user("eve@example.com").await;
    let wrong = invitations
        .accept_invitation(authed(
            pb::AcceptInvitationRequest {
                token: token.to_string(),
            },
            &eve.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::PermissionDenied);
    eve
}

async fn signing_up_through_it_makes_a_member_of_the_team(
    a: &Acme,
    invitation: &pb::Invitation,
    token: &str,
) -> User {
    let Acme {
        w, acme_id, team, ..
    } = a;
    // Sign-up through the invitation: a verified user, a member with
    // the invited role, in the invited team.
    let mut identity =
        identity_pb::identity_service_client::IdentityServiceClient::new(w.channel.clone());
    let signed_up = identity
        .sign_up(identity_pb::SignUpRequest {
            email: "new.hire@example.com".into(),
            password: "correct horse battery staple".into(),
            display_name: "New Hire".into(),
            invitation_token: token.to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let hire = User {
        id: id(&signed_up.user.unwrap().name),
        token: signed_up.tokens.unwrap().access_token,
    };
    // The sign-up made the membership before it returned.
    let membership = Members::new(w.channel.clone())
        .get_membership(authed(
            pb::GetMembershipRequest {
                name: format!("organizations/{acme_id}/memberships/{}", hire.id),
            },
            &hire.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .membership
        .unwrap();
    assert_eq!(membership.roles, vec!["roles/member"]);
    assert!(membership.invitation.ends_with(&id(&invitation.name)));
    assert!(
        w.check(&hire, "team", &id(&team.name), "team.read", None)
            .await
            .unwrap()
    );
    hire
}

async fn the_token_is_spent_and_a_member_is_not_invited_again(a: &Acme, token: &str, hire: &User) {
    let Acme { w, ada, acme, .. } = a;
    let mut invitations = Invitations::new(w.channel.clone());
    // Single use: the token is spent.
    let again = invitations
        .lookup_invitation(authed(
            pb::LookupInvitationRequest {
                token: token.to_string(),
            },
            &hire.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
    let listed = invitations
        .list_invitations(authed(
            pb::ListInvitationsRequest {
                parent: acme.name.clone(),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .invitations;
    assert_eq!(listed[0].state, pb::invitation::State::Accepted as i32);
    // A member is not invited again: their roles change on their
    // membership. Nothing is written.
    let member_again = invitations
        .create_invitation(authed(
            invite(&acme.name, "New.Hire@example.com", vec![]),
            &ada.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(member_again.code(), Code::AlreadyExists, "{member_again:?}");
    assert_eq!(
        member_again.get_details_error_info().unwrap().reason,
        "ALREADY_A_MEMBER"
    );
    let after = invitations
        .list_invitations(authed(
            pb::ListInvitationsRequest {
                parent: acme.name.clone(),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .invitations;
    assert_eq!(after.len(), listed.len());
}

async fn revoked_invitations_stop_and_allowed_domains_hold(a: &Acme) {
    let Acme { w, ada, acme, .. } = a;
    let mut invitations = Invitations::new(w.channel.clone());
    // Revoked invitations stop working; allowed domains are enforced.
    let second = invitations
        .create_invitation(authed(
            invite(&acme.name, "temp@example.com", vec![]),
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .invitation
        .unwrap();
    let temp_token = w
        .sandbox
        .mail_token("temp@example.com", "invitation")
        .unwrap();
    invitations
        .revoke_invitation(authed(
            pb::RevokeInvitationRequest {
                name: second.name.clone(),
                etag: String::new(),
            },
            &ada.token,
        ))
        .await
        .unwrap();
    let revoked = invitations
        .lookup_invitation(authed(
            pb::LookupInvitationRequest { token: temp_token },
            &ada.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(revoked.code(), Code::NotFound);
    Orgs::new(w.channel.clone())
        .update_organization(authed(
            org::UpdateOrganizationRequest {
                organization: Some(org::Organization {
                    name: acme.name.clone(),
                    settings: Some(org::OrganizationSettings {
                        allowed_email_domains: vec!["example.com".into()],
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["settings.allowed_email_domains".into()],
                }),
            },
            &ada.token,
        ))
        .await
        .unwrap();
    let foreign = invitations
        .create_invitation(authed(
            invite(&acme.name, "spy@other.test", vec![]),
            &ada.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::FailedPrecondition);
    assert_eq!(
        foreign.get_details_error_info().unwrap().reason,
        "EMAIL_DOMAIN_NOT_ALLOWED"
    );
}

async fn members_may_not_invite_and_strangers_see_nothing(a: &Acme, hire: &User, eve: &User) {
    let Acme { w, acme, .. } = a;
    let mut invitations = Invitations::new(w.channel.clone());
    // A member may not invite; a stranger does not even see the
    // organization.
    let by_member = invitations
        .create_invitation(authed(
            invite(&acme.name, "friend@example.com", vec![]),
            &hire.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(by_member.code(), Code::PermissionDenied);
    let by_stranger = invitations
        .create_invitation(authed(
            invite(&acme.name, "friend@example.com", vec![]),
            &eve.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(by_stranger.code(), Code::NotFound);
}

async fn a_recruiter_sees_the_invitations_they_send(a: &Acme, hire: &User) {
    let Acme {
        w,
        ada,
        acme,
        acme_id,
        ..
    } = a;
    let mut invitations = Invitations::new(w.channel.clone());
    // A recruiter (a custom role that may invite, not read the
    // members) sees the invitations they send.
    let reader = invitations.clone();
    let list = |token: String| {
        let mut invitations = reader.clone();
        let parent = acme.name.clone();
        async move {
            invitations
                .list_invitations(authed(
                    pb::ListInvitationsRequest {
                        parent,
                        ..Default::default()
                    },
                    &token,
                ))
                .await
        }
    };
    assert!(list(hire.token.clone()).await.is_err());
    let recruiter = Roles::new(w.channel.clone())
        .create_role(authed(
            pb::CreateRoleRequest {
                parent: acme.name.clone(),
                role: Some(pb::Role {
                    display_name: "Recruiter".into(),
                    permissions: vec![
                        "organization.read".into(),
                        "organization.members.invite".into(),
                    ],
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .role
        .unwrap();
    Members::new(w.channel.clone())
        .update_membership(authed(
            pb::UpdateMembershipRequest {
                membership: Some(pb::Membership {
                    name: format!("organizations/{acme_id}/memberships/{}", hire.id),
                    roles: vec!["roles/member".into(), recruiter.name.clone()],
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["roles".into()],
                }),
            },
            &ada.token,
        ))
        .await
        .unwrap();
    let sent = invitations
        .create_invitation(authed(
            invite(&acme.name, "friend@example.com", vec![]),
            &hire.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .invitation
        .unwrap();
    let seen = list(hire.token.clone())
        .await
        .unwrap()
        .into_inner()
        .invitations;
    assert!(seen.iter().any(|i| i.name == sent.name));
    invitations
        .get_invitation(authed(
            pb::GetInvitationRequest {
                name: sent.name.clone(),
            },
            &hire.token,
        ))
        .await
        .unwrap();
}

/// An organization's allowed email domains bind adding an existing member
/// of the tree as they bind invitations; the refusal writes nothing.
#[tokio::test]
async fn allowed_domains_bind_memberships_too() {
    for storage in storages() {
        let w = World::start(storage).await;
        let ada = w.user("ada@example.com").await;
        let bob = w.user("bob@elsewhere.example").await;
        let root = w.organization(&ada, "Root", None).await;
        let root_id = id(&root.name);
        let child = w.organization(&ada, "Child", Some(&root_id)).await;
        let child = w.get_organization(&ada, &id(&child.name)).await;
        Orgs::new(w.channel.clone())
            .update_organization(authed(
                org::UpdateOrganizationRequest {
                    organization: Some(org::Organization {
                        name: child.name.clone(),
                        settings: Some(org::OrganizationSettings {
                            allowed_email_domains: vec!["example.com".into()],
                            ..Default::default()
                        }),
                        etag: child.etag.clone(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["settings.allowed_email_domains".into()],
                    }),
                },
                &ada.token,
            ))
            .await
            .unwrap();
        w.add_member(&ada, &root_id, &bob, &["roles/member"]).await;
        let mut members = Members::new(w.channel.clone());
        let refused = members
            .create_membership(authed(
                pb::CreateMembershipRequest {
                    parent: child.name.clone(),
                    membership: Some(pb::Membership {
                        user: format!("users/{}", bob.id),
                        roles: vec!["roles/member".into()],
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &ada.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
        assert_eq!(
            refused.get_details_error_info().unwrap().reason,
            "EMAIL_DOMAIN_NOT_ALLOWED"
        );
        let listed = members
            .list_memberships(authed(
                pb::ListMembershipsRequest {
                    parent: child.name.clone(),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .memberships;
        assert!(listed.iter().all(|m| m.user != format!("users/{}", bob.id)));
        w.sandbox.shutdown().await.unwrap();
    }
}
