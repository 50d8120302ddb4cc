//! Replicas answer from the caller's last write; a killed consumer holds
//! the others up for the ack wait only.

use super::*;

/// Two rbac replicas on one Postgres: a caller's write through one shows on
/// the other at once, with no token; a removal of access too, also to a
/// caller that presents the write's token.
#[tokio::test]
async fn every_replica_answers_from_the_callers_last_write() {
    if !storages().contains(&Storage::Postgres) {
        return;
    }
    let key = "66".repeat(32);
    let configured = key.clone();
    let sandbox = Sandbox::builder()
        .services(&[
            ServiceKind::Identity,
            ServiceKind::Organization,
            ServiceKind::Rbac,
        ])
        .storage(Storage::Postgres)
        .configure(move |config| config.internal_key = Some(configured))
        .start()
        .await
        .unwrap();
    let channel = sandbox.channel().await.unwrap();
    let first = format!("http://{}", sandbox.server.grpc_addr);
    let replica = tenantry_testkit::ServerProcess::start(
        env!("CARGO_BIN_EXE_tenantry-process"),
        "rbac",
        &[
            ("DATABASE_URL", sandbox.database.url.clone()),
            ("TENANTRY_INTERNAL_KEY", key),
            ("TENANTRY_PEERS__IDENTITY", first.clone()),
            ("TENANTRY_PEERS__ORGANIZATION", first),
        ],
    )
    .await
    .unwrap();
    let w = World { sandbox, channel };
    let other = tonic::transport::Endpoint::from_shared(replica.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let (ada, _) = w.sign_up("ada@example.com").await;
    let (bob, _) = w.sign_up("bob@example.com").await;
    for i in 0..ITERATIONS / 10 {
        let acme = w.organization(&ada, None).await;
        assert!(
            allowed(
                &other,
                &ada,
                ("organization", &acme),
                "project.create",
                None
            )
            .await,
            "{i}: the other replica denies the creator"
        );
        let project = w.project(&ada, &acme).await;
        assert!(
            allowed(&other, &ada, ("project", &project), "project.read", None).await,
            "{i}: the other replica denies the project's creator"
        );
    }

    // Removals: bob loses access through the first replica; the second
    // denies at once, asked by bob without a token and with the token.
    let acme = w.organization(&ada, None).await;
    let project = w.project(&ada, &acme).await;
    let add = || async {
        w.join(&ada, &acme, &bob).await;
        assert!(allowed(&other, &bob, ("project", &project), "project.read", None).await);
    };
    add().await;
    let removed = Members::new(w.channel.clone())
        .delete_membership(authed(
            rbac::DeleteMembershipRequest {
                name: format!("organizations/{acme}/memberships/{}", bob.id),
                etag: String::new(),
            },
            &ada.token,
        ))
        .await
        .unwrap();
    let token = removed.metadata().get(HEADER).unwrap().clone();
    assert!(!allowed(&other, &bob, ("project", &project), "project.read", None).await);
    assert!(
        !allowed(
            &other,
            &bob,
            ("project", &project),
            "project.read",
            Some(&token)
        )
        .await
    );

    add().await;
    let deleted = Projects::new(w.channel.clone())
        .delete_project(authed(
            org::DeleteProjectRequest {
                name: format!("organizations/{acme}/projects/{project}"),
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap();
    let token = deleted.metadata().get(HEADER).unwrap().clone();
    assert!(!allowed(&other, &bob, ("project", &project), "project.read", None).await);
    assert!(
        !allowed(
            &other,
            &bob,
            ("project", &project),
            "project.read",
            Some(&token)
        )
        .await
    );

    let deleted = Orgs::new(w.channel.clone())
        .delete_organization(authed(
            org::DeleteOrganizationRequest {
                name: format!("organizations/{acme}"),
                force: true,
                ..Default::default()
            },
            &ada.token,
        ))
        .await
        .unwrap();
    let token = deleted.metadata().get(HEADER).unwrap().clone();
    assert!(
        !allowed(
            &other,
            &bob,
            ("organization", &acme),
            "organization.read",
            None
        )
        .await
    );
    assert!(
        !allowed(
            &other,
            &bob,
            ("organization", &acme),
            "organization.read",
            Some(&token)
        )
        .await
    );
    drop(replica);
    w.sandbox.shutdown().await.unwrap();
}

/// Two audit processes share one durable consumer; one is killed (-9)
/// while events flow. The other takes over within `nats_ack_wait_ms`
/// (2 s), not the old half-minute: every event reaches the audit log.
#[tokio::test]
async fn a_killed_consumer_holds_the_others_up_for_the_ack_wait_only() {
    let (Some(_), Some(nats)) = (
        storages().contains(&Storage::Postgres).then_some(()),
        tenantry_testkit::nats_url(),
    ) else {
        return;
    };
    let key = "77".repeat(32);
    let configured = key.clone();
    let sandbox = Sandbox::builder()
        .services(&[
            ServiceKind::Identity,
            ServiceKind::Organization,
            ServiceKind::Rbac,
        ])
        .storage(Storage::Postgres)
        .bus(Bus::Nats(nats))
        .configure(move |config| config.internal_key = Some(configured))
        .start()
        .await
        .unwrap();
    let channel = sandbox.channel().await.unwrap();
    let first = format!("http://{}", sandbox.server.grpc_addr);
    let (url, namespace) = sandbox.nats().unwrap();
    let env = [
        ("DATABASE_URL", sandbox.database.url.clone()),
        ("NATS_URL", url.to_string()),
        ("TENANTRY_NATS_NAMESPACE", namespace.to_string()),
        ("TENANTRY_INTERNAL_KEY", key),
        ("TENANTRY_PEERS__IDENTITY", first.clone()),
        ("TENANTRY_PEERS__RBAC", first.clone()),
        ("TENANTRY_PEERS__ORGANIZATION", first),
    ];
    let binary = env!("CARGO_BIN_EXE_tenantry-process");
    let doomed = tenantry_testkit::ServerProcess::start(binary, "audit", &env)
        .await
        .unwrap();
    let survivor = tenantry_testkit::ServerProcess::start(binary, "audit", &env)
        .await
        .unwrap();
    let w = World { sandbox, channel };
    let (ada, _) = w.sign_up("ada@example.com").await;
    let acme = w.organization(&ada, None).await;
    // Events flowing while one consumer dies mid-stream.
    for _ in 0..20 {
        w.project(&ada, &acme).await;
    }
    doomed.kill();
    for _ in 0..20 {
        w.project(&ada, &acme).await;
    }
    let audit = tonic::transport::Endpoint::from_shared(survivor.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut seen = 0;
    // The audit log is fed by the bus: it may lag, by design. What must
    // not happen is a stall of the consumer's ack wait (30 s before).
    while started.elapsed() < std::time::Duration::from_secs(15) {
        seen = audit_projects(&audit, &ada, &acme).await;
        if seen == 40 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen, 40, "the surviving consumer did not take over");
    drop(survivor);
    w.sandbox.shutdown().await.unwrap();
}
