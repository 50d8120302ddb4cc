//! Tokens and sessions: what is refused, throttled, listed, revoked and
//! rotated, and what passwords end.

use super::*;

#[tokio::test]
async fn every_service_rejects_unauthenticated_calls() {
    let (sandbox, mut identity) = sandbox(Storage::Sqlite).await;
    let channel = sandbox.channel().await.unwrap();
    let mut statuses = vec![
        identity.me(pb::MeRequest {}).await.unwrap_err(),
        org_pb::organization_service_client::OrganizationServiceClient::new(channel.clone())
            .list_organizations(org_pb::ListOrganizationsRequest::default())
            .await
            .unwrap_err(),
        rbac_pb::membership_service_client::MembershipServiceClient::new(channel.clone())
            .list_memberships(rbac_pb::ListMembershipsRequest::default())
            .await
            .unwrap_err(),
        authz_pb::authorization_service_client::AuthorizationServiceClient::new(channel.clone())
            .check_permission(authz_pb::CheckPermissionRequest::default())
            .await
            .unwrap_err(),
        billing_pb::plan_service_client::PlanServiceClient::new(channel.clone())
            .list_plans(billing_pb::ListPlansRequest::default())
            .await
            .unwrap_err(),
        audit_pb::audit_service_client::AuditServiceClient::new(channel.clone())
            .list_audit_events(audit_pb::ListAuditEventsRequest::default())
            .await
            .unwrap_err(),
    ];
    // A header a proxy might set proves nothing.
    let mut spoofed = tonic::Request::new(pb::MeRequest {});
    spoofed.metadata_mut().insert(
        "x-user-id",
        "0190c2a4-0000-7000-8000-000000000000".parse().unwrap(),
    );
    statuses.push(identity.me(spoofed).await.unwrap_err());
    for status in statuses {
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn forged_expired_and_unsigned_tokens_are_rejected() {
    let (sandbox, mut client) = sandbox(Storage::Sqlite).await;
    let signed_up = sign_up(&mut client, "eve@example.com").await;
    let real = signed_up.tokens.unwrap().access_token;
    let user_id = signed_up
        .user
        .unwrap()
        .name
        .trim_start_matches("users/")
        .to_string();
    let real_kid = {
        let header = real.split('.').next().unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        header["kid"].as_str().unwrap().to_string()
    };

    // Signed by a key of our own that claims the real key id.
    let forged = SigningKey::from_seed(real_kid, [9; 32]).sign(&claims_for(&user_id, 600));
    // alg=none with no signature.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims_for(&user_id, 600)).unwrap());
    let unsigned = format!("{header}.{payload}.");
    // A tampered payload on a real token.
    let mut parts: Vec<String> = real.split('.').map(str::to_string).collect();
    parts[1] = payload.clone();
    let tampered = parts.join(".");
    // A real key would be needed for a truly expired token; an unknown key
    // with an expired claim must fail too.
    let expired = SigningKey::generate().sign(&claims_for(&user_id, -3600));

    for token in [
        forged,
        unsigned,
        tampered,
        expired,
        "garbage".to_string(),
        String::new(),
    ] {
        let status = client
            .me(authed(pb::MeRequest {}, &token))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "token {token:?}");
    }
    // The real token still works.
    client.me(authed(pb::MeRequest {}, &real)).await.unwrap();
    sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_email_and_wrong_password_look_the_same_and_are_throttled() {
    let (sandbox, mut client) = Sandbox::builder()
        .configure(|config| {
            config.identity.throttle.free_attempts_per_account = 3;
            config.identity.throttle.backoff_base_ms = 60_000;
        })
        .start()
        .await
        .map(|sandbox| async move {
            let client = Client::new(sandbox.channel().await.unwrap());
            (sandbox, client)
        })
        .unwrap()
        .await;
    sign_up(&mut client, "grace@example.com").await;

    let unknown = login(&mut client, "nobody@example.com", PASSWORD)
        .await
        .unwrap_err();
    let wrong = login(&mut client, "grace@example.com", "not the password at all")
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::Unauthenticated);
    assert_eq!(wrong.code(), unknown.code());
    assert_eq!(wrong.message(), unknown.message());
    assert_eq!(
        wrong.get_details_error_info().unwrap().reason,
        unknown.get_details_error_info().unwrap().reason
    );

    // Two more failures reach the free attempts; the next is throttled, even
    // with the right password, and says when to retry.
    for _ in 0..2 {
        login(&mut client, "grace@example.com", "still not it, sorry")
            .await
            .unwrap_err();
    }
    let throttled = login(&mut client, "grace@example.com", PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(throttled.code(), Code::ResourceExhausted);
    let retry = throttled
        .get_details_retry_info()
        .and_then(|r| r.retry_delay);
    assert!(retry.is_some_and(|d| d.as_secs() >= 1), "{retry:?}");
    // Unknown accounts are throttled the same way.
    for _ in 0..3 {
        login(&mut client, "nobody@example.com", PASSWORD)
            .await
            .unwrap_err();
    }
    let throttled_unknown = login(&mut client, "nobody@example.com", PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(throttled_unknown.code(), Code::ResourceExhausted);
    sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn password_reset_is_single_use_and_ends_every_session() {
    for storage in storages() {
        let (sandbox, mut client) = sandbox(storage).await;
        let signed_up = sign_up(&mut client, "ken@example.com").await;
        let old = signed_up.tokens.unwrap();

        // Unknown addresses get the same empty answer.
        client
            .request_password_reset(pb::RequestPasswordResetRequest {
                email: "nobody@example.com".into(),
            })
            .await
            .unwrap();
        client
            .request_password_reset(pb::RequestPasswordResetRequest {
                email: "ken@example.com".into(),
            })
            .await
            .unwrap();
        let token = sandbox
            .mail_token("ken@example.com", "reset_password")
            .expect("reset mail");
        let new_password = "a completely new passphrase";
        client
            .reset_password(pb::ResetPasswordRequest {
                token: token.clone(),
                new_password: new_password.into(),
            })
            .await
            .unwrap();
        let reused = client
            .reset_password(pb::ResetPasswordRequest {
                token,
                new_password: "yet another passphrase!".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(reused.code(), Code::InvalidArgument);
        let bogus = client
            .reset_password(pb::ResetPasswordRequest {
                token: "x".repeat(43),
                new_password: new_password.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(bogus.code(), Code::InvalidArgument);

        let old_refresh = client
            .refresh(pb::RefreshRequest {
                refresh_token: old.refresh_token,
            })
            .await
            .unwrap_err();
        assert_eq!(
            old_refresh.code(),
            Code::Unauthenticated,
            "sessions end on reset"
        );
        login(&mut client, "ken@example.com", PASSWORD)
            .await
            .unwrap_err();
        people::tokens(
            login(&mut client, "ken@example.com", new_password)
                .await
                .unwrap(),
        );
        sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn users_list_and_revoke_their_own_sessions_only() {
    let (sandbox, mut client) = sandbox(Storage::Sqlite).await;
    let first = sign_up(&mut client, "sam@example.com")
        .await
        .tokens
        .unwrap();
    let second = people::tokens(
        login(&mut client, "sam@example.com", PASSWORD)
            .await
            .unwrap(),
    );
    let other = sign_up(&mut client, "other@example.com")
        .await
        .tokens
        .unwrap();

    let sessions = client
        .list_sessions(authed(
            pb::ListSessionsRequest {
                parent: "users/me".into(),
                ..Default::default()
            },
            &first.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .sessions;
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s.current).count(), 1);

    // Another user's session is NOT_FOUND, not PERMISSION_DENIED.
    let foreign = client
        .revoke_session(authed(
            pb::RevokeSessionRequest {
                name: second.session.clone(),
            },
            &other.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound);

    client
        .revoke_session(authed(
            pb::RevokeSessionRequest {
                name: second.session.clone(),
            },
            &first.access_token,
        ))
        .await
        .unwrap();
    let ended = client
        .me(authed(pb::MeRequest {}, &second.access_token))
        .await
        .unwrap_err();
    assert_eq!(ended.code(), Code::Unauthenticated);
    client
        .me(authed(pb::MeRequest {}, &first.access_token))
        .await
        .unwrap();
    sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn password_changes_need_the_current_password_and_end_other_sessions() {
    let (sandbox, mut client) = sandbox(Storage::Sqlite).await;
    let first = sign_up(&mut client, "pat@example.com")
        .await
        .tokens
        .unwrap();
    let second = people::tokens(
        login(&mut client, "pat@example.com", PASSWORD)
            .await
            .unwrap(),
    );
    let wrong = client
        .change_password(authed(
            pb::ChangePasswordRequest {
                current_password: "nope nope nope".into(),
                new_password: "brand new passphrase".into(),
            },
            &first.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    let changed = client
        .change_password(authed(
            pb::ChangePasswordRequest {
                current_password: PASSWORD.into(),
                new_password: "brand new passphrase".into(),
            },
            &first.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    // The other session ended; the caller's own stays.
    assert_eq!(changed.revoked_session_count, 1);
    client
        .me(authed(pb::MeRequest {}, &first.access_token))
        .await
        .unwrap();
    let other = client
        .me(authed(pb::MeRequest {}, &second.access_token))
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::Unauthenticated);
    sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn logout_everywhere_ends_every_session_or_all_but_the_current_one() {
    let (sandbox, mut client) = sandbox(Storage::Sqlite).await;
    let first = sign_up(&mut client, "many@example.com")
        .await
        .tokens
        .unwrap();
    let second = people::tokens(
        login(&mut client, "many@example.com", PASSWORD)
            .await
            .unwrap(),
    );
    let third = people::tokens(
        login(&mut client, "many@example.com", PASSWORD)
            .await
            .unwrap(),
    );
    let ended = client
        .logout_everywhere(authed(
            pb::LogoutEverywhereRequest {
                keep_current_session: true,
            },
            &first.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ended.revoked_session_count, 2);
    client
        .me(authed(pb::MeRequest {}, &first.access_token))
        .await
        .unwrap();
    for other in [&second, &third] {
        let status = client
            .me(authed(pb::MeRequest {}, &other.access_token))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    client
        .logout_everywhere(authed(
            pb::LogoutEverywhereRequest {
                keep_current_session: false,
            },
            &first.access_token,
        ))
        .await
        .unwrap();
    let status = client
        .me(authed(pb::MeRequest {}, &first.access_token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn signing_keys_rotate_and_old_tokens_keep_verifying() {
    use std::time::Duration;
    use tenantry_identity::keys::KeyRing;
    use tenantry_identity::store::Store;
    for storage in storages() {
        let database = tenantry_testkit::TestDatabase::new(storage).await.unwrap();
        let db = database.connect().await.unwrap();
        db.migrate(tenantry_identity::NAME, tenantry_identity::MIGRATIONS)
            .await
            .unwrap();
        let store = Store::new(db.clone());
        let rotation = Duration::from_secs(30 * 24 * 3600);
        let ttl = Duration::from_secs(900);
        let ring = KeyRing::load(store.clone(), rotation, ttl).await.unwrap();
        let old = ring.signing_key();
        let token = old.sign(&claims_for("user", 600));

        // The key ages past the rotation period (as if 31 days went by).
        let aged = tenantry_kit::db::now_micros() - 31 * 24 * 3_600_000_000;
        sqlx::query("UPDATE identity_signing_keys SET created_at_us = $1")
            .bind(aged)
            .execute(db.writer())
            .await
            .unwrap();
        ring.refresh().await.unwrap();
        let new = ring.signing_key();
        assert_ne!(new.kid(), old.kid(), "a new key signs");
        let published: Vec<String> = ring.published().iter().map(|k| k.kid.clone()).collect();
        assert!(published.contains(&new.kid().to_string()));
        assert!(
            published.contains(&old.kid().to_string()),
            "the old key is still published"
        );
        let keys = KeySet::from_jwks(&ring.published()).unwrap();
        keys.verify(
            &token,
            &Expectations::new("tenantry", "tenantry"),
            chrono::Utc::now().timestamp(),
        )
        .expect("tokens of the old key still verify");
        // Another replica loading the same table agrees on the signing key.
        let replica = KeyRing::load(store, rotation, ttl).await.unwrap();
        assert_eq!(replica.signing_key().kid(), new.kid());
        db.close().await;
    }
}

/// `Me` names each of the caller's organizations as the console's switcher
/// shows them: display name, slug, root, roles, ownership, and whether it
/// requires MFA of its members.
#[tokio::test]
async fn me_names_each_organization_with_its_root_roles_and_policy() {
    let (sandbox, mut identity) = sandbox(Storage::Sqlite).await;
    let signed_up = sign_up(&mut identity, "ada@example.com").await;
    let token = signed_up.tokens.unwrap().access_token;
    let root = signed_up.organization;
    let department = org_pb::organization_service_client::OrganizationServiceClient::new(
        sandbox.channel().await.unwrap(),
    )
    .create_organization(authed(
        org_pb::CreateOrganizationRequest {
            organization: Some(org_pb::Organization {
                display_name: "Difference Engine".into(),
                slug: "difference-engine".into(),
                parent: root.clone(),
                settings: Some(org_pb::OrganizationSettings {
                    require_mfa: true,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        &token,
    ))
    .await
    .unwrap()
    .into_inner()
    .organization
    .unwrap();

    let me = identity
        .me(authed(pb::MeRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    let summary = |name: &str| {
        me.memberships
            .iter()
            .find(|m| m.organization == name)
            .unwrap_or_else(|| panic!("{name} in {:?}", me.memberships))
            .clone()
    };
    let first = summary(&root);
    assert!(!first.organization_display_name.is_empty() && !first.organization_slug.is_empty());
    assert_eq!(first.root_organization, root);
    assert!(first.owner && first.roles.contains(&"roles/owner".to_string()));
    assert!(!first.require_mfa);
    let below = summary(&department.name);
    assert_eq!(below.organization_display_name, "Difference Engine");
    assert_eq!(below.organization_slug, "difference-engine");
    assert_eq!(below.root_organization, root, "a department names its root");
    assert!(below.require_mfa, "the department requires MFA");
    sandbox.shutdown().await.unwrap();
}
