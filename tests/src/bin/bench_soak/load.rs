//! Loading the world through the public API: users, organizations,
//! memberships and a service account, with retries while the server starts.

use super::*;

/// Signs the users up, waits until each organization is in the index,
/// brings the members in by invitation, and creates the service account.
pub(crate) async fn load(
    server: &ServerProcess,
    channel: &Channel,
    users: usize,
    members: usize,
) -> anyhow::Result<World> {
    let identity_client =
        identity::identity_service_client::IdentityServiceClient::new(channel.clone());
    let signed_up: Vec<(String, String, String)> = futures::stream::iter(0..users)
        .map(|i| {
            let mut client = identity_client.clone();
            async move {
                let response = client
                    .sign_up(identity::SignUpRequest {
                        email: format!("soak-{i}@example.com"),
                        password: "correct horse battery staple".into(),
                        display_name: format!("Soak {i}"),
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                let user = response.user.unwrap_or_default().name;
                let organization = response.organization;
                let token = response.tokens.unwrap_or_default().access_token;
                anyhow::Ok((
                    strip(&user, "users/"),
                    strip(&organization, "organizations/"),
                    token,
                ))
            }
        })
        .buffered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;

    // Each organization gets `members - 1` more members: the next users
    // in sign-up order, with a mix of roles.
    let mut rng = StdRng::seed_from_u64(23);
    let mut roles = HashMap::new();
    let mut plan = Vec::new();
    for o in 0..users {
        roles.insert((o as u32, o as u32), Role::Owner);
        for k in 1..members {
            let u = (o + k) % users;
            let role = match rng.random_range(0..20) {
                0..=11 => Role::Member,
                12..=16 => Role::Admin,
                _ => Role::Finance,
            };
            roles.insert((o as u32, u as u32), role);
            plan.push((o, u, role));
        }
    }
    let owners: Vec<_> = signed_up
        .iter()
        .map(|(u, o, t)| (u.clone(), o.clone(), t.clone()))
        .collect();
    futures::stream::iter(owners.iter())
        .map(|(user, organization, token)| wait_known(channel, user, organization, token))
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    // People join by invitation: each address verified, every invitation
    // made, then each accepted by its invitee (the mails read in one pass).
    let verifications = server.mails("verify_email");
    futures::stream::iter(verifications)
        .map(|(_, token)| {
            let client = identity_client.clone();
            async move {
                retry_unavailable(|| {
                    let mut client = client.clone();
                    let token = token.clone();
                    async move {
                        client
                            .verify_email(identity::VerifyEmailRequest { token })
                            .await
                    }
                })
                .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    let invitations =
        rbac::invitation_service_client::InvitationServiceClient::new(channel.clone());
    futures::stream::iter(plan)
        .map(|(o, u, role)| {
            let client = invitations.clone();
            let (_, organization, token) = &signed_up[o];
            let message = rbac::CreateInvitationRequest {
                parent: format!("organizations/{organization}"),
                invitation: Some(rbac::Invitation {
                    email: format!("soak-{u}@example.com"),
                    roles: vec![role.name().into()],
                    ..Default::default()
                }),
                // A retry replays instead of inviting twice.
                request_id: tenantry_kit::id::new_id().to_string(),
                ..Default::default()
            };
            async move {
                retry_unavailable(|| {
                    let mut client = client.clone();
                    let request = authed(message.clone(), token);
                    async move { client.create_invitation(request).await }
                })
                .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    let invitees: HashMap<String, &str> = signed_up
        .iter()
        .enumerate()
        .map(|(i, (_, _, token))| (format!("soak-{i}@example.com"), token.as_str()))
        .collect();
    futures::stream::iter(server.mails("invitation"))
        .map(|(to, token)| {
            let client = invitations.clone();
            let bearer = invitees.get(&to).copied().unwrap_or_default();
            async move {
                retry_unavailable(|| {
                    let mut client = client.clone();
                    let request = authed(
                        rbac::AcceptInvitationRequest {
                            token: token.clone(),
                        },
                        bearer,
                    );
                    async move { client.accept_invitation(request).await }
                })
                .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;

    let admin = identity_client
        .clone()
        .sign_up(identity::SignUpRequest {
            email: "soak-admin@example.com".into(),
            password: "correct horse battery staple".into(),
            display_name: "Soak admin".into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .tokens
        .unwrap_or_default()
        .access_token;
    let mut accounts =
        identity::service_account_service_client::ServiceAccountServiceClient::new(channel.clone());
    let account = accounts
        .create_service_account(authed(
            identity::CreateServiceAccountRequest {
                service_account: Some(identity::ServiceAccount {
                    display_name: "soak-checker".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &admin,
        ))
        .await?
        .into_inner()
        .service_account
        .unwrap_or_default();
    let credential = accounts
        .create_service_account_credential(authed(
            identity::CreateServiceAccountCredentialRequest {
                parent: account.name,
                credential: Some(identity::ServiceAccountCredential::default()),
                request_id: String::new(),
            },
            &admin,
        ))
        .await?
        .into_inner();
    let client_id = credential.credential.unwrap_or_default().client_id;
    Ok(World {
        users: signed_up.iter().map(|(u, _, _)| u.clone()).collect(),
        organizations: signed_up.into_iter().map(|(_, o, _)| o).collect(),
        roles,
        service_account: (client_id, credential.client_secret),
    })
}

/// Calls `call` until it answers something other than UNAVAILABLE (at most
/// five times, backing off), as a gRPC client is expected to: UNAVAILABLE
/// says the call changed nothing and may be retried.
pub(crate) async fn retry_unavailable<T, F, Fut>(mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let mut delay = Duration::from_millis(50);
    for _ in 0..4 {
        match call().await {
            Err(status) if status.code() == tonic::Code::Unavailable => {
                RETRIED.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            result => return result.map(tonic::Response::into_inner),
        }
    }
    call().await.map(tonic::Response::into_inner)
}

pub(crate) fn strip(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_string()
}

/// Waits until the owner may manage the members of their new organization:
/// an organization reaches the authorization index through its event.
pub(crate) async fn wait_known(
    channel: &Channel,
    user: &str,
    organization: &str,
    token: &str,
) -> anyhow::Result<()> {
    let mut client =
        authz::authorization_service_client::AuthorizationServiceClient::new(channel.clone());
    for _ in 0..400 {
        let answer = client
            .check_permission(authed(
                check(user, organization, "organization.members.manage"),
                token,
            ))
            .await?
            .into_inner();
        if answer.permissionship() == authz::Permissionship::Allowed {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    anyhow::bail!("organization {organization} never reached the index")
}

/// A fresh service-account token for every organization: what a caller
/// that renews its tokens does.
pub(crate) async fn issue_tokens(channel: &Channel, world: &World) -> anyhow::Result<Vec<String>> {
    let client =
        identity::service_account_service_client::ServiceAccountServiceClient::new(channel.clone());
    let (client_id, secret) = &world.service_account;
    futures::stream::iter(world.organizations.iter())
        .map(|organization| {
            let mut client = client.clone();
            let request = identity::IssueServiceAccountTokenRequest {
                client_id: client_id.clone(),
                client_secret: secret.clone(),
                organization: format!("organizations/{organization}"),
            };
            async move {
                anyhow::Ok(
                    client
                        .issue_service_account_token(request)
                        .await?
                        .into_inner()
                        .access_token,
                )
            }
        })
        .buffered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}
