//! Replicas answer from the caller's last write; a killed consumer holds
//! the others up for the ack wait only.

use super::*;

/// Two rbac replicas on one Postgres: the in-process server and `other`,
/// a process of its own; Ada and Bob signed up.
struct Replicas {
    w: World,
    other: tonic::transport::Channel,
    _replica: tenantry_testkit::ServerProcess,
    ada: User,
    bob: User,
}

impl Replicas {
    async fn start() -> Replicas {
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
        let peers = [ServiceKind::Identity, ServiceKind::Organization];
        let environment = sandbox.environment_beside(Some(&key), &peers);
        let binary = env!("CARGO_BIN_EXE_tenantry-process");
        let replica = tenantry_testkit::ServerProcess::start(binary, "rbac", &environment);
        let replica = replica.await.unwrap();
        let w = World { sandbox, channel };
        let other = tonic::transport::Endpoint::from_shared(replica.url()).unwrap();
        let other = other.connect().await.unwrap();
        let (ada, _) = w.sign_up("ada@example.com").await;
        let (bob, _) = w.sign_up("bob@example.com").await;
        Replicas {
            w,
            other,
            _replica: replica,
            ada,
            bob,
        }
    }

    /// Bob joins Acme; the other replica lets him read the project at once.
    async fn bob_joins(&self, acme: &str, project: &str) {
        self.w.join(&self.ada, acme, &self.bob).await;
        let read = ("project", project);
        assert!(allowed(&self.other, &self.bob, read, "project.read", None).await);
    }

    /// The other replica denies Bob, asked without a token and with the
    /// token of the write that removed his access.
    async fn bob_is_denied(
        &self,
        object: (&str, &str),
        permission: &str,
        token: &tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    ) {
        let (other, bob) = (&self.other, &self.bob);
        assert!(!allowed(other, bob, object, permission, None).await);
        assert!(!allowed(other, bob, object, permission, Some(token)).await);
    }
}

/// A caller's write through one replica shows on the other at once, with
/// no token; a removal of access too, also to a caller that presents the
/// write's token.
#[tokio::test]
async fn every_replica_answers_from_the_callers_last_write() {
    if !storages().contains(&Storage::Postgres) {
        return;
    }
    let r = Replicas::start().await;
    creations_show_on_the_other_replica_at_once(&r).await;
    let acme = r.w.organization(&r.ada, None).await;
    let project = r.w.project(&r.ada, &acme).await;
    a_removed_member_is_denied_at_once(&r, &acme, &project).await;
    a_deleted_project_is_denied_at_once(&r, &acme, &project).await;
    a_deleted_organization_is_denied_at_once(&r, &acme).await;
    r.w.sandbox.shutdown().await.unwrap();
}

async fn creations_show_on_the_other_replica_at_once(r: &Replicas) {
    let (w, ada) = (&r.w, &r.ada);
    for i in 0..ITERATIONS / 10 {
        let acme = w.organization(ada, None).await;
        let create = ("organization", acme.as_str());
        assert!(
            allowed(&r.other, ada, create, "project.create", None).await,
            "{i}: the other replica denies the creator"
        );
        let project = w.project(ada, &acme).await;
        let read = ("project", project.as_str());
        assert!(
            allowed(&r.other, ada, read, "project.read", None).await,
            "{i}: the other replica denies the project's creator"
        );
    }
}

async fn a_removed_member_is_denied_at_once(r: &Replicas, acme: &str, project: &str) {
    r.bob_joins(acme, project).await;
    let request = rbac::DeleteMembershipRequest {
        name: format!("organizations/{acme}/memberships/{}", r.bob.id),
        etag: String::new(),
    };
    let mut members = Members::new(r.w.channel.clone());
    let removed = members.delete_membership(authed(request, &r.ada.token));
    let removed = removed.await.unwrap();
    let token = removed.metadata().get(HEADER).unwrap();
    r.bob_is_denied(("project", project), "project.read", token)
        .await;
}

async fn a_deleted_project_is_denied_at_once(r: &Replicas, acme: &str, project: &str) {
    r.bob_joins(acme, project).await;
    let request = org::DeleteProjectRequest {
        name: format!("organizations/{acme}/projects/{project}"),
        ..Default::default()
    };
    let mut projects = Projects::new(r.w.channel.clone());
    let deleted = projects.delete_project(authed(request, &r.ada.token));
    let deleted = deleted.await.unwrap();
    let token = deleted.metadata().get(HEADER).unwrap();
    r.bob_is_denied(("project", project), "project.read", token)
        .await;
}

async fn a_deleted_organization_is_denied_at_once(r: &Replicas, acme: &str) {
    let request = org::DeleteOrganizationRequest {
        name: format!("organizations/{acme}"),
        force: true,
        ..Default::default()
    };
    let mut organizations = Orgs::new(r.w.channel.clone());
    let deleted = organizations.delete_organization(authed(request, &r.ada.token));
    let deleted = deleted.await.unwrap();
    let token = deleted.metadata().get(HEADER).unwrap();
    r.bob_is_denied(("organization", acme), "organization.read", token)
        .await;
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
    let peers = [
        ServiceKind::Identity,
        ServiceKind::Rbac,
        ServiceKind::Organization,
    ];
    let env = sandbox.environment_beside(Some(&key), &peers);
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
