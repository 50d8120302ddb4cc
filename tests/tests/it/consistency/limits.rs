//! Limits hold exactly, sequentially, concurrently and across replicas.

use super::*;

type Entitlements = billing::entitlement_service_client::EntitlementServiceClient<Channel>;
type Keys = tenantry_testkit::clients::Keys;

/// A sandbox with billing whose FREE plan limits nothing, so that the
/// limits under test are the ones the test sets.
async fn billing_world(
    storage: Storage,
    bus: Bus,
    internal_key: &str,
) -> (World, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("plans.toml");
    std::fs::write(
        &catalog,
        "[plans.free]\ndisplay_name = \"Free\"\ncurrency_code = \"USD\"\n",
    )
    .unwrap();
    let key = internal_key.to_string();
    let sandbox = Sandbox::builder()
        .services(&[
            ServiceKind::Identity,
            ServiceKind::Organization,
            ServiceKind::Rbac,
            ServiceKind::Billing,
        ])
        .storage(storage)
        .bus(bus)
        .configure(move |config| {
            config.billing.catalog_file = Some(catalog);
            config.internal_key = Some(key);
        })
        .start()
        .await
        .unwrap();
    let channel = sandbox.channel().await.unwrap();
    (World { sandbox, channel }, dir)
}

impl World {
    async fn set_limit(
        &self,
        owner: &User,
        organization: &str,
        metric: billing::Metric,
        value: i64,
    ) {
        Entitlements::new(self.channel.clone())
            .set_limit(authed(
                billing::SetLimitRequest {
                    organization: format!("organizations/{organization}"),
                    metric: metric as i32,
                    value,
                },
                &owner.token,
            ))
            .await
            .unwrap();
    }

    /// Creates one of `metric` under `organization` through `channel`: its
    /// name, or `None` when the limit refused it.
    async fn create_one(
        channel: &Channel,
        owner: &User,
        organization: &str,
        metric: billing::Metric,
        member: Option<&User>,
    ) -> Option<String> {
        let refused = |status: tonic::Status| {
            assert_eq!(
                status.code(),
                tonic::Code::ResourceExhausted,
                "only the limit may refuse: {status:?}"
            );
            None
        };
        let parent = format!("organizations/{organization}");
        match metric {
            billing::Metric::Projects => Projects::new(channel.clone())
                .create_project(authed(
                    org::CreateProjectRequest {
                        parent,
                        project: Some(org::Project {
                            display_name: "P".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    &owner.token,
                ))
                .await
                .map_or_else(refused, |r| {
                    Some(r.into_inner().project.unwrap_or_default().name)
                }),
            billing::Metric::SubOrganizations => Orgs::new(channel.clone())
                .create_organization(authed(
                    org::CreateOrganizationRequest {
                        organization: Some(org::Organization {
                            display_name: "Child".into(),
                            parent,
                            ..Default::default()
                        }),
                        request_id: String::new(),
                        ..Default::default()
                    },
                    &owner.token,
                ))
                .await
                .map_or_else(refused, |r| {
                    Some(r.into_inner().organization.unwrap_or_default().name)
                }),
            // A pending invitation takes its seat.
            billing::Metric::Members => Invitations::new(channel.clone())
                .create_invitation(authed(
                    rbac::CreateInvitationRequest {
                        parent,
                        invitation: Some(rbac::Invitation {
                            email: member.unwrap().email.clone(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    &owner.token,
                ))
                .await
                .map_or_else(refused, |r| {
                    Some(r.into_inner().invitation.unwrap_or_default().name)
                }),
            billing::Metric::ApiKeys => Keys::new(channel.clone())
                .create_api_key(authed(
                    identity_pb::CreateApiKeyRequest {
                        parent,
                        api_key: Some(identity_pb::ApiKey {
                            display_name: "K".into(),
                            permissions: vec!["project.read".into()],
                            ..Default::default()
                        }),
                        request_id: String::new(),
                    },
                    &owner.token,
                ))
                .await
                .map_or_else(refused, |r| {
                    Some(r.into_inner().api_key.unwrap_or_default().name)
                }),
            _ => unreachable!("not a metric under test"),
        }
    }

    /// Removes what [`create_one`](Self::create_one) made, through
    /// `channel`: deletes the project or organization, revokes the
    /// invitation or key.
    async fn remove_one(channel: &Channel, owner: &User, metric: billing::Metric, name: &str) {
        let name = name.to_string();
        let token = &owner.token;
        match metric {
            billing::Metric::Projects => {
                let request = org::DeleteProjectRequest {
                    name,
                    etag: String::new(),
                };
                Projects::new(channel.clone())
                    .delete_project(authed(request, token))
                    .await
                    .map(drop)
            }
            billing::Metric::SubOrganizations => {
                let request = org::DeleteOrganizationRequest {
                    name,
                    ..Default::default()
                };
                Orgs::new(channel.clone())
                    .delete_organization(authed(request, token))
                    .await
                    .map(drop)
            }
            billing::Metric::Members => {
                let request = rbac::RevokeInvitationRequest {
                    name,
                    etag: String::new(),
                };
                Invitations::new(channel.clone())
                    .revoke_invitation(authed(request, token))
                    .await
                    .map(drop)
            }
            billing::Metric::ApiKeys => {
                let request = identity_pb::RevokeApiKeyRequest { name };
                Keys::new(channel.clone())
                    .revoke_api_key(authed(request, token))
                    .await
                    .map(drop)
            }
            _ => unreachable!("not a metric under test"),
        }
        .unwrap_or_else(|status| panic!("removing {metric:?}: {status:?}"));
    }

    /// What billing counts of `metric` at `organization`, as `GetUsage`
    /// answers it through `channel`.
    async fn used(
        channel: &Channel,
        owner: &User,
        organization: &str,
        metric: billing::Metric,
    ) -> i64 {
        tenantry_testkit::usage::own_usage(channel, &owner.token, organization, metric).await
    }
}

/// At a limit of 3, what one write removes is free for the caller's very
/// next create: a deleted project, organization, revoked invitation or
/// key gives its unit back before the removal answers — through the same
/// process or, on `channels[1]`, another one — and usage says so at once.
async fn a_removal_frees_its_unit_at_once(w: &World, channels: &[Channel], what: &str) {
    let (ada, root) = w.sign_up(&format!("ada-{what}@example.com")).await;
    let mut people = Vec::new();
    for i in 0..12 {
        people.push(w.sign_up(&format!("q{i}-{what}@example.com")).await.0);
    }
    for metric in [
        billing::Metric::Projects,
        billing::Metric::SubOrganizations,
        billing::Metric::Members,
        billing::Metric::ApiKeys,
    ] {
        let organization = w.organization(&ada, Some(&root)).await;
        w.set_limit(&ada, &organization, metric, 3).await;
        // The owner holds a seat already.
        let room = if metric == billing::Metric::Members {
            2
        } else {
            3
        };
        let mut people = people.iter();
        let mut live = Vec::new();
        for _ in 0..room {
            let made = World::create_one(&channels[0], &ada, &organization, metric, people.next());
            live.push(made.await.expect("room under the limit"));
        }
        let over = World::create_one(&channels[0], &ada, &organization, metric, people.next());
        assert!(over.await.is_none(), "{what}: {metric:?} over the limit");
        // The other process serves organizations (and billing) only.
        let remover = match metric {
            billing::Metric::Projects | billing::Metric::SubOrganizations => {
                channels.last().unwrap()
            }
            _ => &channels[0],
        };
        for round in 0..8 {
            World::remove_one(remover, &ada, metric, &live.remove(0)).await;
            let used = World::used(&channels[0], &ada, &organization, metric).await;
            assert_eq!(
                used,
                room - 1 + (metric == billing::Metric::Members) as i64,
                "{what}: {metric:?} usage after removal {round}"
            );
            let again = World::create_one(&channels[0], &ada, &organization, metric, people.next());
            let again = again.await;
            assert!(
                again.is_some(),
                "{what}: {metric:?} refused right after removal {round}"
            );
            live.extend(again);
        }
    }
}

/// How many of `attempts` creates succeed against `limit`, made by
/// `workers` concurrent clients spread over `channels`.
async fn creates_allowed(
    channels: &[Channel],
    owner: &User,
    organization: &str,
    metric: billing::Metric,
    members: &[User],
    attempts: usize,
    workers: usize,
) -> usize {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = (0..workers).map(|w| {
        let channel = &channels[w % channels.len()];
        let next = &next;
        async move {
            let mut allowed = 0;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= attempts {
                    return allowed;
                }
                let member = members.get(i);
                let made = World::create_one(channel, owner, organization, metric, member).await;
                if made.is_some() {
                    allowed += 1;
                }
            }
        }
    });
    futures::future::join_all(work).await.into_iter().sum()
}

/// A limit of N lets exactly N in: one client creating one after another,
/// and eight clients at once.
#[tokio::test]
async fn limits_hold_exactly_for_sequential_and_concurrent_creates() {
    for storage in storages() {
        let (w, _dir) = billing_world(storage, Bus::Local, &"44".repeat(32)).await;
        let (ada, root) = w.sign_up("ada@example.com").await;
        let mut people = Vec::new();
        for i in 0..40 {
            people.push(w.sign_up(&format!("p{i}@example.com")).await.0);
        }
        let channels = [w.channel.clone()];
        for metric in [
            billing::Metric::Projects,
            billing::Metric::SubOrganizations,
            billing::Metric::Members,
        ] {
            for (limit, attempts, workers) in [(3, 200, 1), (10, 40, 8)] {
                let organization = w.organization(&ada, Some(&root)).await;
                w.set_limit(&ada, &organization, metric, limit).await;
                // The owner holds a seat already.
                let room = if metric == billing::Metric::Members {
                    limit - 1
                } else {
                    limit
                };
                let attempts = if metric == billing::Metric::Members {
                    attempts.min(people.len())
                } else {
                    attempts
                };
                let allowed = creates_allowed(
                    &channels,
                    &ada,
                    &organization,
                    metric,
                    &people,
                    attempts,
                    workers,
                )
                .await;
                assert_eq!(
                    allowed as i64, room,
                    "{storage:?}: {metric:?} limit {limit} with {workers} client(s)"
                );
            }
        }
        a_removal_frees_its_unit_at_once(&w, &channels, &format!("{storage:?}")).await;
        w.sandbox.shutdown().await.unwrap();
    }
}

/// Creates through two organization and billing processes on one Postgres
/// and one NATS stream still stop at the limit.
#[tokio::test]
async fn limits_hold_across_replicas() {
    let (Some(_), Some(nats)) = (
        storages().contains(&Storage::Postgres).then_some(()),
        tenantry_testkit::nats_url(),
    ) else {
        return;
    };
    let key = "55".repeat(32);
    let (w, dir) = billing_world(Storage::Postgres, Bus::Nats(nats), &key).await;
    let peers = [ServiceKind::Identity, ServiceKind::Rbac];
    let mut environment = w.sandbox.environment_beside(Some(&key), &peers);
    let catalog = dir.path().join("plans.toml").display().to_string();
    environment.push(("TENANTRY_BILLING__CATALOG_FILE", catalog));
    let binary = env!("CARGO_BIN_EXE_tenantry-process");
    let replica =
        tenantry_testkit::ServerProcess::start(binary, "organization,billing", &environment);
    let replica = replica.await.unwrap();
    let other = tonic::transport::Endpoint::from_shared(replica.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let (ada, root) = w.sign_up("ada@example.com").await;
    let channels = [w.channel.clone(), other];
    for metric in [billing::Metric::Projects, billing::Metric::SubOrganizations] {
        for limit in [3, 10] {
            let organization = w.organization(&ada, Some(&root)).await;
            w.set_limit(&ada, &organization, metric, limit).await;
            let allowed = creates_allowed(&channels, &ada, &organization, metric, &[], 40, 8).await;
            assert_eq!(
                allowed as i64, limit,
                "{metric:?} limit {limit} across two replicas"
            );
        }
    }
    a_removal_frees_its_unit_at_once(&w, &channels, "replicas").await;
    drop(replica);
    w.sandbox.shutdown().await.unwrap();
}
