//! An ended session holds nothing on its next call.

use super::*;

/// Whether the holder of `token` (the user `user`) may create projects in
/// `organization`, asked of rbac with that token.
async fn may_create(w: &World, user: &str, token: &str, organization: &str) -> bool {
    allowed(
        &w.channel,
        token,
        ("user", user),
        ("organization", organization),
        "project.create",
    )
    .await
}

#[tokio::test]
async fn an_ended_session_holds_nothing_on_the_next_call() {
    for storage in storages() {
        let w = World::start(storage).await;
        let (ada, acme) = w.sign_up("ada@example.com").await;
        let second = session(&w, "ada@example.com").await;
        let third = session(&w, "ada@example.com").await;
        assert!(may_create(&w, &ada.id, &ada.token, &acme).await);

        // Logout: that session's access token holds nothing at once, at
        // every service; the others are untouched.
        Identity::new(w.channel.clone())
            .logout(authed(identity_pb::LogoutRequest::default(), &ada.token))
            .await
            .unwrap();
        assert!(!may_create(&w, &ada.id, &ada.token, &acme).await);
        assert_eq!(w.projects(&ada.token, &acme).await, Err(Code::NotFound));
        let me = Identity::new(w.channel.clone())
            .me(authed(identity_pb::MeRequest::default(), &ada.token))
            .await
            .unwrap_err();
        assert_eq!(me.code(), Code::Unauthenticated);
        assert!(may_create(&w, &ada.id, &second, &acme).await);

        // A password change ends every other session.
        Identity::new(w.channel.clone())
            .change_password(authed(
                identity_pb::ChangePasswordRequest {
                    current_password: people::PASSWORD.into(),
                    new_password: "another long passphrase entirely".into(),
                },
                &second,
            ))
            .await
            .unwrap();
        assert!(!may_create(&w, &ada.id, &third, &acme).await);
        let made = w.project(&third, &acme).await.unwrap_err();
        assert!(
            matches!(made.code(), Code::NotFound | Code::PermissionDenied),
            "{made:?}"
        );
        assert!(may_create(&w, &ada.id, &second, &acme).await);
        w.sandbox.shutdown().await.unwrap();
    }
}
