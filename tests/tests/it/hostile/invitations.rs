//! Strangers join only by accepting an invitation.

use super::*;

/// An answer's code, reason and message: what it tells the caller.
fn told(status: tonic::Status) -> (Code, String) {
    (status.code(), status.message().to_string())
}

/// Acme, Ada's, with the Research department and the rocket and probe
/// projects; Bob and Carol signed up elsewhere.
struct Acme {
    w: World,
    ada: User,
    acme: String,
    bob: User,
    carol: User,
    department: String,
    rocket: String,
    probe: String,
}

impl Acme {
    async fn start(storage: Storage) -> Acme {
        let w = World::start(storage).await;
        let (ada, acme) = w.sign_up("ada@example.com").await;
        let (bob, _) = w.sign_up("bob@example.com").await;
        let (carol, _) = w.sign_up("carol@example.com").await;
        let department = id(&Orgs::new(w.channel.clone())
            .create_organization(authed(
                org::CreateOrganizationRequest {
                    organization: Some(org::Organization {
                        display_name: "Research".into(),
                        parent: format!("organizations/{acme}"),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .organization
            .unwrap()
            .name);
        let rocket = w.project(&ada.token, &acme).await.unwrap();
        let probe = w.project(&ada.token, &acme).await.unwrap();
        Acme {
            w,
            ada,
            acme,
            bob,
            carol,
            department,
            rocket,
            probe,
        }
    }

    /// Ada adds `user` to `organization` as a member, by id.
    async fn add(
        &self,
        organization: String,
        user: String,
    ) -> Result<tonic::Response<rbac::CreateMembershipResponse>, tonic::Status> {
        let Acme { w, ada, .. } = self;
        let (channel, token) = (w.channel.clone(), ada.token.clone());
        async move {
            Members::new(channel)
                .create_membership(authed(
                    rbac::CreateMembershipRequest {
                        parent: format!("organizations/{organization}"),
                        membership: Some(rbac::Membership {
                            user: format!("users/{user}"),
                            roles: vec!["roles/member".into()],
                            ..Default::default()
                        }),
                        request_id: String::new(),
                    },
                    &token,
                ))
                .await
        }
        .await
    }

    /// Ada grants `user` a view of `project`, by id.
    async fn grant(
        &self,
        project: String,
        user: String,
    ) -> Result<tonic::Response<rbac::CreateProjectGrantResponse>, tonic::Status> {
        let Acme { w, ada, acme, .. } = self;
        let (channel, token, acme) = (w.channel.clone(), ada.token.clone(), acme.clone());
        async move {
            Grants::new(channel)
                .create_project_grant(authed(
                    rbac::CreateProjectGrantRequest {
                        parent: format!("organizations/{acme}/projects/{project}"),
                        project_grant: Some(rbac::ProjectGrant {
                            subject: Some(rbac::project_grant::Subject::User(format!(
                                "users/{user}"
                            ))),
                            access_level: authz::ProjectAccessLevel::Viewer as i32,
                            ..Default::default()
                        }),
                        request_id: String::new(),
                    },
                    &token,
                ))
                .await
        }
        .await
    }

    /// The ids of Acme's members, external users included, sorted.
    async fn members(&self) -> Vec<String> {
        let Acme { w, ada, acme, .. } = self;
        let mut users: Vec<String> = Members::new(w.channel.clone())
            .list_memberships(authed(
                rbac::ListMembershipsRequest {
                    parent: format!("organizations/{acme}"),
                    include_external: true,
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .memberships
            .into_iter()
            .map(|m| id(&m.user))
            .collect();
        users.sort();
        users
    }
}

/// Nobody joins an organization, or is shown to it, without accepting an
/// invitation: adding a stranger by id answers as for a user who does not
/// exist and writes nothing; once they accepted, administrators place them
/// in departments and projects directly. An external invitation grants
/// projects only.
#[tokio::test]
async fn strangers_join_only_by_accepting_an_invitation() {
    for storage in storages() {
        let a = Acme::start(storage).await;
        a_stranger_by_id_is_answered_as_nobody(&a).await;
        once_accepted_a_member_is_placed_directly(&a).await;
        an_external_invitation_is_shown_before_it_is_accepted(&a).await;
        an_accepted_external_invitation_grants_projects_only(&a).await;
        an_external_invitation_carries_only_projects(&a).await;
        a.w.sandbox.shutdown().await.unwrap();
    }
}

async fn a_stranger_by_id_is_answered_as_nobody(a: &Acme) {
    let Acme {
        w,
        ada,
        acme,
        bob,
        rocket,
        ..
    } = a;
    // A stranger, by id: the same answer as nobody at all, nothing written.
    let nobody = uuid::Uuid::now_v7().to_string();
    let stranger = told(a.add(acme.clone(), bob.id.clone()).await.unwrap_err());
    assert_eq!(stranger.0, Code::NotFound);
    assert_eq!(
        stranger,
        told(a.add(acme.clone(), nobody.clone()).await.unwrap_err())
    );
    assert_eq!(
        told(a.grant(rocket.clone(), bob.id.clone()).await.unwrap_err()),
        told(a.grant(rocket.clone(), nobody).await.unwrap_err())
    );
    assert_eq!(a.members().await, vec![ada.id.clone()]);
    assert!(
        !w.allowed(bob, ("organization", acme), "organization.read")
            .await
    );
    assert!(!w.allowed(bob, ("project", rocket), "project.read").await);
}

async fn once_accepted_a_member_is_placed_directly(a: &Acme) {
    let Acme {
        w,
        ada,
        acme,
        bob,
        department,
        ..
    } = a;
    // Once bob accepted, he is placed in a department directly.
    tenantry_tests::people::join(
        &w.sandbox,
        &w.channel,
        &ada.token,
        acme,
        &bob.token,
        &["roles/member"],
    )
    .await;
    let placed = a
        .add(department.clone(), bob.id.clone())
        .await
        .unwrap()
        .into_inner()
        .membership
        .unwrap();
    assert_eq!(placed.user_email, "bob@example.com");
}

async fn an_external_invitation_is_shown_before_it_is_accepted(a: &Acme) {
    let Acme {
        w,
        ada,
        acme,
        carol,
        rocket,
        ..
    } = a;
    // An external invitation: carol sees what she agrees to before
    // accepting, then reads rocket only, holds no membership, and may
    // then be granted another project directly.
    let mut invitations =
        rbac::invitation_service_client::InvitationServiceClient::new(w.channel.clone());
    invitations
        .create_invitation(authed(
            rbac::CreateInvitationRequest {
                parent: format!("organizations/{acme}"),
                invitation: Some(rbac::Invitation {
                    email: "carol@example.com".into(),
                    external: true,
                    projects: vec![rbac::InvitationProject {
                        project: format!("organizations/{acme}/projects/{rocket}"),
                        access_level: authz::ProjectAccessLevel::Viewer as i32,
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap();
    let token = w
        .sandbox
        .mail_token("carol@example.com", "invitation")
        .unwrap();
    let preview = invitations
        .lookup_invitation(authed(
            rbac::LookupInvitationRequest { token },
            &carol.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .preview
        .unwrap();
    assert!(preview.external && preview.roles.is_empty());
    assert_eq!(
        preview.projects,
        vec![format!("organizations/{acme}/projects/{rocket}")]
    );
    let pending = invitations
        .list_invitations(authed(
            rbac::ListInvitationsRequest {
                parent: format!("organizations/{acme}"),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .invitations;
    for invitation in pending.iter().filter(|i| i.email == "carol@example.com") {
        invitations
            .revoke_invitation(authed(
                rbac::RevokeInvitationRequest {
                    name: invitation.name.clone(),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap();
    }
}

async fn an_accepted_external_invitation_grants_projects_only(a: &Acme) {
    let Acme {
        w,
        ada,
        acme,
        bob,
        carol,
        rocket,
        probe,
        ..
    } = a;
    let accepted = tenantry_tests::people::accept(
        &w.sandbox,
        &w.channel,
        &ada.token,
        acme,
        &carol.token,
        rbac::Invitation {
            external: true,
            projects: vec![rbac::InvitationProject {
                project: format!("organizations/{acme}/projects/{rocket}"),
                access_level: authz::ProjectAccessLevel::Viewer as i32,
            }],
            ..Default::default()
        },
    )
    .await;
    assert!(accepted.membership.is_none());
    assert!(w.allowed(carol, ("project", rocket), "project.read").await);
    assert!(!w.allowed(carol, ("project", probe), "project.read").await);
    assert!(
        !w.allowed(carol, ("organization", acme), "organization.read")
            .await
    );
    a.grant(probe.clone(), carol.id.clone()).await.unwrap();
    assert!(w.allowed(carol, ("project", probe), "project.read").await);
    let mut expected = vec![ada.id.clone(), bob.id.clone(), carol.id.clone()];
    expected.sort();
    assert_eq!(a.members().await, expected);
}

async fn an_external_invitation_carries_only_projects(a: &Acme) {
    let Acme { w, ada, acme, .. } = a;
    // An external invitation carries projects, and only projects.
    let invalid = rbac::invitation_service_client::InvitationServiceClient::new(w.channel.clone())
        .create_invitation(authed(
            rbac::CreateInvitationRequest {
                parent: format!("organizations/{acme}"),
                invitation: Some(rbac::Invitation {
                    email: "dan@example.com".into(),
                    external: true,
                    roles: vec!["roles/member".into()],
                    ..Default::default()
                }),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
}
