//! The audit service end to end, with every other service writing the
//! events it ingests: the log per organization and its filters and pages,
//! who may read it, tamper evidence (a row edited in the database breaks
//! VerifyChain at that event), signed checkpoints, retention that keeps the
//! chain verifiable, streaming exports, and nothing lost or doubled when
//! the audit consumer (and, on NATS, the bus) is down while others write.

use std::collections::HashSet;
use std::time::Duration;

use ed25519_dalek::Verifier as _;
use tenantry::services::ServiceKind;
use tenantry_proto::tenantry::audit::v1 as pb;
use tenantry_proto::tenantry::identity::v1 as identity_pb;
use tenantry_proto::tenantry::organization::v1 as org;
use tenantry_proto::tenantry::rbac::v1 as rbac_pb;
use tenantry_testkit::{
    Bus, NatsServer, Sandbox, SandboxBuilder, Storage, authed, eventually, last_id as id, now_secs,
    storages,
};
use tonic::Code;
use tonic::transport::Channel;

type Audit = pb::audit_service_client::AuditServiceClient<Channel>;

struct User {
    id: String,
    token: String,
}

fn builder(storage: Storage) -> SandboxBuilder {
    Sandbox::builder().storage(storage).configure(|config| {
        config.identity.platform_admins = vec!["root@example.com".into()];
        config.audit.checkpoint_interval_secs = 1;
        config.audit.retention_interval_secs = 1;
    })
}

struct World {
    sandbox: Sandbox,
    channel: Channel,
}

impl World {
    async fn start(builder: SandboxBuilder) -> World {
        let sandbox = builder.start().await.unwrap();
        let channel = sandbox.channel().await.unwrap();
        World { sandbox, channel }
    }

    fn audit(&self) -> Audit {
        Audit::new(self.channel.clone())
    }

    async fn user(&self, email: &str) -> User {
        let response =
            identity_pb::identity_service_client::IdentityServiceClient::new(self.channel.clone())
                .sign_up(identity_pb::SignUpRequest {
                    email: email.into(),
                    password: "correct horse battery staple".into(),
                    display_name: email.into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
        User {
            id: id(&response.user.unwrap().name),
            token: response.tokens.unwrap().access_token,
        }
    }

    async fn login(&self, email: &str) -> User {
        let response =
            identity_pb::identity_service_client::IdentityServiceClient::new(self.channel.clone())
                .login(identity_pb::LoginRequest {
                    email: email.into(),
                    password: "correct horse battery staple".into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
        let Some(identity_pb::login_response::Result::Tokens(tokens)) = response.result else {
            panic!("no tokens")
        };
        let me =
            identity_pb::identity_service_client::IdentityServiceClient::new(self.channel.clone())
                .me(authed(
                    identity_pb::MeRequest::default(),
                    &tokens.access_token,
                ))
                .await
                .unwrap()
                .into_inner();
        User {
            id: id(&me.user.unwrap().name),
            token: tokens.access_token,
        }
    }

    async fn organization(&self, owner: &User, name: &str) -> String {
        let created =
            org::organization_service_client::OrganizationServiceClient::new(self.channel.clone())
                .create_organization(authed(
                    org::CreateOrganizationRequest {
                        organization: Some(org::Organization {
                            display_name: name.into(),
                            ..Default::default()
                        }),
                        request_id: String::new(),
                        ..Default::default()
                    },
                    &owner.token,
                ))
                .await
                .unwrap()
                .into_inner()
                .organization
                .unwrap();
        id(&created.name)
    }

    /// A project, created at once: the owner's next call after creating
    /// the organization sees it.
    async fn project(&self, owner: &User, org_id: &str, name: &str) -> String {
        let project = org::project_service_client::ProjectServiceClient::new(self.channel.clone())
            .create_project(authed(
                org::CreateProjectRequest {
                    parent: format!("organizations/{org_id}"),
                    project: Some(org::Project {
                        display_name: name.into(),
                        ..Default::default()
                    }),
                    request_id: format!("{org_id}-{name}"),
                    ..Default::default()
                },
                &owner.token,
            ))
            .await
            .unwrap_or_else(|status| panic!("creating project {name}: {status:?}"))
            .into_inner()
            .project
            .unwrap();
        id(&project.name)
    }

    async fn list(
        &self,
        user: &User,
        parent: &str,
        filter: Option<pb::AuditEventFilter>,
        page_size: i32,
        page_token: &str,
    ) -> Result<pb::ListAuditEventsResponse, tonic::Status> {
        Ok(self
            .audit()
            .list_audit_events(authed(
                pb::ListAuditEventsRequest {
                    parent: parent.into(),
                    page_size,
                    page_token: page_token.into(),
                    filter,
                },
                &user.token,
            ))
            .await?
            .into_inner())
    }

    /// Every event of an organization, newest first, once `action` is in.
    async fn until_logged(&self, user: &User, org_id: &str, action: &str) -> Vec<pb::AuditEvent> {
        eventually(&format!("{action} in the log"), || async {
            let events = self
                .list(user, &format!("organizations/{org_id}"), None, 1000, "")
                .await
                .ok()?
                .audit_events;
            events.iter().any(|e| e.action == action).then_some(events)
        })
        .await
    }

    async fn verify(&self, user: &User, org_id: &str) -> pb::VerifyChainResponse {
        self.audit()
            .verify_chain(authed(
                pb::VerifyChainRequest {
                    organization: format!("organizations/{org_id}"),
                    ..Default::default()
                },
                &user.token,
            ))
            .await
            .unwrap()
            .into_inner()
    }
}

#[tokio::test]
async fn every_change_is_logged_once_per_organization_and_read_only_by_its_auditors() {
    for storage in storages() {
        let w = World::start(builder(storage)).await;
        let root = w.user("root@example.com").await;
        let ada = w.user("ada@example.com").await;
        let bob = w.user("bob@example.com").await;
        let carol = w.user("carol@example.com").await;
        let acme = w.organization(&ada, "Acme").await;
        let project = w.project(&ada, &acme, "api").await;
        tenantry_tests::people::join(
            &w.sandbox,
            &w.channel,
            &ada.token,
            &acme,
            &bob.token,
            &["roles/member"],
        )
        .await;
        // The owner's membership, the project and bob's membership.
        let events = eventually("the changes in the log", || async {
            let events = w
                .list(&ada, &format!("organizations/{acme}"), None, 1000, "")
                .await
                .ok()?
                .audit_events;
            let members = events
                .iter()
                .filter(|e| e.action == "organization.member.added")
                .count();
            let project = events.iter().any(|e| e.action == "project.created");
            (members == 2 && project).then_some(events)
        })
        .await;

        // Newest first, one chain without gaps, each event as it happened.
        let sequences: Vec<i64> = events.iter().map(|e| e.sequence).collect();
        let mut expected: Vec<i64> = (1..=events.len() as i64).collect();
        expected.reverse();
        assert_eq!(sequences, expected);
        let created = events
            .iter()
            .find(|e| e.action == "project.created")
            .unwrap();
        assert_eq!(created.actor.as_ref().unwrap().id, ada.id);
        assert_eq!(
            created.actor.as_ref().unwrap().kind,
            pb::actor::Kind::User as i32
        );
        // Who did it, in words: the name the user had when they did it.
        assert_eq!(
            created.actor.as_ref().unwrap().display_name,
            "ada@example.com"
        );
        assert_eq!(created.source, "organization");
        assert_eq!(created.outcome, pb::Outcome::Success as i32);
        assert!(created.targets.iter().any(|t| t.id == project));
        assert_eq!(
            created.metadata.as_ref().unwrap().fields["projectId"].kind,
            Some(prost_types::value::Kind::StringValue(project.clone()))
        );
        assert_eq!(created.hash.len(), 32);
        assert_eq!(created.organization, format!("organizations/{acme}"));
        let one = w
            .audit()
            .get_audit_event(authed(
                pb::GetAuditEventRequest {
                    name: created.name.clone(),
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .audit_event
            .unwrap();
        assert_eq!(&one, created);
        let verified = w.verify(&ada, &acme).await;
        assert!(verified.ok, "{verified:?}");
        assert!(verified.verified_count >= events.len() as i64);

        // Filters.
        let filtered = |filter: pb::AuditEventFilter| {
            let w = &w;
            let ada = &ada;
            let acme = acme.clone();
            async move {
                w.list(ada, &format!("organizations/{acme}"), Some(filter), 100, "")
                    .await
            }
        };
        let members = filtered(pb::AuditEventFilter {
            action_prefix: "organization.member.".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .audit_events;
        assert!(
            !members.is_empty()
                && members
                    .iter()
                    .all(|e| e.action.starts_with("organization.member."))
        );
        let exact = filtered(pb::AuditEventFilter {
            action: "project.created".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .audit_events;
        assert_eq!(exact.len(), 1);
        let by_target = filtered(pb::AuditEventFilter {
            target_id: project.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .audit_events;
        assert!(by_target.iter().any(|e| e.action == "project.created"));
        let by_actor = filtered(pb::AuditEventFilter {
            actor_id: ada.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .audit_events;
        assert!(
            by_actor
                .iter()
                .all(|e| e.actor.as_ref().unwrap().id == ada.id)
        );
        let failures = filtered(pb::AuditEventFilter {
            outcome: pb::Outcome::Failure as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .audit_events;
        assert!(failures.is_empty());
        let hour = |offset: i64| {
            Some(prost_types::Timestamp {
                seconds: now_secs() + offset * 3600,
                nanos: 0,
            })
        };
        let recent = filtered(pb::AuditEventFilter {
            start_time: hour(-1),
            end_time: hour(1),
            ..Default::default()
        })
        .await
        .unwrap()
        .audit_events;
        assert!(recent.len() >= events.len());
        let ancient = filtered(pb::AuditEventFilter {
            start_time: hour(-48),
            end_time: hour(-24),
            ..Default::default()
        })
        .await
        .unwrap()
        .audit_events;
        assert!(ancient.is_empty());
        let bad_range = filtered(pb::AuditEventFilter {
            start_time: Some(prost_types::Timestamp {
                seconds: 2_000_000_000,
                nanos: 0,
            }),
            end_time: Some(prost_types::Timestamp {
                seconds: 1_000_000_000,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await;
        assert_eq!(bad_range.unwrap_err().code(), Code::InvalidArgument);

        // Pages are stable under concurrent inserts.
        let parent = format!("organizations/{acme}");
        let first = w.list(&ada, &parent, None, 2, "").await.unwrap();
        assert_eq!(first.audit_events.len(), 2);
        let expected: Vec<i64> = (1..=first.audit_events[0].sequence).rev().collect();
        w.project(&ada, &acme, "web").await;
        w.until_logged(&ada, &acme, "project.created").await;
        let mut paged: Vec<i64> = first.audit_events.iter().map(|e| e.sequence).collect();
        let mut token = first.next_page_token.clone();
        while !token.is_empty() {
            let page = w.list(&ada, &parent, None, 2, &token).await.unwrap();
            paged.extend(page.audit_events.iter().map(|e| e.sequence));
            token = page.next_page_token;
        }
        assert_eq!(
            paged, expected,
            "later pages saw none of the new events and missed nothing"
        );
        let other_query = w
            .list(
                &ada,
                &parent,
                Some(pb::AuditEventFilter {
                    action: "x".into(),
                    ..Default::default()
                }),
                2,
                &first.next_page_token,
            )
            .await;
        assert_eq!(other_query.unwrap_err().code(), Code::InvalidArgument);
        let mut tampered = first.next_page_token.clone();
        tampered.replace_range(5..6, if &tampered[5..6] == "A" { "B" } else { "A" });
        assert_eq!(
            w.list(&ada, &parent, None, 2, &tampered)
                .await
                .unwrap_err()
                .code(),
            Code::InvalidArgument
        );

        // Who may read: auditors (owner, admin); a member is denied, a
        // stranger finds nothing; across organizations only platform
        // administrators, and that read is itself logged.
        assert_eq!(
            w.list(&bob, &parent, None, 10, "")
                .await
                .unwrap_err()
                .code(),
            Code::PermissionDenied
        );
        assert_eq!(
            w.list(&carol, &parent, None, 10, "")
                .await
                .unwrap_err()
                .code(),
            Code::NotFound
        );
        let stranger_get = w
            .audit()
            .get_audit_event(authed(
                pb::GetAuditEventRequest {
                    name: created.name.clone(),
                },
                &carol.token,
            ))
            .await;
        assert_eq!(stranger_get.unwrap_err().code(), Code::NotFound);
        assert_eq!(
            w.list(&ada, "organizations/-", None, 10, "")
                .await
                .unwrap_err()
                .code(),
            Code::PermissionDenied
        );
        let everywhere = eventually("billing... the platform admin reaching audit", || async {
            w.list(&root, "organizations/-", None, 1000, "").await.ok()
        })
        .await;
        assert!(
            everywhere
                .audit_events
                .iter()
                .any(|e| e.organization == format!("organizations/{acme}"))
        );
        let direct = w.list(&root, &parent, None, 10, "").await.unwrap();
        assert!(
            !direct.audit_events.is_empty(),
            "administrators read any organization, audited"
        );
        // An export across organizations is such a read too.
        let mut export = w
            .audit()
            .export_audit_events(authed(
                pb::ExportAuditEventsRequest {
                    parent: "organizations/-".into(),
                    format: pb::ExportFormat::Jsonl as i32,
                    ..Default::default()
                },
                &root.token,
            ))
            .await
            .unwrap()
            .into_inner();
        while export.message().await.unwrap().is_some() {}
        eventually(
            "the cross-organization reads in the instance log",
            || async {
                let instance = w
                    .list(
                        &root,
                        "organizations/instance",
                        Some(pb::AuditEventFilter {
                            action: "audit.events.read_across_organizations".into(),
                            ..Default::default()
                        }),
                        10,
                        "",
                    )
                    .await
                    .ok()?;
                let methods: Vec<String> = instance
                    .audit_events
                    .iter()
                    .filter(|e| e.actor.as_ref().unwrap().id == root.id)
                    .filter_map(
                        |e| match e.metadata.as_ref()?.fields.get("method")?.kind.clone() {
                            Some(prost_types::value::Kind::StringValue(m)) => Some(m),
                            _ => None,
                        },
                    )
                    .collect();
                (methods.iter().any(|m| m == "ListAuditEvents")
                    && methods.iter().any(|m| m == "ExportAuditEvents"))
                .then_some(())
            },
        )
        .await;
        w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn an_edited_row_breaks_the_chain_checkpoints_are_signed_and_retention_keeps_it_verifiable() {
    for storage in storages() {
        let w = World::start(builder(storage)).await;
        let ada = w.user("ada@example.com").await;
        let acme = w.organization(&ada, "Acme").await;
        for name in ["a", "b", "c"] {
            w.project(&ada, &acme, name).await;
        }
        eventually("three projects in the log", || async {
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
                .ok()?;
            (events.audit_events.len() == 3).then_some(())
        })
        .await;

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
        let key = ed25519_dalek::VerifyingKey::from_bytes(
            &checkpoint.public_key.clone().try_into().unwrap(),
        )
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

        // Edit one row behind the service's back: VerifyChain names it.
        let db = w.sandbox.database.connect_as_operator().await.unwrap();
        sqlx::query(
            "UPDATE audit_events SET actor_name = 'Mallory' WHERE scope = $1 AND sequence = 3",
        )
        .bind(&acme)
        .execute(db.pool())
        .await
        .unwrap();
        let broken = w.verify(&ada, &acme).await;
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

        // Retention by plan (FREE: 7 days): events "ingested" 30 days ago
        // are purged, a checkpoint marks the cut, and what is left verifies.
        sqlx::query("UPDATE audit_events SET ingested_at_us = ingested_at_us - 2592000000000 WHERE scope = $1 AND sequence <= 3")
            .bind(&acme)
            .execute(db.pool())
            .await
            .unwrap();
        let cut = eventually("the retention cut", || async {
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
                .find(|c| c.retention_cut)
        })
        .await;
        assert_eq!(cut.sequence, 3);
        let rest = w.verify(&ada, &acme).await;
        assert!(rest.ok, "{rest:?}");
        assert_eq!(rest.start_sequence, 4);
        w.until_logged(&ada, &acme, "audit.events.purged").await;
        w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn exports_stream_jsonl_and_csv_in_bounded_chunks() {
    for storage in storages() {
        let w = World::start(builder(storage)).await;
        let ada = w.user("ada@example.com").await;
        let bob = w.user("bob@example.com").await;
        let acme = w.organization(&ada, "Acme").await;
        for name in ["a", "b", "c"] {
            w.project(&ada, &acme, name).await;
        }
        let logged = eventually("three projects in the log", || async {
            let events = w
                .list(&ada, &format!("organizations/{acme}"), None, 1000, "")
                .await
                .ok()?
                .audit_events;
            (events
                .iter()
                .filter(|e| e.action == "project.created")
                .count()
                == 3)
                .then_some(events)
        })
        .await;
        let export = |format: pb::ExportFormat, user: &User| {
            let request = authed(
                pb::ExportAuditEventsRequest {
                    parent: format!("organizations/{acme}"),
                    filter: None,
                    format: format as i32,
                },
                &user.token,
            );
            let mut client = w.audit();
            async move {
                let mut stream = client.export_audit_events(request).await?.into_inner();
                let mut chunks = Vec::new();
                while let Some(chunk) = stream.message().await? {
                    chunks.push(chunk);
                }
                Ok::<_, tonic::Status>(chunks)
            }
        };
        let jsonl = export(pb::ExportFormat::Jsonl, &ada).await.unwrap();
        assert!(jsonl.last().unwrap().last);
        assert!(
            jsonl
                .iter()
                .all(|c| c.content_type == "application/jsonl" && c.data.len() <= 1024 * 1024)
        );
        let text: String = jsonl
            .iter()
            .map(|c| String::from_utf8(c.data.clone()).unwrap())
            .collect();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(lines.len() >= logged.len());
        assert_eq!(
            lines[0]["sequence"], "1",
            "oldest first; 64-bit integers as strings"
        );
        assert_eq!(
            jsonl.iter().map(|c| c.event_count).sum::<i64>(),
            lines.len() as i64
        );
        let csv = export(pb::ExportFormat::Csv, &ada).await.unwrap();
        let text: String = csv
            .iter()
            .map(|c| String::from_utf8(c.data.clone()).unwrap())
            .collect();
        assert!(text.starts_with("id,organization,sequence,"));
        assert!(text.lines().count() > logged.len());
        assert_eq!(
            export(pb::ExportFormat::Jsonl, &bob)
                .await
                .unwrap_err()
                .code(),
            Code::NotFound
        );
        w.until_logged(&ada, &acme, "audit.events.exported").await;
        w.sandbox.shutdown().await.unwrap();
    }
}

/// Outbox event ids of every service except audit's own checkpoints.
async fn written_ids(sandbox: &Sandbox) -> HashSet<String> {
    let db = sandbox.database.connect().await.unwrap();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT event_id, subject FROM tenantry_outbox")
            .fetch_all(db.pool())
            .await
            .unwrap();
    rows.into_iter()
        .filter(|(_, subject)| !subject.ends_with("audit.checkpoint.created"))
        .map(|(id, _)| id)
        .collect()
}

async fn audited_ids(sandbox: &Sandbox) -> Vec<(String, String, i64)> {
    let db = sandbox.database.connect_as_operator().await.unwrap();
    sqlx::query_as("SELECT id, scope, sequence FROM audit_events ORDER BY scope, sequence")
        .fetch_all(db.pool())
        .await
        .unwrap()
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
        let writers = [
            ServiceKind::Identity,
            ServiceKind::Organization,
            ServiceKind::Rbac,
            ServiceKind::Billing,
        ];
        let mut everything = writers.to_vec();
        everything.push(ServiceKind::Audit);

        // 1. Everything runs.
        let w = World::start(builder(storage).bus(bus.clone()).services(&everything)).await;
        let ada = w.user("ada@example.com").await;
        let acme = w.organization(&ada, "Acme").await;
        w.project(&ada, &acme, "one").await;
        w.until_logged(&ada, &acme, "project.created").await;
        let stopped = w.sandbox.stop().await.unwrap();

        // 2. Audit is down; the others keep writing (on NATS, the bus goes
        // down too for a while).
        let w = World::start(builder(storage).services(&writers).resume(stopped)).await;
        let ada = w.login("ada@example.com").await;
        if let Some(nats) = nats.as_mut() {
            nats.stop();
        }
        for name in ["two", "three"] {
            w.project(&ada, &acme, name).await;
        }
        if let Some(nats) = nats.as_mut() {
            nats.resume().await.unwrap();
        }
        let bob = w.user("bob@example.com").await;
        let _ = bob;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stopped = w.sandbox.stop().await.unwrap();

        // 3. Audit is back: every event arrives, once, in order.
        let w = World::start(builder(storage).services(&everything).resume(stopped)).await;
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
        let projects = w
            .list(
                &ada,
                &format!("organizations/{acme}"),
                Some(pb::AuditEventFilter {
                    action: "project.created".into(),
                    ..Default::default()
                }),
                100,
                "",
            )
            .await
            .unwrap()
            .audit_events;
        let names: Vec<String> = projects
            .iter()
            .rev()
            .map(|e| {
                e.metadata.as_ref().unwrap().fields["displayName"]
                    .kind
                    .clone()
                    .map(|k| match k {
                        prost_types::value::Kind::StringValue(s) => s,
                        _ => String::new(),
                    })
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(names, ["one", "two", "three"], "in order");
        let verified = w.verify(&ada, &acme).await;
        assert!(verified.ok, "{verified:?}");
        w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn refusals_are_in_the_log_with_who_and_why() {
    for storage in storages() {
        let w = World::start(builder(storage)).await;
        let ada = w.user("ada@example.com").await;
        let bob = w.user("bob@example.com").await;
        let acme = w.organization(&ada, "Acme").await;
        tenantry_tests::people::join(
            &w.sandbox,
            &w.channel,
            &ada.token,
            &acme,
            &bob.token,
            &["roles/member"],
        )
        .await;
        let create = |user: &User, name: &str| {
            let request = org::CreateProjectRequest {
                parent: format!("organizations/{acme}"),
                project: Some(org::Project {
                    display_name: name.into(),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let token = user.token.clone();
            let channel = w.channel.clone();
            async move {
                org::project_service_client::ProjectServiceClient::new(channel)
                    .create_project(authed(request, &token))
                    .await
            }
        };
        // A member may not create projects; the owner fills the plan (three).
        let denied = create(&bob, "mine").await.unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied);
        for name in ["one", "two", "three"] {
            create(&ada, name).await.unwrap();
        }
        let over = create(&ada, "four").await.unwrap_err();
        assert_eq!(over.code(), Code::ResourceExhausted);
        // Seats too: ada and bob, three pending invitations fill FREE's five.
        let mut invitations =
            rbac_pb::invitation_service_client::InvitationServiceClient::new(w.channel.clone());
        let invite = |email: &str| {
            authed(
                rbac_pb::CreateInvitationRequest {
                    parent: format!("organizations/{acme}"),
                    invitation: Some(rbac_pb::Invitation {
                        email: email.into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                &ada.token,
            )
        };
        // A member may not invite (rbac refuses and records it); a
        // stranger is told nothing exists, and nothing is recorded.
        let carol = w.user("carol@example.com").await;
        for (who, code) in [(&carol, Code::NotFound), (&bob, Code::PermissionDenied)] {
            let mut request = invite("g@example.com");
            *request.metadata_mut() = authed((), &who.token).metadata().clone();
            let refused = invitations.create_invitation(request).await.unwrap_err();
            assert_eq!(refused.code(), code, "{refused:?}");
        }
        for email in ["c@example.com", "d@example.com", "e@example.com"] {
            invitations.create_invitation(invite(email)).await.unwrap();
        }
        let no_seat = invitations
            .create_invitation(invite("f@example.com"))
            .await
            .unwrap_err();
        assert_eq!(no_seat.code(), Code::ResourceExhausted);

        let refusals = eventually("the refusals in the log", || async {
            let found: Vec<pb::AuditEvent> = w
                .list(&ada, &format!("organizations/{acme}"), None, 1000, "")
                .await
                .ok()?
                .audit_events
                .into_iter()
                .filter(|e| e.action == "organization.request.denied")
                .collect();
            (found.len() == 4).then_some(found)
        })
        .await;
        let field = |e: &pb::AuditEvent, key: &str| -> String {
            match e
                .metadata
                .as_ref()
                .and_then(|m| m.fields.get(key))
                .and_then(|v| v.kind.clone())
            {
                Some(prost_types::value::Kind::StringValue(s)) => s,
                _ => String::new(),
            }
        };
        assert!(
            refusals
                .iter()
                .all(|e| e.actor.as_ref().unwrap().id != carol.id),
            "a stranger's NOT_FOUND is not recorded"
        );
        let invite_refused = refusals
            .iter()
            .find(|e| {
                field(e, "action") == "organization.members.invite"
                    && field(e, "reason") == "PERMISSION_DENIED"
            })
            .expect("bob's refused invitation");
        assert_eq!(invite_refused.actor.as_ref().unwrap().id, bob.id);
        assert_eq!(invite_refused.source, "rbac");
        assert_eq!(field(invite_refused, "reason"), "PERMISSION_DENIED");
        assert_eq!(
            field(invite_refused, "permission"),
            "organization.members.invite"
        );
        assert!(invite_refused.targets.iter().any(|t| t.id == acme));
        let by_bob = refusals
            .iter()
            .find(|e| {
                field(e, "action") == "project.create" && e.actor.as_ref().unwrap().id == bob.id
            })
            .expect("bob's refusal");
        assert_eq!(by_bob.outcome, pb::Outcome::Denied as i32);
        assert_eq!(field(by_bob, "action"), "project.create");
        assert_eq!(field(by_bob, "reason"), "PERMISSION_DENIED");
        assert!(by_bob.targets.iter().any(|t| t.id == acme));
        let seat = refusals
            .iter()
            .find(|e| field(e, "metric") == "METRIC_MEMBERS")
            .expect("the seat refusal");
        assert_eq!(seat.actor.as_ref().unwrap().id, ada.id);
        assert_eq!(seat.source, "rbac");
        assert_eq!(field(seat, "limit"), "5");
        let by_ada = refusals
            .iter()
            .find(|e| field(e, "metric") == "METRIC_PROJECTS")
            .expect("ada's refusal");
        assert_eq!(by_ada.actor.as_ref().unwrap().id, ada.id);
        assert_eq!(by_ada.outcome, pb::Outcome::Denied as i32);
        assert_eq!(field(by_ada, "reason"), "QUOTA_EXCEEDED");
        assert_eq!(field(by_ada, "metric"), "METRIC_PROJECTS");
        assert_eq!(field(by_ada, "limit"), "3");
        w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_huge_export_streams_in_chunks_and_oversized_metadata_is_cut_not_dropped() {
    use prost::Message as _;
    use tenantry_kit::bus::{BusMessage, EventBus, LocalBus};
    use tenantry_proto::tenantry::events::v1 as events;

    for storage in storages() {
        let w = World::start(builder(storage)).await;
        let ada = w.user("ada@example.com").await;
        let acme = w.organization(&ada, "Acme").await;
        w.until_logged(&ada, &acme, "organization.created").await;

        // Events published on the bus as another service's relay would:
        // many with a kilobyte of payload, one far above the metadata cap.
        let db = w.sandbox.database.connect().await.unwrap();
        let bus = LocalBus::new(db);
        let update = |n: usize, name_len: usize| {
            let payload = events::OrganizationUpdated {
                organization_id: acme.clone(),
                slug: format!("acme-{n}"),
                display_name: "x".repeat(name_len),
                ..Default::default()
            };
            events::Event {
                id: uuid::Uuid::now_v7().to_string(),
                r#type: "organization.updated".into(),
                source: "organization".into(),
                aggregate_type: "organization".into(),
                aggregate_id: acme.clone(),
                organization_id: acme.clone(),
                root_organization_id: acme.clone(),
                occurred_at: Some(prost_types::Timestamp {
                    seconds: 1_800_000_000,
                    nanos: 0,
                }),
                actor: Some(events::Actor {
                    kind: events::actor::Kind::User as i32,
                    id: ada.id.clone(),
                    display_name: "Ada".into(),
                }),
                payload: Some(prost_types::Any::from_msg(&payload).unwrap()),
                ..Default::default()
            }
        };
        let mut huge_id = String::new();
        for n in 0..1500 {
            let event = if n == 700 {
                update(n, 40_000)
            } else {
                update(n, 1000)
            };
            if n == 700 {
                huge_id = event.id.clone();
            }
            bus.publish(&BusMessage {
                subject: tenantry_kit::outbox::subject_for("organization", "organization.updated"),
                event_id: event.id.clone(),
                payload: event.encode_to_vec().into(),
            })
            .await
            .unwrap();
        }
        let total = eventually("every published event in the log", || async {
            let head = w
                .list(&ada, &format!("organizations/{acme}"), None, 1, "")
                .await
                .ok()?
                .audit_events;
            let sequence = head.first()?.sequence;
            (sequence >= 1500).then_some(sequence)
        })
        .await;

        let huge = w
            .audit()
            .get_audit_event(authed(
                pb::GetAuditEventRequest {
                    name: format!("organizations/{acme}/auditEvents/{huge_id}"),
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .audit_event
            .unwrap();
        assert!(huge.metadata_truncated, "cut, and kept");
        let fields = &huge.metadata.unwrap().fields;
        assert_eq!(
            fields["_truncated"].kind,
            Some(prost_types::value::Kind::BoolValue(true))
        );
        assert_eq!(
            fields["slug"].kind,
            Some(prost_types::value::Kind::StringValue("acme-700".into()))
        );
        assert!(!fields.contains_key("displayName"));

        let mut stream = w
            .audit()
            .export_audit_events(authed(
                pb::ExportAuditEventsRequest {
                    parent: format!("organizations/{acme}"),
                    filter: None,
                    format: pb::ExportFormat::Jsonl as i32,
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner();
        let (mut chunks, mut lines, mut last) = (0, 0i64, false);
        while let Some(chunk) = stream.message().await.unwrap() {
            assert!(!last, "nothing after the last chunk");
            assert!(chunk.data.len() <= 1024 * 1024, "chunks are at most 1 MiB");
            assert!(
                chunk.data.is_empty() || chunk.data.ends_with(b"\n"),
                "chunks end on a line"
            );
            let text = std::str::from_utf8(&chunk.data).unwrap();
            assert_eq!(text.lines().count() as i64, chunk.event_count);
            lines += chunk.event_count;
            chunks += 1;
            last = chunk.last;
        }
        assert!(last);
        assert!(
            chunks >= 2,
            "a large export streams in several chunks, got {chunks}"
        );
        assert!(lines >= total, "{lines} lines for {total} events");
        w.sandbox.shutdown().await.unwrap();
    }
}

/// Rollbar's Organization Admin page, as its admin walks through it on
/// the free plan: organization information and 2FA for everyone, every
/// project with who has access and at what level (members and external
/// users told apart), roles DEFAULT (member) and ADMIN, accounts with
/// several roles, removing an account, invitations made and revoked, a
/// project deleted once nobody is assigned to it — and all of it in the
/// organization's audit log.
#[tokio::test]
async fn rollbar_runs_its_organization_admin_page() {
    use tenantry_proto::tenantry::authz::v1 as authz;
    type Grants = rbac_pb::project_grant_service_client::ProjectGrantServiceClient<Channel>;
    type Members = rbac_pb::membership_service_client::MembershipServiceClient<Channel>;
    type Invitations = rbac_pb::invitation_service_client::InvitationServiceClient<Channel>;
    type Projects = org::project_service_client::ProjectServiceClient<Channel>;
    type Orgs = org::organization_service_client::OrganizationServiceClient<Channel>;
    for storage in storages() {
        let w = World::start(builder(storage)).await;
        let ada = w.user("ada@rollbar.example").await;
        let bob = w.user("bob@rollbar.example").await;
        let carol = w.user("carol@rollbar.example").await;
        let dave = w.user("dave@partner.example").await;
        let acme = w.organization(&ada, "Rollbar").await;
        let name = format!("organizations/{acme}");

        // Organization information, and 2FA required of every member.
        let current = Orgs::new(w.channel.clone())
            .get_organization(authed(
                org::GetOrganizationRequest { name: name.clone() },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .organization
            .unwrap();
        let updated = Orgs::new(w.channel.clone())
            .update_organization(authed(
                org::UpdateOrganizationRequest {
                    organization: Some(org::Organization {
                        name: name.clone(),
                        display_name: "Rollbar Inc.".into(),
                        settings: Some(org::OrganizationSettings {
                            require_mfa: true,
                            ..Default::default()
                        }),
                        etag: current.etag.clone(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["display_name".into(), "settings.require_mfa".into()],
                    }),
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .organization
            .unwrap();
        assert_eq!(updated.display_name, "Rollbar Inc.");
        assert!(updated.settings.unwrap().require_mfa);

        // Projects, people with their roles, and who may use which project.
        let web = w.project(&ada, &acme, "web").await;
        let api = w.project(&ada, &acme, "api").await;
        let project = |p: &str| format!("{name}/projects/{p}");
        for (person, role) in [(&bob, "roles/member"), (&carol, "roles/admin")] {
            tenantry_tests::people::join(
                &w.sandbox,
                &w.channel,
                &ada.token,
                &acme,
                &person.token,
                &[role],
            )
            .await;
        }
        let external = tenantry_tests::people::accept(
            &w.sandbox,
            &w.channel,
            &ada.token,
            &acme,
            &dave.token,
            rbac_pb::Invitation {
                external: true,
                projects: vec![rbac_pb::InvitationProject {
                    project: project(&web),
                    access_level: authz::ProjectAccessLevel::Viewer as i32,
                }],
                ..Default::default()
            },
        )
        .await;
        assert!(external.membership.is_none());
        Grants::new(w.channel.clone())
            .create_project_grant(authed(
                rbac_pb::CreateProjectGrantRequest {
                    parent: project(&api),
                    project_grant: Some(rbac_pb::ProjectGrant {
                        subject: Some(rbac_pb::project_grant::Subject::User(format!(
                            "users/{}",
                            bob.id
                        ))),
                        access_level: authz::ProjectAccessLevel::Contributor as i32,
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                &ada.token,
            ))
            .await
            .unwrap();
        let access = |p: String| {
            let channel = w.channel.clone();
            let token = ada.token.clone();
            async move {
                Grants::new(channel)
                    .list_project_grants(authed(
                        rbac_pb::ListProjectGrantsRequest {
                            parent: p,
                            ..Default::default()
                        },
                        &token,
                    ))
                    .await
                    .unwrap()
                    .into_inner()
                    .project_grants
                    .into_iter()
                    .map(|g| (g.subject_display_name, g.access_level, g.external))
                    .collect::<Vec<_>>()
            }
        };
        // The external user in blue, the member in grey.
        assert_eq!(
            access(project(&web)).await,
            [(
                "dave@partner.example".to_string(),
                authz::ProjectAccessLevel::Viewer as i32,
                true
            )]
        );
        assert_eq!(
            access(project(&api)).await,
            [(
                "bob@rollbar.example".to_string(),
                authz::ProjectAccessLevel::Contributor as i32,
                false
            )]
        );

        // The roles: DEFAULT is the member role, ADMIN the admin role.
        let roles: Vec<String> =
            rbac_pb::role_service_client::RoleServiceClient::new(w.channel.clone())
                .list_roles(authed(
                    rbac_pb::ListRolesRequest {
                        parent: name.clone(),
                        ..Default::default()
                    },
                    &ada.token,
                ))
                .await
                .unwrap()
                .into_inner()
                .roles
                .into_iter()
                .map(|r| r.display_name)
                .collect();
        for role in ["Owner", "Admin", "Member", "Finance"] {
            assert!(roles.iter().any(|r| r == role), "{role} in {roles:?}");
        }

        // An account with several roles; another removed, at once.
        let membership = |user: &User| format!("{name}/memberships/{}", user.id);
        Members::new(w.channel.clone())
            .update_membership(authed(
                rbac_pb::UpdateMembershipRequest {
                    membership: Some(rbac_pb::Membership {
                        name: membership(&bob),
                        roles: vec!["roles/member".into(), "roles/finance".into()],
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["roles".into()],
                    }),
                },
                &ada.token,
            ))
            .await
            .unwrap();
        Members::new(w.channel.clone())
            .delete_membership(authed(
                rbac_pb::DeleteMembershipRequest {
                    name: membership(&carol),
                    etag: String::new(),
                },
                &ada.token,
            ))
            .await
            .unwrap();
        let listed: Vec<(String, Vec<String>)> = Members::new(w.channel.clone())
            .list_memberships(authed(
                rbac_pb::ListMembershipsRequest {
                    parent: name.clone(),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .memberships
            .into_iter()
            .map(|m| (m.name, m.roles))
            .collect();
        assert!(listed.contains(&(
            membership(&bob),
            vec!["roles/member".into(), "roles/finance".into()]
        )));
        assert!(listed.iter().all(|(m, _)| *m != membership(&carol)));
        let carol_reads =
            authz::authorization_service_client::AuthorizationServiceClient::new(w.channel.clone())
                .check_permission(authed(
                    authz::CheckPermissionRequest {
                        resource: Some(authz::ObjectReference {
                            object_type: "organization".into(),
                            object_id: acme.clone(),
                        }),
                        permission: "organization.read".into(),
                        subject: Some(authz::SubjectReference {
                            object: Some(authz::ObjectReference {
                                object_type: "user".into(),
                                object_id: carol.id.clone(),
                            }),
                            optional_relation: String::new(),
                        }),
                        ..Default::default()
                    },
                    &carol.token,
                ))
                .await
                .unwrap()
                .into_inner();
        assert_eq!(carol_reads.permissionship(), authz::Permissionship::Denied);

        // An invitation with a pre-assigned role, then revoked.
        let mut invitations = Invitations::new(w.channel.clone());
        let invited = invitations
            .create_invitation(authed(
                rbac_pb::CreateInvitationRequest {
                    parent: name.clone(),
                    invitation: Some(rbac_pb::Invitation {
                        email: "eve@rollbar.example".into(),
                        roles: vec!["roles/admin".into()],
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .invitation
            .unwrap();
        invitations
            .revoke_invitation(authed(
                rbac_pb::RevokeInvitationRequest {
                    name: invited.name.clone(),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap();
        let states: Vec<(String, i32)> = invitations
            .list_invitations(authed(
                rbac_pb::ListInvitationsRequest {
                    parent: name.clone(),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .invitations
            .into_iter()
            .map(|i| (i.email, i.state))
            .collect();
        assert!(states.contains(&(
            "eve@rollbar.example".into(),
            rbac_pb::invitation::State::Revoked as i32
        )));

        // A project goes for good only once nobody is assigned to it.
        let mut projects = Projects::new(w.channel.clone());
        for p in [&web, &api] {
            projects
                .delete_project(authed(
                    org::DeleteProjectRequest {
                        name: project(p),
                        ..Default::default()
                    },
                    &ada.token,
                ))
                .await
                .unwrap();
        }
        let in_use = projects
            .purge_project(authed(
                org::PurgeProjectRequest {
                    name: project(&web),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap_err();
        assert_eq!(in_use.code(), Code::FailedPrecondition, "{in_use:?}");
        Grants::new(w.channel.clone())
            .delete_project_grant(authed(
                rbac_pb::DeleteProjectGrantRequest {
                    name: Grants::new(w.channel.clone())
                        .list_project_grants(authed(
                            rbac_pb::ListProjectGrantsRequest {
                                parent: project(&api),
                                ..Default::default()
                            },
                            &ada.token,
                        ))
                        .await
                        .unwrap()
                        .into_inner()
                        .project_grants[0]
                        .name
                        .clone(),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap();
        projects
            .purge_project(authed(
                org::PurgeProjectRequest {
                    name: project(&api),
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap();

        // The audit log page shows each step, with who did it. Each
        // service's events reach the log on their own, so one step's
        // arrival says nothing of another's: wait for each.
        for action in [
            "organization.updated",
            "project.created",
            "organization.member.added",
            "organization.member.updated",
            "organization.member.removed",
            "organization.member.invited",
            "organization.member.invitation_revoked",
            "project.access.granted",
            "project.access.revoked",
            "project.deleted",
            "project.purged",
        ] {
            let log = w.until_logged(&ada, &acme, action).await;
            let event = log
                .iter()
                .find(|e| e.action == action)
                .unwrap_or_else(|| panic!("{action} is in the log"));
            assert!(event.actor.is_some(), "{action} says who");
        }
        w.sandbox.shutdown().await.unwrap();
    }
}
