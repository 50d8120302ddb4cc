//! Every caller reads their own writes; removed access is gone at once.

use super::*;

#[tokio::test]
async fn every_caller_reads_their_own_writes() {
    for storage in storages() {
        let w = World::start(storage, Bus::Local).await;

        // SignUp → Me and a check on the organization it created.
        for i in 0..ITERATIONS / 10 {
            let (user, organization) = w.sign_up(&format!("u{i}@example.com")).await;
            assert!(
                w.allowed(&user, ("organization", &organization), "project.create")
                    .await,
                "{storage:?}: sign-up {i}: the owner is denied on their organization"
            );
            let me = Identity::new(w.channel.clone())
                .me(authed(identity_pb::MeRequest::default(), &user.token))
                .await
                .unwrap()
                .into_inner();
            assert!(
                me.memberships
                    .iter()
                    .any(|m| m.organization == format!("organizations/{organization}")),
                "{storage:?}: sign-up {i}: Me misses the new membership"
            );
        }

        let (ada, _) = w.sign_up("ada@example.com").await;
        let (bob, _) = w.sign_up("bob@example.com").await;
        for i in 0..ITERATIONS {
            // CreateOrganization → a check and a create under it.
            let acme = w.organization(&ada, None).await;
            assert!(
                w.allowed(&ada, ("organization", &acme), "project.create")
                    .await,
                "{storage:?}: {i}: the creator is denied on a new organization"
            );
            // CreateOrganization(parent) → CreateOrganization(child).
            let child = w.organization(&ada, Some(&acme)).await;
            // CreateProject → ListProjectGrants and a check.
            let project = w.project(&ada, &child).await;
            Grants::new(w.channel.clone())
                .list_project_grants(authed(
                    rbac::ListProjectGrantsRequest {
                        parent: format!("organizations/{child}/projects/{project}"),
                        ..Default::default()
                    },
                    &ada.token,
                ))
                .await
                .unwrap_or_else(|e| panic!("{storage:?}: {i}: ListProjectGrants: {e:?}"));
            assert!(
                w.allowed(&ada, ("project", &project), "project.read").await,
                "{storage:?}: {i}: the creator is denied on a new project"
            );
            // Joining (an invitation accepted) → the new member's own check.
            if i % 10 == 0 {
                w.join(&ada, &acme, &bob).await;
                assert!(
                    w.allowed(&bob, ("project", &project), "project.read").await,
                    "{storage:?}: {i}: a new member is denied"
                );
            }
        }
        w.sandbox.shutdown().await.unwrap();
    }
}

/// Removing access is reflected by the next check, for the writer and for
/// anyone else, with no token; also while the bus is down.
#[tokio::test]
async fn removed_access_is_gone_at_once_even_with_the_bus_stopped() {
    let mut nats = NatsServer::start().await.unwrap();
    let w = World::start(Storage::Sqlite, Bus::Nats(nats.url())).await;
    let (ada, _) = w.sign_up("ada@example.com").await;
    let (bob, _) = w.sign_up("bob@example.com").await;
    let acme = w.organization(&ada, None).await;
    let team_org = w.organization(&ada, Some(&acme)).await;
    let project = w.project(&ada, &team_org).await;
    w.join(&ada, &acme, &bob).await;
    assert!(w.allowed(&bob, ("project", &project), "project.read").await);

    nats.stop();
    // A deleted project: nobody reads it any more.
    w.delete_project(&ada, &team_org, &project).await;
    assert!(!w.allowed(&bob, ("project", &project), "project.read").await);
    assert!(!w.allowed(&ada, ("project", &project), "project.read").await);
    // A deleted organization: its subtree goes with it.
    Orgs::new(w.channel.clone())
        .delete_organization(authed(
            org::DeleteOrganizationRequest {
                name: format!("organizations/{team_org}"),
                force: true,
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap();
    assert!(
        !w.allowed(&bob, ("organization", &team_org), "organization.read")
            .await
    );
    assert!(
        w.allowed(&bob, ("organization", &acme), "organization.read")
            .await
    );
    nats.resume().await.unwrap();
    w.sandbox.shutdown().await.unwrap();
}

/// A new root organization's FREE subscription is read at once, even with
/// the bus stopped: billing starts a root on FREE when it first learns of
/// it, by the event or by the first request about it, whichever comes
/// first.
#[tokio::test]
async fn a_new_organizations_subscription_is_there_at_once_even_with_the_bus_stopped() {
    let mut nats = NatsServer::start().await.unwrap();
    let sandbox = Sandbox::builder()
        .bus(Bus::Nats(nats.url()))
        .start()
        .await
        .unwrap();
    let channel = sandbox.channel().await.unwrap();
    let (ada, _) = people::sign_up(&channel, "ada@example.com", "Ada").await;
    nats.stop();
    let acme = Orgs::new(channel.clone())
        .create_organization(authed(
            org::CreateOrganizationRequest {
                organization: Some(org::Organization {
                    display_name: "Acme".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap()
        .name;
    let subscription = Subscriptions::new(channel.clone())
        .get_subscription(authed(
            billing::GetSubscriptionRequest {
                name: format!("{acme}/subscription"),
            },
            &ada.token,
        ))
        .await
        .expect("the subscription of a new organization is there")
        .into_inner()
        .subscription
        .unwrap();
    assert_eq!(subscription.plan, "plans/free");
    nats.resume().await.unwrap();
    sandbox.shutdown().await.unwrap();
}

/// Writes also read (their organization, the caller's grants) before they
/// commit. With one reading and one writing connection for the whole
/// server — every service, its relays and its consumers — writes still
/// never wait on one another: a writer waits its turn holding nothing, and
/// reads beside its own transaction. (On SQLite one connection writes at a
/// time in any case.)
#[tokio::test]
async fn writes_that_read_as_they_write_never_wait_on_each_other() {
    for storage in storages() {
        writes_never_wait_on_each_other(storage).await;
    }
}

async fn writes_never_wait_on_each_other(storage: Storage) {
    let sandbox = Sandbox::builder()
        .storage(storage)
        .configure(|config| {
            config.database.max_connections = 1;
            config.database.acquire_timeout_secs = 2;
        })
        .start()
        .await
        .unwrap();
    let channel = sandbox.channel().await.unwrap();
    let w = World { sandbox, channel };
    let (ada, _) = w.sign_up("ada@example.com").await;
    let (bob, _) = w.sign_up("bob@example.com").await;
    let acme = w.organization(&ada, None).await;
    let team_org = w.organization(&ada, Some(&acme)).await;
    w.join(&ada, &acme, &bob).await;
    // Many writers at once, on every service's tables: sign-ups (an
    // account, an organization, its project, its owner, its plan) beside
    // projects (within the free plan's limit).
    let emails: Vec<_> = (0..6).map(|i| format!("u{i}@example.com")).collect();
    let (signed_up, projects) = tokio::join!(
        futures::future::join_all(emails.iter().map(|email| w.sign_up(email))),
        futures::future::join_all((0..2).map(|_| w.project(&ada, &team_org))),
    );
    for (user, organization) in &signed_up {
        assert!(
            w.allowed(user, ("organization", organization), "project.create")
                .await
        );
    }
    for project in &projects {
        w.delete_project(&ada, &team_org, project).await;
        assert!(!w.allowed(&bob, ("project", project), "project.read").await);
    }
    assert!(
        w.allowed(&bob, ("organization", &acme), "organization.read")
            .await
    );
    w.sandbox.shutdown().await.unwrap();
}
