//! The hash chain, signed checkpoints and retention; nothing lost or
//! doubled through outages.

use super::*;

/// Acme, Ada's, with three projects in its log.
struct Acme {
    w: World,
    ada: User,
    acme: String,
}

impl Acme {
    async fn start(storage: Storage) -> Acme {
        let w = World::start(builder(storage)).await;
        let ada = w.user("ada@example.com").await;
        let acme = w.organization(&ada, "Acme").await;
        for name in ["a", "b", "c"] {
            w.project(&ada, &acme, name).await;
        }
        // The log reads its writers' writes: no waiting.
        let events = w
            .list(
                &ada,
                &format!("organizations/{acme}"),
                Some(pb::AuditEventFilter {
                    action: "project.created".into(),
                    ..Default::default()
                }),
                10,
                "",
            )
            .await
            .expect("the log");
        assert_eq!(events.audit_events.len(), 3, "three projects in the log");
        Acme { w, ada, acme }
    }
}

#[tokio::test]
async fn an_edited_row_breaks_the_chain_checkpoints_are_signed_and_retention_keeps_it_verifiable() {
    for storage in storages() {
        let a = Acme::start(storage).await;
        a_signed_checkpoint_of_the_head_verifies(&a).await;
        let db = an_edited_row_breaks_the_chain_where_it_is(&a).await;
        retention_keeps_what_is_left_verifiable(&a, db).await;
        a.w.sandbox.shutdown().await.unwrap();
    }
}

async fn a_signed_checkpoint_of_the_head_verifies(a: &Acme) {
    let Acme { w, ada, acme } = a;
    // A signed checkpoint of the head, verifiable by anyone with it.
    let checkpoint = eventually("a checkpoint", || async {
        w.audit()
            .list_audit_checkpoints(authed(
                pb::ListAuditCheckpointsRequest {
                    parent: format!("organizations/{acme}"),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .ok()?
            .into_inner()
            .audit_checkpoints
            .into_iter()
            .next()
    })
    .await;
    let key =
        ed25519_dalek::VerifyingKey::from_bytes(&checkpoint.public_key.clone().try_into().unwrap())
            .unwrap();
    let signature = ed25519_dalek::Signature::from_slice(&checkpoint.signature).unwrap();
    key.verify(&checkpoint.signed_payload, &signature).unwrap();
    let payload = String::from_utf8(checkpoint.signed_payload.clone()).unwrap();
    assert!(payload.starts_with(&format!(
        "tenantry-audit-checkpoint-v1\n{acme}\n{}\n{}\n",
        checkpoint.sequence,
        hex::encode(&checkpoint.head_hash)
    )));
    let fetched = w
        .audit()
        .get_audit_checkpoint(authed(
            pb::GetAuditCheckpointRequest {
                name: checkpoint.name.clone(),
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .audit_checkpoint
        .unwrap();
    assert_eq!(fetched, checkpoint);
}

async fn an_edited_row_breaks_the_chain_where_it_is(a: &Acme) -> tenantry_kit::db::Database {
    let Acme { w, ada, acme } = a;
    // Edit one row behind the service's back: VerifyChain names it.
    let db = w.sandbox.database.connect_as_operator().await.unwrap();
    sqlx::query("UPDATE audit_events SET actor_name = 'Mallory' WHERE scope = $1 AND sequence = 3")
        .bind(acme)
        .execute(db.writer())
        .await
        .unwrap();
    let broken = w.verify(ada, acme).await;
    assert!(!broken.ok);
    assert_eq!(broken.broken_sequence, 3);
    assert_eq!(
        broken.reason,
        pb::verify_chain_response::Reason::HashMismatch as i32
    );
    assert!(
        broken
            .broken_audit_event
            .starts_with(&format!("organizations/{acme}/auditEvents/"))
    );
    let before = w
        .audit()
        .verify_chain(authed(
            pb::VerifyChainRequest {
                organization: format!("organizations/{acme}"),
                start_sequence: 1,
                end_sequence: 2,
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(before.ok && before.verified_count == 2);
    let bad = w
        .audit()
        .verify_chain(authed(
            pb::VerifyChainRequest {
                organization: format!("organizations/{acme}"),
                start_sequence: 5,
                end_sequence: 2,
            },
            &ada.token,
        ))
        .await;
    assert_eq!(bad.unwrap_err().code(), Code::InvalidArgument);
    db
}

async fn retention_keeps_what_is_left_verifiable(a: &Acme, db: tenantry_kit::db::Database) {
    let Acme { w, ada, acme } = a;
    // Retention by plan (FREE: 7 days): events "ingested" 30 days ago
    // are purged, a checkpoint marks the cut, and what is left verifies.
    sqlx::query("UPDATE audit_events SET ingested_at_us = ingested_at_us - 2592000000000 WHERE scope = $1 AND sequence <= 3")
            .bind(acme)
            .execute(db.writer())
            .await
            .unwrap();
    // The retention job runs by itself: wait for its cut, which enters the
    // chain together with the log's statement of it.
    let (cut, events) = eventually("the retention cut", || async {
        let cut = w
            .audit()
            .list_audit_checkpoints(authed(
                pb::ListAuditCheckpointsRequest {
                    parent: format!("organizations/{acme}"),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .ok()?
            .into_inner()
            .audit_checkpoints
            .into_iter()
            .find(|c| c.retention_cut)?;
        let events = w
            .list(ada, &format!("organizations/{acme}"), None, 1000, "")
            .await
            .ok()?
            .audit_events;
        Some((cut, events))
    })
    .await;
    assert_eq!(cut.sequence, 3);
    assert!(
        events.iter().any(|e| e.action == "audit.events.purged"),
        "the cut's statement is in the chain with the cut"
    );
    let rest = w.verify(ada, acme).await;
    assert!(rest.ok, "{rest:?}");
    assert_eq!(rest.start_sequence, 4);
}

/// The services that write what audit ingests.
const WRITERS: [ServiceKind; 4] = [
    ServiceKind::Identity,
    ServiceKind::Organization,
    ServiceKind::Rbac,
    ServiceKind::Billing,
];

/// The writers and audit.
fn everything() -> Vec<ServiceKind> {
    let mut everything = WRITERS.to_vec();
    everything.push(ServiceKind::Audit);
    everything
}

#[tokio::test]
async fn nothing_is_lost_or_doubled_while_the_audit_consumer_or_the_bus_is_down() {
    let mut cases: Vec<(Storage, Option<NatsServer>)> =
        storages().into_iter().map(|s| (s, None)).collect();
    if tenantry_testkit::nats_url().is_some() {
        cases.push((Storage::Sqlite, Some(NatsServer::start().await.unwrap())));
    }
    for (storage, mut nats) in cases {
        let bus = nats.as_ref().map_or(Bus::Local, |n| Bus::Nats(n.url()));
        let (stopped, acme) = everything_runs(builder(storage).bus(bus)).await;
        let stopped =
            the_others_write_while_audit_is_down(storage, stopped, &acme, &mut nats).await;
        every_event_arrives_once_in_order(storage, stopped, &acme).await;
    }
}

/// First everything runs: Ada's Acme and its first project are logged.
async fn everything_runs(builder: SandboxBuilder) -> (tenantry_testkit::Stopped, String) {
    let w = World::start(builder.services(&everything())).await;
    let ada = w.user("ada@example.com").await;
    let acme = w.organization(&ada, "Acme").await;
    w.project(&ada, &acme, "one").await;
    w.logged_with(&ada, &acme, "project.created").await;
    (w.sandbox.stop().await.unwrap(), acme)
}

/// Then audit is down; the others keep writing (on NATS, the bus goes
/// down too for a while).
async fn the_others_write_while_audit_is_down(
    storage: Storage,
    stopped: tenantry_testkit::Stopped,
    acme: &str,
    nats: &mut Option<NatsServer>,
) -> tenantry_testkit::Stopped {
    let w = World::start(builder(storage).services(&WRITERS).resume(stopped)).await;
    let ada = w.login("ada@example.com").await;
    if let Some(nats) = nats.as_mut() {
        nats.stop();
    }
    for name in ["two", "three"] {
        w.project(&ada, acme, name).await;
    }
    if let Some(nats) = nats.as_mut() {
        nats.resume().await.unwrap();
    }
    let bob = w.user("bob@example.com").await;
    let _ = bob;
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.sandbox.stop().await.unwrap()
}

/// Audit is back: every event arrives, once, in order.
async fn every_event_arrives_once_in_order(
    storage: Storage,
    stopped: tenantry_testkit::Stopped,
    acme: &str,
) {
    let w = World::start(builder(storage).services(&everything()).resume(stopped)).await;
    let ada = w.login("ada@example.com").await;
    let expected = written_ids(&w.sandbox).await;
    let audited = eventually("every event in the log", || async {
        let audited = audited_ids(&w.sandbox).await;
        let ids: HashSet<String> = audited.iter().map(|a| a.0.clone()).collect();
        expected.is_subset(&ids).then_some(audited)
    })
    .await;
    let unique: HashSet<&String> = audited.iter().map(|a| &a.0).collect();
    assert_eq!(unique.len(), audited.len(), "nothing doubled");
    let created = pb::AuditEventFilter {
        action: "project.created".into(),
        ..Default::default()
    };
    let projects = w
        .list(
            &ada,
            &format!("organizations/{acme}"),
            Some(created),
            100,
            "",
        )
        .await
        .unwrap()
        .audit_events;
    let names: Vec<String> = projects.iter().rev().map(display_name).collect();
    assert_eq!(names, ["one", "two", "three"], "in order");
    let verified = w.verify(&ada, acme).await;
    assert!(verified.ok, "{verified:?}");
    w.sandbox.shutdown().await.unwrap();
}

/// The display name an event's metadata records.
fn display_name(event: &pb::AuditEvent) -> String {
    event.metadata.as_ref().unwrap().fields["displayName"]
        .kind
        .clone()
        .map(|k| match k {
            prost_types::value::Kind::StringValue(s) => s,
            _ => String::new(),
        })
        .unwrap_or_default()
}
