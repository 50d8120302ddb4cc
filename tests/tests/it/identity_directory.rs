//! Identity against the organization and rbac contracts: API keys, sign-in
//! to an organization that requires MFA, first organizations and switching.
//! The other services' answers come from a stand-in serving their real
//! contracts (the services themselves arrive with issues #4 and #5), so
//! identity is exercised exactly as it talks to them: over gRPC.

use tenantry::services::ServiceKind;
use tenantry_kit::auth::{Expectations, JwkKey, KeySet, PrincipalKind};
use tenantry_proto::tenantry::identity::v1 as pb;
use tenantry_testkit::clients::{Identity, Keys};
use tenantry_testkit::standin::DirectoryStandIn;
use tenantry_testkit::{Sandbox, authed, last_id, people};
use tonic::Code;

/// The display name the users of these tests sign up with.
const NAME: &str = "Key Maker";

fn create(org: &str, permissions: &[&str]) -> pb::CreateApiKeyRequest {
    pb::CreateApiKeyRequest {
        parent: format!("organizations/{org}"),
        api_key: Some(pb::ApiKey {
            display_name: "ci".into(),
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

/// Identity alone, with the stand-in answering for organization and rbac.
async fn identity_with_directory(rbac: &DirectoryStandIn) -> Sandbox {
    let url = rbac.start().await.unwrap();
    Sandbox::builder()
        .services(&[ServiceKind::Identity, ServiceKind::Gateway])
        .configure(move |config| {
            config.peers.rbac = Some(url.clone());
            config.peers.organization = Some(url);
        })
        .start()
        .await
        .unwrap()
}

/// Organization's and rbac's stand-in with an organization in which the
/// creator may create keys and read projects and the reader may read it;
/// an outsider signed up too.
struct Directory {
    rbac: DirectoryStandIn,
    sandbox: Sandbox,
    identity: Identity,
    keys: Keys,
    org: String,
    creator_token: String,
    outsider_token: String,
    reader_token: String,
}

impl Directory {
    async fn start() -> Directory {
        let rbac = DirectoryStandIn::default();
        let sandbox = identity_with_directory(&rbac).await;
        let channel = sandbox.channel().await.unwrap();
        let identity = Identity::new(channel.clone());
        let keys = Keys::new(channel.clone());

        let org = tenantry_kit::id::new_id().to_string();
        let creator = people::sign_up(&channel, "creator@example.com", NAME)
            .await
            .0;
        let outsider = people::sign_up(&channel, "outsider@example.com", NAME)
            .await
            .0;
        let reader = people::sign_up(&channel, "reader@example.com", NAME)
            .await
            .0;
        {
            let mut directory = rbac.state();
            directory.members.insert((creator.id.clone(), org.clone()));
            directory.members.insert((reader.id.clone(), org.clone()));
            directory
                .grants
                .insert((reader.id, org.clone(), "organization.read".to_string()));
            for permission in ["organization.api_keys.create", "project.read"] {
                directory
                    .grants
                    .insert((creator.id.clone(), org.clone(), permission.to_string()));
            }
        }
        Directory {
            rbac,
            sandbox,
            identity,
            keys,
            org,
            creator_token: creator.token,
            outsider_token: outsider.token,
            reader_token: reader.token,
        }
    }
}

#[tokio::test]
async fn api_keys_carry_a_subset_of_permissions_and_exchange_for_tokens() {
    let mut d = Directory::start().await;
    let (secret, key) = a_key_carries_only_what_its_creator_may_grant(&mut d).await;
    a_key_exchanges_for_a_short_lived_token_served_hot(&mut d, &secret).await;
    wrong_secrets_typos_and_garbage_are_unauthenticated(&mut d, &secret).await;
    a_revoked_key_stops_at_once(&mut d, &key, secret.clone()).await;
    a_key_stops_when_its_creator_leaves(&mut d).await;
    listings_show_revoked_keys_only_when_asked(&mut d).await;
    d.sandbox.shutdown().await.unwrap();
}

async fn a_key_carries_only_what_its_creator_may_grant(d: &mut Directory) -> (String, pb::ApiKey) {
    let Directory {
        keys,
        org,
        creator_token,
        outsider_token,
        reader_token,
        ..
    } = d;
    // A permission the creator lacks cannot go into a key; nothing is written.
    let too_much = keys
        .create_api_key(authed(
            create(org, &["project.read", "billing.manage"]),
            creator_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(too_much.code(), Code::PermissionDenied);
    // Someone without the right to manage keys sees no organization at all.
    let outsider = keys
        .create_api_key(authed(create(org, &["project.read"]), outsider_token))
        .await
        .unwrap_err();
    assert_eq!(outsider.code(), Code::NotFound);
    // A member who reads the organization is told they may not.
    let reader = keys
        .create_api_key(authed(create(org, &["project.read"]), reader_token))
        .await
        .unwrap_err();
    assert_eq!(reader.code(), Code::PermissionDenied, "{reader:?}");
    let bad = keys
        .create_api_key(authed(create(org, &["Project Read"]), creator_token))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);

    let created = keys
        .create_api_key(authed(create(org, &["project.read"]), creator_token))
        .await
        .unwrap()
        .into_inner();
    let secret = created.secret.clone();
    assert!(secret.starts_with("tnt_"), "{secret}");
    let key = created.api_key.unwrap();
    assert_eq!(key.state, pb::ApiKeyState::Active as i32);
    (secret, key)
}

async fn a_key_exchanges_for_a_short_lived_token_served_hot(d: &mut Directory, secret: &str) {
    let Directory {
        identity,
        keys,
        org,
        ..
    } = d;
    // Exchange: a short-lived token for the key's organization and permissions.
    let exchanged = keys
        .authenticate_api_key(pb::AuthenticateApiKeyRequest {
            secret: secret.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(exchanged.organization, format!("organizations/{org}"));
    assert_eq!(exchanged.permissions, vec!["project.read".to_string()]);
    let jwks = identity
        .get_jwks(pb::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner();
    let jwks: Vec<JwkKey> = jwks.keys.into_iter().map(JwkKey::from).collect();
    let claims = KeySet::from_jwks(&jwks)
        .unwrap()
        .verify(
            &exchanged.access_token,
            &Expectations::new("tenantry", "tenantry"),
            chrono::Utc::now().timestamp(),
        )
        .unwrap();
    assert_eq!(claims.kind, PrincipalKind::ApiKey);
    assert_eq!(claims.org.as_deref(), Some(org.as_str()));
    // A hot key is served from the cache: the same token comes back.
    let again = keys
        .authenticate_api_key(pb::AuthenticateApiKeyRequest {
            secret: secret.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.access_token, exchanged.access_token);
}

async fn wrong_secrets_typos_and_garbage_are_unauthenticated(d: &mut Directory, secret: &str) {
    let Directory { keys, .. } = d;
    // A valid prefix with a wrong secret, a typo, garbage: all UNAUTHENTICATED.
    let (_, foreign) = tenantry_identity::secrets::new_api_key();
    let mut typo = secret.to_string();
    let last = typo.pop().unwrap();
    typo.push(if last == 'a' { 'b' } else { 'a' });
    let forged_secret = {
        let parts = tenantry_identity::secrets::parse_api_key(secret).unwrap();
        let (other, _) = tenantry_identity::secrets::new_api_key();
        format!("tnt_{}_{}", parts.id, other.secret)
    };
    for attempt in [
        foreign,
        typo,
        forged_secret,
        "tnt_".to_string(),
        String::new(),
    ] {
        let status = keys
            .authenticate_api_key(pb::AuthenticateApiKeyRequest {
                secret: attempt.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{attempt}");
    }
}

async fn a_revoked_key_stops_at_once(d: &mut Directory, key: &pb::ApiKey, secret: String) {
    let Directory {
        keys,
        creator_token,
        ..
    } = d;
    // Revoked keys stop at once on this replica.
    keys.revoke_api_key(authed(
        pb::RevokeApiKeyRequest {
            name: key.name.clone(),
        },
        creator_token,
    ))
    .await
    .unwrap();
    let revoked = keys
        .authenticate_api_key(pb::AuthenticateApiKeyRequest { secret })
        .await
        .unwrap_err();
    assert_eq!(revoked.code(), Code::Unauthenticated);
}

async fn a_key_stops_when_its_creator_leaves(d: &mut Directory) {
    let Directory {
        rbac,
        keys,
        org,
        creator_token,
        ..
    } = d;
    // A key stops working when its creator leaves the organization.
    let second = keys
        .create_api_key(authed(create(org, &["project.read"]), creator_token))
        .await
        .unwrap()
        .into_inner();
    rbac.state().members.clear();
    let orphaned = keys
        .authenticate_api_key(pb::AuthenticateApiKeyRequest {
            secret: second.secret,
        })
        .await
        .unwrap_err();
    assert_eq!(orphaned.code(), Code::Unauthenticated);
}

async fn listings_show_revoked_keys_only_when_asked(d: &mut Directory) {
    let Directory {
        keys,
        org,
        creator_token,
        ..
    } = d;
    // Listing shows both, the revoked one only with show_inactive.
    let active = keys
        .list_api_keys(authed(
            pb::ListApiKeysRequest {
                parent: format!("organizations/{org}"),
                ..Default::default()
            },
            creator_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .api_keys;
    assert_eq!(active.len(), 1);
    let all = keys
        .list_api_keys(authed(
            pb::ListApiKeysRequest {
                parent: format!("organizations/{org}"),
                show_inactive: true,
                ..Default::default()
            },
            creator_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .api_keys;
    assert_eq!(all.len(), 2);
}

#[tokio::test]
async fn without_an_authorization_answer_nothing_is_written() {
    // No rbac at all (nothing listens where identity looks for it): a
    // sign-up, which the authorization index must learn, fails closed.
    let sandbox = Sandbox::builder()
        .services(&[ServiceKind::Identity, ServiceKind::Organization])
        .configure(|config| config.peers.rbac = Some("http://127.0.0.1:9".into()))
        .start()
        .await
        .unwrap();
    let refused = Identity::new(sandbox.channel().await.unwrap())
        .sign_up(pb::SignUpRequest {
            email: "early@example.com".into(),
            password: people::PASSWORD.into(),
            display_name: "Early".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable);
    assert_eq!(rows(&sandbox, "identity_users").await, 0);
    sandbox.shutdown().await.unwrap();

    // rbac takes events but cannot answer a check: no key.
    let rbac = DirectoryStandIn::default();
    let sandbox = identity_with_directory(&rbac).await;
    let channel = sandbox.channel().await.unwrap();
    let mut keys = Keys::new(channel.clone());
    let token = people::sign_up(&channel, "early@example.com", NAME)
        .await
        .0
        .token;
    rbac.state().checks_unavailable = true;
    let org = tenantry_kit::id::new_id().to_string();
    let status = keys
        .create_api_key(authed(create(&org, &["project.read"]), &token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(rows(&sandbox, "identity_api_keys").await, 0);
    sandbox.shutdown().await.unwrap();
}

/// How many rows `table` of the sandbox's database holds.
async fn rows(sandbox: &Sandbox, table: &str) -> i64 {
    let db = sandbox.database.connect_as_operator().await.unwrap();
    let count: i64 = sqlx::Row::get(
        &sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(db.pool())
            .await
            .unwrap(),
        0,
    );
    db.close().await;
    count
}

#[tokio::test]
async fn an_organization_that_requires_mfa_gets_no_token_until_mfa_is_set_up() {
    let rbac = DirectoryStandIn::default();
    let sandbox = identity_with_directory(&rbac).await;
    let channel = sandbox.channel().await.unwrap();
    let mut identity = Identity::new(channel.clone());
    let user = people::sign_up(&channel, "strict@example.com", NAME)
        .await
        .0;
    let org = tenantry_kit::id::new_id().to_string();
    {
        let mut directory = rbac.state();
        directory.members.insert((user.id.clone(), org.clone()));
        directory.require_mfa.insert(org.clone());
    }
    let limited = the_sign_in_gives_a_token_that_may_only_enroll(&mut identity, &org).await;
    enrolling_gives_full_tokens_in_the_organization(&mut identity, &limited, &org).await;
    sandbox.shutdown().await.unwrap();
}

/// The sign-in into `org` answers a token with no organization in it, which
/// may enroll MFA and nothing else.
async fn the_sign_in_gives_a_token_that_may_only_enroll(
    identity: &mut Identity,
    org: &str,
) -> String {
    let signed_in = identity
        .login(pb::LoginRequest {
            email: "strict@example.com".into(),
            password: people::PASSWORD.into(),
            organization: format!("organizations/{org}"),
        })
        .await
        .unwrap()
        .into_inner();
    let tokens = people::tokens(signed_in);
    assert!(tokens.mfa_enrollment_required);
    assert_eq!(tokens.organization, "", "no token for the organization yet");

    // That token may enroll MFA and nothing else.
    let limited = tokens.access_token.clone();
    let refused = identity
        .list_sessions(authed(
            pb::ListSessionsRequest {
                parent: "users/me".into(),
                ..Default::default()
            },
            &limited,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let switch = identity
        .switch_organization(authed(
            pb::SwitchOrganizationRequest {
                organization: format!("organizations/{org}"),
            },
            &limited,
        ))
        .await
        .unwrap_err();
    assert_eq!(switch.code(), Code::PermissionDenied);
    limited
}

async fn enrolling_gives_full_tokens_in_the_organization(
    identity: &mut Identity,
    limited: &str,
    org: &str,
) {
    let enrollment = identity
        .enroll_totp(authed(pb::EnrollTotpRequest {}, limited))
        .await
        .unwrap()
        .into_inner();
    let secret = tenantry_identity::totp::TotpSecret::from_base32(&enrollment.secret).unwrap();
    let code = tenantry_identity::totp::code_at(&secret, chrono::Utc::now().timestamp());
    let confirmed = identity
        .confirm_totp(authed(pb::ConfirmTotpRequest { code }, limited))
        .await
        .unwrap()
        .into_inner();
    let full = confirmed.tokens.expect("full tokens after enrollment");
    assert_eq!(full.organization, format!("organizations/{org}"));
    assert!(full.mfa_authenticated && !full.mfa_enrollment_required);
    let jwks = identity
        .get_jwks(pb::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner();
    let jwks: Vec<JwkKey> = jwks.keys.into_iter().map(JwkKey::from).collect();
    let claims = KeySet::from_jwks(&jwks)
        .unwrap()
        .verify(
            &full.access_token,
            &Expectations::new("tenantry", "tenantry"),
            chrono::Utc::now().timestamp(),
        )
        .unwrap();
    assert!(claims.amr.iter().any(|m| m == "mfa"));
    assert_eq!(claims.org.as_deref(), Some(org));
}

#[tokio::test]
async fn me_creates_a_first_organization_and_users_switch_between_theirs() {
    let rbac = DirectoryStandIn::default();
    let sandbox = identity_with_directory(&rbac).await;
    let mut identity = Identity::new(sandbox.channel().await.unwrap());
    let (user, tokens) =
        sign_up_creates_the_first_organization_and_signs_into_it(&mut identity).await;
    let (first, token) =
        a_user_with_no_organization_gets_one_from_me(&rbac, &mut identity, &tokens).await;

    let second = tenantry_kit::id::new_id().to_string();
    rbac.state().members.insert((user, second.clone()));
    let switched = switch(&mut identity, &token, &format!("organizations/{second}")).await;
    assert_eq!(switched.organization, format!("organizations/{second}"));
    assert!(
        switched.refresh_token.is_empty(),
        "the session keeps its refresh token"
    );
    let back = switch(&mut identity, &switched.access_token, &first).await;
    assert_eq!(back.organization, first);
    sandbox.shutdown().await.unwrap();
}

/// Answers the user's id and tokens.
async fn sign_up_creates_the_first_organization_and_signs_into_it(
    identity: &mut Identity,
) -> (String, pb::AuthTokens) {
    let signed_up = identity
        .sign_up(pb::SignUpRequest {
            email: "first@example.com".into(),
            password: people::PASSWORD.into(),
            display_name: "First".into(),
            organization_display_name: "Acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let user = last_id(&signed_up.user.unwrap().name);
    let tokens = signed_up.tokens.unwrap();
    let first = signed_up.organization.clone();
    assert!(first.starts_with("organizations/"));
    assert_eq!(tokens.organization, first);
    let me = identity
        .me(authed(pb::MeRequest {}, &tokens.access_token))
        .await
        .unwrap()
        .into_inner();
    assert!(!me.organization_created);
    assert_eq!(me.memberships.len(), 1);
    assert_eq!(me.active_organization, first);
    (user, tokens)
}

/// Answers the organization Me made and an access token in it.
async fn a_user_with_no_organization_gets_one_from_me(
    rbac: &DirectoryStandIn,
    identity: &mut Identity,
    tokens: &pb::AuthTokens,
) -> (String, String) {
    rbac.state().members.clear();
    let me = identity
        .me(authed(pb::MeRequest {}, &tokens.access_token))
        .await
        .unwrap()
        .into_inner();
    assert!(me.organization_created);
    assert_eq!(me.memberships.len(), 1);
    assert_eq!(rbac.state().created.len(), 2);
    let first = me.memberships[0].organization.clone();
    // The same answer names it as the active organization: the session
    // works in it from now on, so a refresh gives tokens in it.
    assert_eq!(me.active_organization, first);
    let refreshed = identity
        .refresh(pb::RefreshRequest {
            refresh_token: tokens.refresh_token.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    assert_eq!(refreshed.organization, first);
    (first, refreshed.access_token)
}

/// Switches the session of `token` to `organization`: its new tokens.
async fn switch(identity: &mut Identity, token: &str, organization: &str) -> pb::AuthTokens {
    identity
        .switch_organization(authed(
            pb::SwitchOrganizationRequest {
                organization: organization.into(),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap()
}

#[tokio::test]
async fn signing_up_through_an_invitation_joins_the_inviting_organization() {
    let rbac = DirectoryStandIn::default();
    let sandbox = identity_with_directory(&rbac).await;
    let mut identity = Identity::new(sandbox.channel().await.unwrap());
    let org = tenantry_kit::id::new_id().to_string();
    rbac.state().invitations.insert(
        "invite-token".into(),
        (org.clone(), "guest@example.com".into()),
    );
    let request = |email: &str, token: &str| pb::SignUpRequest {
        email: email.into(),
        password: people::PASSWORD.into(),
        display_name: "Guest".into(),
        invitation_token: token.into(),
        ..Default::default()
    };

    // Another address, or an unknown token, is refused and writes nothing.
    let wrong_email = identity
        .sign_up(request("other@example.com", "invite-token"))
        .await
        .unwrap_err();
    assert_eq!(wrong_email.code(), Code::InvalidArgument);
    let unknown = identity
        .sign_up(request("guest@example.com", "no-such-token"))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
    let db = sandbox.database.connect().await.unwrap();
    let users: i64 = sqlx::Row::get(
        &sqlx::query("SELECT COUNT(*) FROM identity_users")
            .fetch_one(db.pool())
            .await
            .unwrap(),
        0,
    );
    assert_eq!(users, 0);
    db.close().await;

    let signed_up = identity
        .sign_up(request("Guest@Example.com", "invite-token"))
        .await
        .unwrap()
        .into_inner();
    let user = signed_up.user.unwrap();
    assert!(
        user.email_verified,
        "the invitation link proved the address"
    );
    assert_eq!(signed_up.organization, format!("organizations/{org}"));
    assert_eq!(
        signed_up.tokens.unwrap().organization,
        format!("organizations/{org}")
    );
    let id = user.name.trim_start_matches("users/").to_string();
    {
        let state = rbac.state();
        assert!(
            state.members.contains(&(id, org)),
            "accepted as the new user"
        );
        assert!(state.created.is_empty(), "no first organization of its own");
        assert!(state.invitations.is_empty(), "the invitation is used");
    }
    sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn team_keys_need_the_team_and_stop_when_the_creator_leaves_it() {
    let rbac = DirectoryStandIn::default();
    let sandbox = identity_with_directory(&rbac).await;
    let channel = sandbox.channel().await.unwrap();
    let mut keys = Keys::new(channel.clone());
    let org = tenantry_kit::id::new_id().to_string();
    let team = tenantry_kit::id::new_id().to_string();
    let lead = people::sign_up(&channel, "lead@example.com", NAME).await.0;
    let (creator, token) = (lead.id, lead.token);
    {
        let mut state = rbac.state();
        state.members.insert((creator.clone(), org.clone()));
        for permission in ["organization.api_keys.create", "project.read"] {
            state
                .grants
                .insert((creator.clone(), org.clone(), permission.to_string()));
        }
    }
    let team_key = |team: &str| {
        let mut request = create(&org, &["project.read"]);
        request.api_key.as_mut().unwrap().team = format!("organizations/{org}/teams/{team}");
        request
    };

    // Not in the team: the team is not found, nothing is created.
    let outside = keys
        .create_api_key(authed(team_key(&team), &token))
        .await
        .unwrap_err();
    assert_eq!(outside.code(), Code::NotFound);
    // A team of another organization is refused outright.
    let mut foreign = team_key(&team);
    foreign.api_key.as_mut().unwrap().team =
        format!("organizations/{}/teams/{team}", tenantry_kit::id::new_id());
    let foreign = keys
        .create_api_key(authed(foreign, &token))
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::InvalidArgument);

    rbac.state()
        .team_members
        .insert((org.clone(), team.clone(), creator.clone()));
    let created = keys
        .create_api_key(authed(team_key(&team), &token))
        .await
        .unwrap()
        .into_inner();
    let exchanged = keys
        .authenticate_api_key(pb::AuthenticateApiKeyRequest {
            secret: created.secret.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(exchanged.team, format!("organizations/{org}/teams/{team}"));

    // A second key, not yet cached, stops once the creator leaves the team.
    let second = keys
        .create_api_key(authed(team_key(&team), &token))
        .await
        .unwrap()
        .into_inner();
    rbac.state().team_members.clear();
    let refused = keys
        .authenticate_api_key(pb::AuthenticateApiKeyRequest {
            secret: second.secret,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    sandbox.shutdown().await.unwrap();
}
