//! Platform administrators and service accounts.

use super::*;
use tenantry_testkit::clients::ServiceAccounts;

/// An installation whose platform administrator is root; a member
/// signed up beside them.
struct Installation {
    sandbox: Sandbox,
    client: Client,
    admin: String,
    member_user: pb::User,
    member_token: String,
}

impl Installation {
    async fn start() -> Installation {
        let (sandbox, mut client) = admin_sandbox().await;
        let root = sign_up(&mut client, "root@example.com").await;
        assert!(root.user.unwrap().platform_admin);
        let admin = root.tokens.unwrap().access_token;
        let member = sign_up(&mut client, "member@example.com").await;
        let member_user = member.user.unwrap();
        let member_token = member.tokens.unwrap().access_token;
        Installation {
            sandbox,
            client,
            admin,
            member_user,
            member_token,
        }
    }
}

#[tokio::test]
async fn platform_admins_manage_users_and_others_cannot() {
    let mut i = Installation::start().await;
    a_member_may_not_list_or_see_other_users(&mut i).await;
    users_list_in_pages_bound_to_the_query(&mut i).await;
    a_stale_etag_is_aborted_and_changes_nothing(&mut i).await;
    disabling_ends_the_members_sessions_and_sign_ins(&mut i).await;
    users_are_soft_deleted_and_undeleted(&mut i).await;
    the_bootstrap_path_grants_the_role_in_the_database(&mut i).await;
    i.sandbox.shutdown().await.unwrap();
}

async fn a_member_may_not_list_or_see_other_users(i: &mut Installation) {
    let Installation {
        client,
        admin,
        member_token,
        ..
    } = i;
    // A regular user may not list users, and another user's id is NOT_FOUND.
    let denied = client
        .list_users(authed(pb::ListUsersRequest::default(), member_token))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let hidden = client
        .get_user(authed(
            pb::GetUserRequest {
                name: "users/me".into(),
            },
            admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    let foreign = client
        .get_user(authed(
            pb::GetUserRequest {
                name: hidden.name.clone(),
            },
            member_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound);
}

async fn users_list_in_pages_bound_to_the_query(i: &mut Installation) {
    let Installation { client, admin, .. } = i;
    // Pages of one, with tokens bound to the query.
    let first = client
        .list_users(authed(
            pb::ListUsersRequest {
                page_size: 1,
                ..Default::default()
            },
            admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.users.len(), 1);
    assert!(!first.next_page_token.is_empty());
    let second = client
        .list_users(authed(
            pb::ListUsersRequest {
                page_size: 1,
                page_token: first.next_page_token.clone(),
                ..Default::default()
            },
            admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.users.len(), 1);
    assert_ne!(second.users[0].name, first.users[0].name);
    let other_query = client
        .list_users(authed(
            pb::ListUsersRequest {
                page_size: 1,
                page_token: first.next_page_token,
                email: "m".into(),
                ..Default::default()
            },
            admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(other_query.code(), Code::InvalidArgument);
}

async fn a_stale_etag_is_aborted_and_changes_nothing(i: &mut Installation) {
    let Installation {
        client,
        admin,
        member_user,
        member_token,
        ..
    } = i;
    // A stale etag is ABORTED and changes nothing.
    let stale = client
        .disable_user(authed(
            pb::DisableUserRequest {
                name: member_user.name.clone(),
                etag: "\"999\"".into(),
            },
            admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    client
        .me(authed(pb::MeRequest {}, member_token))
        .await
        .unwrap();
}

async fn disabling_ends_the_members_sessions_and_sign_ins(i: &mut Installation) {
    let Installation {
        client,
        admin,
        member_user,
        member_token,
        ..
    } = i;
    // Disabling ends the member's sessions and sign-ins.
    client
        .disable_user(authed(
            pb::DisableUserRequest {
                name: member_user.name.clone(),
                etag: member_user.etag.clone(),
            },
            admin,
        ))
        .await
        .unwrap();
    assert_eq!(
        client
            .me(authed(pb::MeRequest {}, member_token))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    assert_eq!(
        login(client, "member@example.com", PASSWORD)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    client
        .enable_user(authed(
            pb::EnableUserRequest {
                name: member_user.name.clone(),
                etag: String::new(),
            },
            admin,
        ))
        .await
        .unwrap();
    people::tokens(login(client, "member@example.com", PASSWORD).await.unwrap());
}

async fn users_are_soft_deleted_and_undeleted(i: &mut Installation) {
    let Installation {
        client,
        admin,
        member_user,
        ..
    } = i;
    // Soft delete and undelete.
    client
        .delete_user(authed(
            pb::DeleteUserRequest {
                name: member_user.name.clone(),
                etag: String::new(),
            },
            admin,
        ))
        .await
        .unwrap();
    login(client, "member@example.com", PASSWORD)
        .await
        .unwrap_err();
    let restored = client
        .undelete_user(authed(
            pb::UndeleteUserRequest {
                name: member_user.name.clone(),
                etag: String::new(),
            },
            admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(restored.state, pb::UserState::Active as i32);
    people::tokens(login(client, "member@example.com", PASSWORD).await.unwrap());
}

async fn the_bootstrap_path_grants_the_role_in_the_database(i: &mut Installation) {
    let Installation { sandbox, .. } = i;
    // The bootstrap path grants the role straight in the database.
    let db = sandbox.database.connect().await.unwrap();
    let granted = tenantry_identity::admin::grant_platform_admin(&db, "member@example.com")
        .await
        .unwrap();
    assert!(granted.platform_admin);
    let missing = tenantry_identity::admin::grant_platform_admin(&db, "ghost@example.com")
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tenantry_kit::Code::NotFound);
    db.close().await;
}

/// A platform administrator and a member of an installation, each with a
/// token, and the clients they call.
struct Deployer {
    sandbox: Sandbox,
    client: Client,
    admin: String,
    member: String,
    accounts: ServiceAccounts,
}

impl Deployer {
    async fn start() -> Deployer {
        let (sandbox, mut client) = admin_sandbox().await;
        let admin = sign_up(&mut client, "root@example.com")
            .await
            .tokens
            .unwrap()
            .access_token;
        let member = sign_up(&mut client, "dev@example.com")
            .await
            .tokens
            .unwrap()
            .access_token;
        let accounts = ServiceAccounts::new(sandbox.channel().await.unwrap());

        Deployer {
            sandbox,
            client,
            admin,
            member,
            accounts,
        }
    }
}

#[tokio::test]
async fn service_accounts_sign_in_with_client_credentials() {
    let mut d = Deployer::start().await;
    users_may_not_create_service_accounts(&mut d).await;
    let (account, created) = creates_replay_by_their_request_id(&mut d).await;
    let issued = a_credential_issues_a_verifiable_token(&mut d, &account, &created).await;
    let used = the_account_says_when_it_was_last_used(&mut d, &account, &issued).await;
    wrong_secrets_typos_and_foreign_ids_look_alike(&mut d, &created).await;
    a_deleted_credential_stops_working(&mut d, &created).await;
    deleting_needs_the_current_etag(&mut d, &account, &used).await;
    d.sandbox.shutdown().await.unwrap();
}

async fn users_may_not_create_service_accounts(d: &mut Deployer) {
    let Deployer {
        member, accounts, ..
    } = d;
    let denied = accounts
        .create_service_account(authed(
            pb::CreateServiceAccountRequest {
                service_account: Some(pb::ServiceAccount {
                    display_name: "deployer".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
            member,
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

async fn creates_replay_by_their_request_id(
    d: &mut Deployer,
) -> (
    pb::ServiceAccount,
    pb::CreateServiceAccountCredentialResponse,
) {
    let Deployer {
        admin, accounts, ..
    } = d;
    // Creates are idempotent by request id: a replay answers the first
    // account, and the first credential without its secret.
    let create_account = || {
        let mut accounts = accounts.clone();
        let admin = admin.clone();
        async move {
            accounts
                .create_service_account(authed(
                    pb::CreateServiceAccountRequest {
                        service_account: Some(pb::ServiceAccount {
                            display_name: "deployer".into(),
                            ..Default::default()
                        }),
                        request_id: "01937d1c-2d6c-7ae1-9a6b-3f1e0c2b4a52".into(),
                    },
                    &admin,
                ))
                .await
                .unwrap()
                .into_inner()
                .service_account
                .unwrap()
        }
    };
    let account = create_account().await;
    assert_eq!(create_account().await.name, account.name);
    let create_credential = || {
        let mut accounts = accounts.clone();
        let (admin, parent) = (admin.clone(), account.name.clone());
        async move {
            accounts
                .create_service_account_credential(authed(
                    pb::CreateServiceAccountCredentialRequest {
                        parent,
                        credential: Some(pb::ServiceAccountCredential {
                            display_name: "ci".into(),
                            ..Default::default()
                        }),
                        request_id: "01937d1c-2d6c-7ae1-9a6b-3f1e0c2b4a53".into(),
                    },
                    &admin,
                ))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let created = create_credential().await;
    assert!(created.client_secret.starts_with("tsa_"));
    let replayed = create_credential().await;
    assert!(
        replayed.client_secret.is_empty(),
        "the secret is shown once"
    );
    assert_eq!(replayed.credential, created.credential);
    let credential = created.credential.clone().unwrap();
    assert_eq!(credential.display_name, "ci");
    assert!(credential.created_by.starts_with("users/"));
    (account, created)
}

async fn a_credential_issues_a_verifiable_token(
    d: &mut Deployer,
    account: &pb::ServiceAccount,
    created: &pb::CreateServiceAccountCredentialResponse,
) -> pb::IssueServiceAccountTokenResponse {
    let Deployer {
        client,
        admin,
        accounts,
        ..
    } = d;
    let credential = created.credential.clone().unwrap();
    let listed = accounts
        .list_service_account_credentials(authed(
            pb::ListServiceAccountCredentialsRequest {
                parent: account.name.clone(),
                ..Default::default()
            },
            admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .credentials;
    assert_eq!(listed.len(), 1, "one credential for the two calls");

    let issued = accounts
        .issue_service_account_token(pb::IssueServiceAccountTokenRequest {
            client_id: credential.client_id.clone(),
            client_secret: created.client_secret.clone(),
            organization: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(issued.service_account, account.name);
    let jwks = client
        .get_jwks(pb::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner();
    let keys: Vec<_> = jwks
        .keys
        .into_iter()
        .map(tenantry_kit::auth::JwkKey::from)
        .collect();
    let claims = KeySet::from_jwks(&keys)
        .unwrap()
        .verify(
            &issued.access_token,
            &Expectations::new("tenantry", "tenantry"),
            chrono::Utc::now().timestamp(),
        )
        .unwrap();
    assert_eq!(claims.kind, PrincipalKind::ServiceAccount);
    issued
}

async fn the_account_says_when_it_was_last_used(
    d: &mut Deployer,
    account: &pb::ServiceAccount,
    issued: &pb::IssueServiceAccountTokenResponse,
) -> pb::ServiceAccount {
    let Deployer {
        client,
        admin,
        accounts,
        ..
    } = d;
    // The account says when it was last used.
    let used = accounts
        .get_service_account(authed(
            pb::GetServiceAccountRequest {
                name: account.name.clone(),
            },
            admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .service_account
        .unwrap();
    assert!(used.last_used_time.is_some());
    // A machine token is authenticated but is not a user.
    let not_user = client
        .me(authed(pb::MeRequest {}, &issued.access_token))
        .await
        .unwrap_err();
    assert_eq!(not_user.code(), Code::PermissionDenied);

    used
}

async fn wrong_secrets_typos_and_foreign_ids_look_alike(
    d: &mut Deployer,
    created: &pb::CreateServiceAccountCredentialResponse,
) {
    let Deployer { accounts, .. } = d;
    let credential = created.credential.clone().unwrap();
    // Wrong secret, a typo (checksum) and a foreign client id all look alike.
    let mut typo = created.client_secret.clone();
    let last = typo.pop().unwrap();
    typo.push(if last == 'a' { 'b' } else { 'a' });
    let (other_parts, other_secret) = tenantry_identity::secrets::new_client_secret();
    for (client_id, secret) in [
        (credential.client_id.clone(), typo),
        (credential.client_id.clone(), other_secret.clone()),
        (other_parts.id.clone(), other_secret),
        (credential.client_id.clone(), String::new()),
    ] {
        let status = accounts
            .issue_service_account_token(pb::IssueServiceAccountTokenRequest {
                client_id,
                client_secret: secret,
                organization: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }
}

async fn a_deleted_credential_stops_working(
    d: &mut Deployer,
    created: &pb::CreateServiceAccountCredentialResponse,
) {
    let Deployer {
        admin, accounts, ..
    } = d;
    let credential = created.credential.clone().unwrap();
    // A deleted credential stops working.
    accounts
        .delete_service_account_credential(authed(
            pb::DeleteServiceAccountCredentialRequest {
                name: credential.name.clone(),
            },
            admin,
        ))
        .await
        .unwrap();
    let revoked = accounts
        .issue_service_account_token(pb::IssueServiceAccountTokenRequest {
            client_id: credential.client_id,
            client_secret: created.client_secret.clone(),
            organization: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(revoked.code(), Code::Unauthenticated);
}

async fn deleting_needs_the_current_etag(
    d: &mut Deployer,
    account: &pb::ServiceAccount,
    used: &pb::ServiceAccount,
) {
    let Deployer {
        admin, accounts, ..
    } = d;
    // Deleting with a stale etag changes nothing; with the current one it
    // goes.
    let stale = accounts
        .delete_service_account(authed(
            pb::DeleteServiceAccountRequest {
                name: account.name.clone(),
                etag: "\"1\"".into(),
            },
            admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");
    accounts
        .delete_service_account(authed(
            pb::DeleteServiceAccountRequest {
                name: account.name.clone(),
                etag: used.etag.clone(),
            },
            admin,
        ))
        .await
        .unwrap();
}

/// An address added to `identity.platform_admins` after it signed up gets
/// the role when identity next starts, with its event, once: the way to
/// make an administrator where nobody reaches the database (an
/// environment variable and a rollout).
#[tokio::test]
async fn configured_platform_admins_who_signed_up_before_get_the_role_at_start() {
    let (sandbox, mut client) = sandbox(Storage::Sqlite).await;
    let ops = sign_up(&mut client, "ops@example.com").await;
    assert!(!ops.user.unwrap().platform_admin);
    let configured = |config: &mut tenantry::config::Config| {
        config.identity.platform_admins = vec!["Ops@Example.com".into()];
    };
    let granted = |types: Vec<String>| {
        types
            .iter()
            .filter(|t| t.ends_with("platform_admin_granted"))
            .count()
    };
    let mut sandbox = sandbox;
    for _restart in 0..2 {
        let stopped = sandbox.stop().await.unwrap();
        sandbox = Sandbox::builder()
            .resume(stopped)
            .configure(configured)
            .start()
            .await
            .unwrap();
        let mut client = Client::new(sandbox.channel().await.unwrap());
        let token = people::tokens(
            login(&mut client, "ops@example.com", PASSWORD)
                .await
                .unwrap(),
        )
        .access_token;
        let users = client
            .list_users(authed(pb::ListUsersRequest::default(), &token))
            .await
            .expect("a platform administrator lists users")
            .into_inner();
        assert!(users.users.iter().any(|u| u.platform_admin));
        // Granted once, however often identity starts.
        assert_eq!(granted(event_types(&sandbox).await), 1);
    }
    sandbox.shutdown().await.unwrap();
}
