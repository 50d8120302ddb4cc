//! Ownership transfers, and the identity service's view of organizations.

use super::*;

/// Heirloom, Ada's root; Bob and Eve signed up, Eve allowed to read it;
/// the event tap open.
struct Heirloom {
    w: World,
    tap: EventTap,
    ada: String,
    ada_token: String,
    bob: String,
    bob_token: String,
    eve: String,
    eve_token: String,
    org: pb::Organization,
}

impl Heirloom {
    async fn start(storage: Storage) -> Heirloom {
        let mut w = World::start(storage).await;
        let tap = w.sandbox.event_tap().await.unwrap();
        let (ada, ada_token) = w.user("ada@example.com").await;
        let (bob, bob_token) = w.user("bob@example.com").await;
        let (eve, eve_token) = w.user("eve@example.com").await;
        let org = w.root(&ada, &ada_token, "Heirloom").await;
        w.grant(&eve, id(&org.name), &["organization.read"]);
        Heirloom {
            w,
            tap,
            ada,
            ada_token,
            bob,
            bob_token,
            eve,
            eve_token,
            org,
        }
    }
}

#[tokio::test]
async fn ownership_moves_only_to_a_member_who_accepts_with_the_mailed_token() {
    for storage in storages() {
        let mut h = Heirloom::start(storage).await;
        let (transfer, token) = only_the_owner_starts_a_transfer_to_a_member(&mut h).await;
        only_the_target_accepts_with_the_mailed_token(&mut h, &transfer, &token).await;
        let again = a_transfer_back_is_declined_and_another_canceled(&mut h).await;
        a_canceled_transfer_is_read_only_by_its_parties(&mut h, again).await;
        h.w.sandbox.shutdown().await.unwrap();
    }
}

async fn only_the_owner_starts_a_transfer_to_a_member(
    h: &mut Heirloom,
) -> (pb::OwnershipTransfer, String) {
    let Heirloom {
        w,
        tap,
        ada_token,
        bob,
        eve,
        eve_token,
        org,
        ..
    } = h;
    let start = |new_owner: &str| pb::TransferOwnershipRequest {
        name: org.name.clone(),
        new_owner: format!("users/{new_owner}"),
        ..Default::default()
    };

    // Only the owner may start it, and only towards a member.
    let error = w
        .orgs
        .transfer_ownership(authed(start(eve), eve_token))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
    let error = w
        .orgs
        .transfer_ownership(authed(start(bob), ada_token))
        .await
        .unwrap_err();
    assert_eq!(reason(&error), "TARGET_NOT_A_MEMBER");
    let error = w
        .orgs
        .transfer_ownership(authed(
            pb::TransferOwnershipRequest {
                ttl: Some(prost_types::Duration {
                    seconds: 31 * 86_400,
                    nanos: 0,
                }),
                ..start(bob)
            },
            ada_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    w.member(bob, id(&org.name));

    let transfer = w
        .orgs
        .transfer_ownership(authed(start(bob), ada_token))
        .await
        .unwrap()
        .into_inner()
        .ownership_transfer
        .unwrap();
    assert_eq!(transfer.state, pb::OwnershipTransferState::Pending as i32);
    tap.expect("ownership.transfer_requested", EVENT_WAIT)
        .await
        .unwrap();
    let token = w
        .sandbox
        .mail_token("bob@example.com", "ownership_transfer")
        .expect("the target got the token by mail");

    (transfer, token)
}

async fn only_the_target_accepts_with_the_mailed_token(
    h: &mut Heirloom,
    transfer: &pb::OwnershipTransfer,
    token: &str,
) {
    let Heirloom {
        w,
        tap,
        ada,
        ada_token,
        bob,
        bob_token,
        eve_token,
        org,
        ..
    } = h;
    // Only the target, with the right token.
    let accept = |token: &str| pb::AcceptOwnershipTransferRequest {
        name: transfer.name.clone(),
        token: token.into(),
    };
    let error = w
        .orgs
        .accept_ownership_transfer(authed(accept(token), eve_token))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    let error = w
        .orgs
        .accept_ownership_transfer(authed(accept("wrong-token"), bob_token))
        .await
        .unwrap_err();
    assert_eq!(reason(&error), "INVALID_TRANSFER_TOKEN");
    assert_eq!(
        w.get(ada_token, &org.name).await.unwrap().owner,
        format!("users/{ada}")
    );

    let accepted = w
        .orgs
        .accept_ownership_transfer(authed(accept(token), bob_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        accepted.ownership_transfer.unwrap().state,
        pb::OwnershipTransferState::Accepted as i32
    );
    assert_eq!(accepted.organization.unwrap().owner, format!("users/{bob}"));
    let body: events::OwnershipTransferred = payload(
        &tap.expect("ownership.transferred", EVENT_WAIT)
            .await
            .unwrap(),
    );
    assert_eq!(
        (
            body.old_owner_user_id.as_str(),
            body.new_owner_user_id.as_str()
        ),
        (ada.as_str(), bob.as_str())
    );
    let reused = w
        .orgs
        .accept_ownership_transfer(authed(accept(token), bob_token))
        .await
        .unwrap_err();
    assert_eq!(reason(&reused), "INVALID_TRANSFER_TOKEN");
}

async fn a_transfer_back_is_declined_and_another_canceled(
    h: &mut Heirloom,
) -> pb::OwnershipTransfer {
    let Heirloom {
        w,
        ada,
        ada_token,
        bob,
        bob_token,
        org,
        ..
    } = h;
    let start = |new_owner: &str| pb::TransferOwnershipRequest {
        name: org.name.clone(),
        new_owner: format!("users/{new_owner}"),
        ..Default::default()
    };

    // The new owner starts one back; the target declines. Then one
    // more, which its starter cancels.
    w.grant(bob, id(&org.name), &["organization.read"]);
    let back = w
        .orgs
        .transfer_ownership(authed(start(ada), bob_token))
        .await
        .unwrap()
        .into_inner()
        .ownership_transfer
        .unwrap();
    let declined = w
        .orgs
        .decline_ownership_transfer(authed(
            pb::DeclineOwnershipTransferRequest {
                name: back.name.clone(),
            },
            ada_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .ownership_transfer
        .unwrap();
    assert_eq!(declined.state, pb::OwnershipTransferState::Declined as i32);
    let again = w
        .orgs
        .transfer_ownership(authed(start(ada), bob_token))
        .await
        .unwrap()
        .into_inner()
        .ownership_transfer
        .unwrap();
    let by_target = w
        .orgs
        .cancel_ownership_transfer(authed(
            pb::CancelOwnershipTransferRequest {
                name: again.name.clone(),
            },
            ada_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(by_target.code(), Code::PermissionDenied);
    w.orgs
        .cancel_ownership_transfer(authed(
            pb::CancelOwnershipTransferRequest {
                name: again.name.clone(),
            },
            bob_token,
        ))
        .await
        .unwrap();
    again
}

async fn a_canceled_transfer_is_read_only_by_its_parties(
    h: &mut Heirloom,
    again: pb::OwnershipTransfer,
) {
    let Heirloom {
        w,
        tap,
        ada_token,
        eve_token,
        ..
    } = h;
    let read = w
        .orgs
        .get_ownership_transfer(authed(
            pb::GetOwnershipTransferRequest {
                name: again.name.clone(),
            },
            ada_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .ownership_transfer
        .unwrap();
    assert_eq!(read.state, pb::OwnershipTransferState::Cancelled as i32);
    let hidden = w
        .orgs
        .get_ownership_transfer(authed(
            pb::GetOwnershipTransferRequest { name: again.name },
            eve_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    tap.expect("ownership.transfer_canceled", EVENT_WAIT)
        .await
        .unwrap();
}

#[tokio::test]
async fn identity_creates_a_first_organization_through_the_real_service() {
    let w = World::start(Storage::Sqlite).await;
    let (ada, token) = w.user("ada@example.com").await;
    let mut identity =
        identity_pb::identity_service_client::IdentityServiceClient::new(w.channel.clone());
    let me = identity
        .me(authed(identity_pb::MeRequest::default(), &token))
        .await
        .unwrap()
        .into_inner();
    assert!(me.user.is_some());
    // Sign-up asked the organization service as identity itself, naming
    // the user as owner, and `Me` asked again with the same request id: one
    // organization, owned by the user.
    let db = w.sandbox.database.connect_as_operator().await.unwrap();
    use sqlx::Row;
    let owners: Vec<String> = sqlx::query("SELECT owner_id FROM org_organizations")
        .fetch_all(db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get(0).unwrap())
        .collect();
    db.close().await;
    assert_eq!(owners, vec![ada]);
    w.sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn identity_follows_the_real_organizations_state_and_mfa_setting() {
    let mut w = World::start(Storage::Sqlite).await;
    let (ada, token) = w.user("ada@example.com").await;
    let org = w.root(&ada, &token, "Strict").await;
    let mut identity =
        identity_pb::identity_service_client::IdentityServiceClient::new(w.channel.clone());
    let switch = |token: &str| {
        authed(
            identity_pb::SwitchOrganizationRequest {
                organization: org.name.clone(),
            },
            token,
        )
    };
    identity.switch_organization(switch(&token)).await.unwrap();

    w.orgs
        .deactivate_organization(authed(
            pb::DeactivateOrganizationRequest {
                name: org.name.clone(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap();
    let refused = identity
        .switch_organization(switch(&token))
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "ORGANIZATION_DEACTIVATED");

    w.orgs
        .reactivate_organization(authed(
            pb::ReactivateOrganizationRequest {
                name: org.name.clone(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap();
    w.orgs
        .update_organization(authed(
            pb::UpdateOrganizationRequest {
                organization: Some(pb::Organization {
                    name: org.name.clone(),
                    settings: Some(pb::OrganizationSettings {
                        require_mfa: true,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                update_mask: mask(&["settings.require_mfa"]),
            },
            &token,
        ))
        .await
        .unwrap();
    let refused = identity
        .switch_organization(switch(&token))
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "MFA_REQUIRED");
    w.sandbox.shutdown().await.unwrap();
}
