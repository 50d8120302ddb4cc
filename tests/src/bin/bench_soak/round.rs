//! One round of the closed loop: checks and bulk checks compared with the
//! reference.

use super::*;

pub(crate) fn check(
    user: &str,
    organization: &str,
    permission: &str,
) -> authz::CheckPermissionRequest {
    authz::CheckPermissionRequest {
        consistency: None,
        resource: Some(authz::ObjectReference {
            object_type: "organization".into(),
            object_id: organization.into(),
        }),
        permission: permission.into(),
        subject: Some(authz::SubjectReference {
            object: Some(authz::ObjectReference {
                object_type: "user".into(),
                object_id: user.into(),
            }),
            optional_relation: String::new(),
        }),
        with_tracing: false,
    }
}

/// A question the load asks: (organization index, user index, permission).
pub(crate) fn question(rng: &mut StdRng, world: &World) -> (u32, u32, &'static str) {
    let o = rng.random_range(0..world.organizations.len());
    // Half the questions are about members, so answers mix.
    let u = if rng.random_bool(0.5) {
        let members = world.roles.len() / world.organizations.len();
        (o + rng.random_range(0..members.max(1))) % world.users.len()
    } else {
        rng.random_range(0..world.users.len())
    };
    let permission = PERMISSIONS[rng.random_range(0..PERMISSIONS.len())];
    (o as u32, u as u32, permission)
}

/// One round: half the clients call `CheckPermission`, half
/// `CheckBulkPermissions` with 10 checks, for `duration`.
pub(crate) async fn load_round(
    channels: &[Channel],
    concurrency: usize,
    duration: Duration,
    world: &Arc<World>,
    tokens: &Arc<Vec<String>>,
    round: u32,
) -> anyhow::Result<Round> {
    let wrong = Arc::new(AtomicU64::new(0));
    let clients = |offset: usize| -> Vec<_> {
        (0..concurrency / 2)
            .map(|i| {
                authz::authorization_service_client::AuthorizationServiceClient::new(
                    channels[(i * 2 + offset) % channels.len()].clone(),
                )
            })
            .collect()
    };
    let single = {
        let (world, tokens, wrong) = (world.clone(), tokens.clone(), wrong.clone());
        closed_loop(clients(0), duration, move |mut client, task, n| {
            let mut rng = StdRng::seed_from_u64(seed(round, task, n, 0));
            let (o, u, permission) = question(&mut rng, &world);
            let request = authed(
                check(
                    &world.users[u as usize],
                    &world.organizations[o as usize],
                    permission,
                ),
                &tokens[o as usize],
            );
            let want = expected(world.roles.get(&(o, u)).copied(), permission);
            let wrong = wrong.clone();
            async move {
                let answer = client.check_permission(request).await?.into_inner();
                if (answer.permissionship() == authz::Permissionship::Allowed) != want {
                    wrong.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
        })
    };
    let bulk = {
        let (world, tokens, wrong) = (world.clone(), tokens.clone(), wrong.clone());
        closed_loop(clients(1), duration, move |mut client, task, n| {
            let mut rng = StdRng::seed_from_u64(seed(round, task, n, 1));
            // One organization per call: the token is for it.
            let (o, _, _) = question(&mut rng, &world);
            let mut wants = Vec::with_capacity(10);
            let items = (0..10)
                .map(|_| {
                    let (_, u, permission) = question(&mut rng, &world);
                    wants.push(expected(world.roles.get(&(o, u)).copied(), permission));
                    let single = check(
                        &world.users[u as usize],
                        &world.organizations[o as usize],
                        permission,
                    );
                    authz::CheckBulkPermissionsRequestItem {
                        resource: single.resource,
                        permission: single.permission,
                        subject: single.subject,
                    }
                })
                .collect();
            let request = authed(
                authz::CheckBulkPermissionsRequest {
                    consistency: None,
                    items,
                },
                &tokens[o as usize],
            );
            let wrong = wrong.clone();
            async move {
                let pairs = client
                    .check_bulk_permissions(request)
                    .await?
                    .into_inner()
                    .pairs;
                anyhow::ensure!(pairs.len() == wants.len(), "short bulk answer");
                for (pair, want) in pairs.iter().zip(wants) {
                    let allowed = matches!(
                        &pair.response,
                        Some(authz::check_bulk_permissions_pair::Response::Item(item))
                            if item.permissionship() == authz::Permissionship::Allowed
                    );
                    if allowed != want {
                        wrong.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(())
            }
        })
    };
    let (single, bulk) = tokio::try_join!(single, bulk)?;
    Ok(Round {
        single,
        bulk,
        wrong: wrong.load(Ordering::Relaxed),
        rss: 0,
    })
}

pub(crate) fn seed(round: u32, task: usize, n: u64, kind: u64) -> u64 {
    (u64::from(round) << 48) ^ ((task as u64) << 32) ^ (n << 1) ^ kind
}
