//! Exports in JSONL and CSV, in bounded chunks.

use super::*;

/// Acme, Ada's, with three projects in the log; Bob a stranger to it.
struct Exports {
    w: World,
    ada: User,
    bob: User,
    acme: String,
    logged: Vec<pb::AuditEvent>,
}

impl Exports {
    async fn start(storage: Storage) -> Exports {
        let w = World::start(builder(storage)).await;
        let ada = w.user("ada@example.com").await;
        let bob = w.user("bob@example.com").await;
        let acme = w.organization(&ada, "Acme").await;
        for name in ["a", "b", "c"] {
            w.project(&ada, &acme, name).await;
        }
        // The log reads its writers' writes: no waiting.
        let logged = w
            .list(&ada, &format!("organizations/{acme}"), None, 1000, "")
            .await
            .expect("the log")
            .audit_events;
        let projects = logged.iter().filter(|e| e.action == "project.created");
        assert_eq!(projects.count(), 3, "three projects in the log");
        Exports {
            w,
            ada,
            bob,
            acme,
            logged,
        }
    }

    /// Acme's whole log in `format`, exported by `user`: every chunk.
    async fn export(
        &self,
        format: pb::ExportFormat,
        user: &User,
    ) -> Result<Vec<pb::ExportAuditEventsResponse>, tonic::Status> {
        let request = authed(
            pb::ExportAuditEventsRequest {
                parent: format!("organizations/{}", self.acme),
                filter: None,
                format: format as i32,
            },
            &user.token,
        );
        let mut stream = self
            .w
            .audit()
            .export_audit_events(request)
            .await?
            .into_inner();
        let mut chunks = Vec::new();
        while let Some(chunk) = stream.message().await? {
            chunks.push(chunk);
        }
        Ok(chunks)
    }
}

/// The text of every chunk, in order.
fn text(chunks: &[pb::ExportAuditEventsResponse]) -> String {
    chunks
        .iter()
        .map(|c| String::from_utf8(c.data.clone()).unwrap())
        .collect()
}

#[tokio::test]
async fn exports_stream_jsonl_and_csv_in_bounded_chunks() {
    for storage in storages() {
        let e = Exports::start(storage).await;
        jsonl_streams_oldest_first_in_bounded_chunks(&e).await;
        let csv = text(&e.export(pb::ExportFormat::Csv, &e.ada).await.unwrap());
        assert!(csv.starts_with("id,organization,sequence,"));
        assert!(csv.lines().count() > e.logged.len());
        assert_eq!(
            e.export(pb::ExportFormat::Jsonl, &e.bob)
                .await
                .unwrap_err()
                .code(),
            Code::NotFound
        );
        e.w.logged_with(&e.ada, &e.acme, "audit.events.exported")
            .await;
        e.w.sandbox.shutdown().await.unwrap();
    }
}

async fn jsonl_streams_oldest_first_in_bounded_chunks(e: &Exports) {
    let jsonl = e.export(pb::ExportFormat::Jsonl, &e.ada).await.unwrap();
    assert!(jsonl.last().unwrap().last);
    assert!(
        jsonl
            .iter()
            .all(|c| c.content_type == "application/jsonl" && c.data.len() <= 1024 * 1024)
    );
    let lines: Vec<serde_json::Value> = text(&jsonl)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= e.logged.len());
    assert_eq!(
        lines[0]["sequence"], "1",
        "oldest first; 64-bit integers as strings"
    );
    assert_eq!(
        jsonl.iter().map(|c| c.event_count).sum::<i64>(),
        lines.len() as i64
    );
}

/// Acme, Ada's, its creation in the log.
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
        w.logged_with(&ada, &acme, "organization.created").await;
        Acme { w, ada, acme }
    }
}

#[tokio::test]
async fn a_huge_export_streams_in_chunks_and_oversized_metadata_is_cut_not_dropped() {
    for storage in storages() {
        let a = Acme::start(storage).await;
        let huge_id = many_events_and_an_oversized_one_are_published(&a).await;
        let total = oversized_metadata_is_cut_not_dropped(&a, &huge_id).await;
        the_export_streams_in_several_chunks(&a, total).await;
        a.w.sandbox.shutdown().await.unwrap();
    }
}

/// Events published on the bus as another service's relay would: many
/// with a kilobyte of payload, one far above the metadata cap; the id of
/// that one.
async fn many_events_and_an_oversized_one_are_published(a: &Acme) -> String {
    use prost::Message as _;
    use tenantry_kit::bus::{BusMessage, EventBus, LocalBus};
    use tenantry_proto::tenantry::events::v1 as events;
    let Acme { w, ada, acme } = a;
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
    huge_id
}

/// Every published event reaches the log, the oversized one cut: the
/// head's sequence.
async fn oversized_metadata_is_cut_not_dropped(a: &Acme, huge_id: &str) -> i64 {
    let Acme { w, ada, acme } = a;
    let total = eventually("every published event in the log", || async {
        let head = w
            .list(ada, &format!("organizations/{acme}"), None, 1, "")
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
    total
}

async fn the_export_streams_in_several_chunks(a: &Acme, total: i64) {
    let Acme { w, ada, acme } = a;
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
}
