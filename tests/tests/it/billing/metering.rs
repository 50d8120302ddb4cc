//! Metering: once per key, and seats that follow memberships.

use super::*;

/// Root, Ada's, with its Child; Bob signed up but in neither; the event
/// tap open.
struct Metering {
    w: World,
    tap: EventTap,
    ada: User,
    bob: User,
    root: String,
    child: String,
}

impl Metering {
    async fn start(storage: Storage) -> Metering {
        let w = World::start(storage).await;
        let tap = w.tap().await;
        let ada = w.user("ada@example.com").await;
        let bob = w.user("bob@example.com").await;
        let root = w.organization(&ada, "Root", None, None).await;
        let child = w.organization(&ada, "Child", Some(&root), None).await;
        Metering {
            w,
            tap,
            ada,
            bob,
            root,
            child,
        }
    }
}

#[tokio::test]
async fn metering_counts_once_per_key_and_seats_follow_memberships() {
    for storage in storages() {
        let mut m = Metering::start(storage).await;
        usage_counts_once_per_key(&mut m).await;
        bad_usage_is_refused_and_not_counted(&mut m).await;
        seats_count_members_and_pending_invitations(&mut m).await;
        let erin = the_free_plans_five_seats_fill_and_the_next_is_refused(&mut m).await;
        an_external_user_takes_no_seat(&mut m, erin).await;
        m.w.sandbox.shutdown().await.unwrap();
    }
}

async fn usage_counts_once_per_key(m: &mut Metering) {
    let Metering {
        w,
        tap,
        ada,
        root,
        child,
        ..
    } = m;
    let first = w
        .record(ada, child, pb::Metric::Deployments, 5, "deploy-1")
        .await
        .unwrap();
    assert!(!first.replayed);
    tap.expect_about("billing.usage.recorded", child, EVENT_WAIT)
        .await
        .unwrap();
    let replay = w
        .record(ada, child, pb::Metric::Deployments, 5, "deploy-1")
        .await
        .unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.usage_record, first.usage_record);
    let reused = assert_status(
        w.record(ada, child, pb::Metric::Deployments, 7, "deploy-1")
            .await,
        Code::AlreadyExists,
        "IDEMPOTENCY_KEY_REUSED",
    );
    assert_eq!(metadata(&reused, "quantity"), "5");
    assert_eq!(
        metadata(&reused, "usage_record"),
        first.usage_record.unwrap().name
    );
    w.record(ada, root, pb::Metric::Deployments, 2, "deploy-2")
        .await
        .unwrap();
    assert_eq!(w.usage(ada, child, pb::Metric::Deployments).await, (5, 5));
    assert_eq!(w.usage(ada, root, pb::Metric::Deployments).await, (2, 7));
}

async fn bad_usage_is_refused_and_not_counted(m: &mut Metering) {
    let Metering {
        w,
        ada,
        bob,
        root,
        child,
        ..
    } = m;
    // Bad input: each refused, none counted.
    for quantity in [0, -1, 1_000_000_001, i64::MAX, i64::MIN] {
        assert_status(
            w.record(ada, child, pb::Metric::Deployments, quantity, "bad")
                .await,
            Code::InvalidArgument,
            "",
        );
    }
    assert_status(
        w.record(ada, child, pb::Metric::Projects, 1, "bad").await,
        Code::InvalidArgument,
        "METRIC_NOT_METERED",
    );
    assert_status(
        w.record(ada, child, pb::Metric::Unspecified, 1, "bad")
            .await,
        Code::InvalidArgument,
        "UNKNOWN_METRIC",
    );
    assert_status(
        w.record(ada, child, pb::Metric::Deployments, 1, "").await,
        Code::InvalidArgument,
        "",
    );
    let future = w
        .usage_client()
        .record_usage(authed(
            pb::RecordUsageRequest {
                organization: format!("organizations/{child}"),
                metric: pb::Metric::Deployments as i32,
                quantity: 1,
                idempotency_key: "future".into(),
                usage_time: Some(prost_types::Timestamp {
                    seconds: now_secs() + 3600,
                    nanos: 0,
                }),
            },
            &ada.token,
        ))
        .await;
    assert_status(future, Code::InvalidArgument, "");
    assert_status(
        w.record(bob, child, pb::Metric::Deployments, 1, "bobs")
            .await,
        Code::NotFound,
        "",
    );
    assert_eq!(w.usage(ada, root, pb::Metric::Deployments).await, (2, 7));
    let records = w
        .usage_client()
        .list_usage_records(authed(
            pb::ListUsageRecordsRequest {
                parent: format!("organizations/{child}"),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .usage_records;
    assert_eq!(records.len(), 1);
}

async fn seats_count_members_and_pending_invitations(m: &mut Metering) {
    let Metering {
        w, ada, bob, root, ..
    } = m;
    // Seats: members plus pending invitations, from rbac's events.
    w.assert_usage(ada, root, pb::Metric::Members, 2).await; // ada in Root and in Child
    w.add_member(ada, root, bob, &["roles/member"]).await;
    w.assert_usage(ada, root, pb::Metric::Members, 3).await;
    let invitation =
        rbac::invitation_service_client::InvitationServiceClient::new(w.channel.clone())
            .create_invitation(authed(
                rbac::CreateInvitationRequest {
                    parent: format!("organizations/{root}"),
                    invitation: Some(rbac::Invitation {
                        email: "carol@example.com".into(),
                        roles: vec!["roles/member".into()],
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .invitation
            .unwrap();
    // The pending seat counts from the moment the invitation exists
    // (reserved by its create, then counted from rbac's event), in the
    // organization's own usage as in its subtree's.
    assert_eq!(
        w.usage(ada, root, pb::Metric::Members).await,
        (3, 4),
        "own: two members and one pending"
    );
    rbac::invitation_service_client::InvitationServiceClient::new(w.channel.clone())
        .revoke_invitation(authed(
            rbac::RevokeInvitationRequest {
                name: invitation.name.clone(),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap();
    w.assert_usage(ada, root, pb::Metric::Members, 3).await;
}

async fn the_free_plans_five_seats_fill_and_the_next_is_refused(m: &mut Metering) -> Option<User> {
    let Metering { w, ada, root, .. } = m;
    // FREE has five seats: two more members fill them, the next is refused.
    let mut erin = None;
    for email in ["dave@example.com", "erin@example.com"] {
        let user = w.user(email).await;
        w.add_member(ada, root, &user, &["roles/member"]).await;
        erin = Some(user);
    }
    w.assert_usage(ada, root, pb::Metric::Members, 5).await;
    let refused = rbac::invitation_service_client::InvitationServiceClient::new(w.channel.clone())
        .create_invitation(authed(
            rbac::CreateInvitationRequest {
                parent: format!("organizations/{root}"),
                invitation: Some(rbac::Invitation {
                    email: "frank@example.com".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &ada.token,
        ))
        .await;
    let refused = assert_status(refused, Code::ResourceExhausted, "QUOTA_EXCEEDED");
    assert_eq!(metadata(&refused, "metric"), "METRIC_MEMBERS");
    assert_eq!(w.usage(ada, root, pb::Metric::Members).await.1, 5);

    erin
}

async fn an_external_user_takes_no_seat(m: &mut Metering, erin: Option<User>) {
    let Metering { w, ada, root, .. } = m;
    // An external user takes no seat: invited to one project while every
    // seat is taken, they accept, and the count stays where it was.
    let site = w.create_project(ada, root, "Site").await.unwrap();
    let guest = w.user("guest@example.com").await;
    let accepted = tenantry_tests::people::accept(
        &w.sandbox,
        &w.channel,
        &ada.token,
        root,
        &guest.token,
        rbac::Invitation {
            external: true,
            projects: vec![rbac::InvitationProject {
                project: format!("organizations/{root}/projects/{site}"),
                access_level: authz::ProjectAccessLevel::Viewer as i32,
            }],
            ..Default::default()
        },
    )
    .await;
    assert!(accepted.membership.is_none());
    assert_eq!(w.usage(ada, root, pb::Metric::Members).await, (4, 5));
    // Billing counts from rbac's events in order: once a later removal
    // is counted, the acceptance before it has been counted too.
    let erin_id =
        identity_pb::identity_service_client::IdentityServiceClient::new(w.channel.clone())
            .me(authed(identity_pb::MeRequest {}, &erin.unwrap().token))
            .await
            .unwrap()
            .into_inner()
            .user
            .unwrap()
            .name;
    rbac::membership_service_client::MembershipServiceClient::new(w.channel.clone())
        .delete_membership(authed(
            rbac::DeleteMembershipRequest {
                name: format!("organizations/{root}/memberships/{}", id(&erin_id)),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap();
    w.assert_usage(ada, root, pb::Metric::Members, 4).await;
    assert_eq!(w.usage(ada, root, pb::Metric::Members).await, (3, 4));
}
