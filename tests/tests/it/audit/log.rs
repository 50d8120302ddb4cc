//! What is logged, once per organization, and who may read it; refusals
//! with who and why.

use super::*;

/// Acme, Ada's, with the api project and Bob a member; Carol a stranger
/// and root a platform administrator.
struct Acme {
    w: World,
    root: User,
    ada: User,
    bob: User,
    carol: User,
    acme: String,
    project: String,
}

impl Acme {
    async fn start(storage: Storage) -> Acme {
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
        Acme {
            w,
            root,
            ada,
            bob,
            carol,
            acme,
            project,
        }
    }
}

#[tokio::test]
async fn every_change_is_logged_once_per_organization_and_read_only_by_its_auditors() {
    for storage in storages() {
        let a = Acme::start(storage).await;
        let events = the_changes_are_logged_once_in_one_chain(&a).await;
        filters_select_by_action_target_actor_and_outcome(&a).await;
        time_ranges_filter_and_bad_ranges_are_refused(&a, &events).await;
        pages_are_stable_under_concurrent_inserts(&a).await;
        only_auditors_read_and_platform_reads_are_logged(&a, &events).await;
        an_export_across_organizations_is_logged_too(&a).await;
        a.w.sandbox.shutdown().await.unwrap();
    }
}

async fn the_changes_are_logged_once_in_one_chain(a: &Acme) -> Vec<pb::AuditEvent> {
    let Acme {
        w,
        ada,
        acme,
        project,
        ..
    } = a;
    // The owner's membership, the project and bob's membership.
    // The log reads its writers' writes: no waiting.
    let events = w
        .list(ada, &format!("organizations/{acme}"), None, 1000, "")
        .await
        .expect("the log")
        .audit_events;
    let members = events
        .iter()
        .filter(|e| e.action == "organization.member.added")
        .count();
    assert_eq!(members, 2, "the owner's and bob's memberships");
    assert!(events.iter().any(|e| e.action == "project.created"));

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
    assert!(created.targets.iter().any(|t| t.id == *project));
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
    let verified = w.verify(ada, acme).await;
    assert!(verified.ok, "{verified:?}");
    assert!(verified.verified_count >= events.len() as i64);

    events
}

async fn filters_select_by_action_target_actor_and_outcome(a: &Acme) {
    let Acme {
        w,
        ada,
        acme,
        project,
        ..
    } = a;
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
}

async fn time_ranges_filter_and_bad_ranges_are_refused(a: &Acme, events: &[pb::AuditEvent]) {
    let Acme { w, ada, acme, .. } = a;
    let filtered = |filter: pb::AuditEventFilter| {
        let w = &w;
        let ada = &ada;
        let acme = acme.clone();
        async move {
            w.list(ada, &format!("organizations/{acme}"), Some(filter), 100, "")
                .await
        }
    };
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
}

async fn pages_are_stable_under_concurrent_inserts(a: &Acme) {
    let Acme { w, ada, acme, .. } = a;
    // Pages are stable under concurrent inserts.
    let parent = format!("organizations/{acme}");
    let first = w.list(ada, &parent, None, 2, "").await.unwrap();
    assert_eq!(first.audit_events.len(), 2);
    let expected: Vec<i64> = (1..=first.audit_events[0].sequence).rev().collect();
    w.project(ada, acme, "web").await;
    w.logged_with(ada, acme, "project.created").await;
    let mut paged: Vec<i64> = first.audit_events.iter().map(|e| e.sequence).collect();
    let mut token = first.next_page_token.clone();
    while !token.is_empty() {
        let page = w.list(ada, &parent, None, 2, &token).await.unwrap();
        paged.extend(page.audit_events.iter().map(|e| e.sequence));
        token = page.next_page_token;
    }
    assert_eq!(
        paged, expected,
        "later pages saw none of the new events and missed nothing"
    );
    let other_query = w
        .list(
            ada,
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
        w.list(ada, &parent, None, 2, &tampered)
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
}

async fn only_auditors_read_and_platform_reads_are_logged(a: &Acme, events: &[pb::AuditEvent]) {
    let Acme {
        w,
        root,
        ada,
        bob,
        carol,
        acme,
        ..
    } = a;
    let parent = format!("organizations/{acme}");
    let created = events
        .iter()
        .find(|e| e.action == "project.created")
        .unwrap();
    // Who may read: auditors (owner, admin); a member is denied, a
    // stranger finds nothing; across organizations only platform
    // administrators, and that read is itself logged.
    assert_eq!(
        w.list(bob, &parent, None, 10, "").await.unwrap_err().code(),
        Code::PermissionDenied
    );
    assert_eq!(
        w.list(carol, &parent, None, 10, "")
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
        w.list(ada, "organizations/-", None, 10, "")
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let everywhere = eventually("billing... the platform admin reaching audit", || async {
        w.list(root, "organizations/-", None, 1000, "").await.ok()
    })
    .await;
    assert!(
        everywhere
            .audit_events
            .iter()
            .any(|e| e.organization == format!("organizations/{acme}"))
    );
    let direct = w.list(root, &parent, None, 10, "").await.unwrap();
    assert!(
        !direct.audit_events.is_empty(),
        "administrators read any organization, audited"
    );
}

async fn an_export_across_organizations_is_logged_too(a: &Acme) {
    let Acme { w, root, .. } = a;
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
    let instance = w
        .list(
            root,
            "organizations/instance",
            Some(pb::AuditEventFilter {
                action: "audit.events.read_across_organizations".into(),
                ..Default::default()
            }),
            10,
            "",
        )
        .await
        .expect("the instance log");
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
    assert!(
        methods.iter().any(|m| m == "ListAuditEvents")
            && methods.iter().any(|m| m == "ExportAuditEvents"),
        "the cross-organization reads in the instance log: {methods:?}"
    );
}

/// Acme, Ada's, with Bob as a member and Carol a stranger.
struct Refusals {
    w: World,
    ada: User,
    bob: User,
    carol: User,
    acme: String,
}

impl Refusals {
    async fn start(storage: Storage) -> Refusals {
        let w = World::start(builder(storage)).await;
        let ada = w.user("ada@example.com").await;
        let bob = w.user("bob@example.com").await;
        let carol = w.user("carol@example.com").await;
        let acme = w.organization(&ada, "Acme").await;
        let member = ["roles/member"];
        tenantry_tests::people::join(
            &w.sandbox, &w.channel, &ada.token, &acme, &bob.token, &member,
        )
        .await;
        Refusals {
            w,
            ada,
            bob,
            carol,
            acme,
        }
    }

    async fn create_project(&self, user: &User, name: &str) -> tonic::Status {
        let request = org::CreateProjectRequest {
            parent: format!("organizations/{}", self.acme),
            project: Some(org::Project {
                display_name: name.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut projects = Projects::new(self.w.channel.clone());
        match projects.create_project(authed(request, &user.token)).await {
            Ok(_) => tonic::Status::ok(""),
            Err(status) => status,
        }
    }

    async fn invite(&self, user: &User, email: &str) -> tonic::Status {
        let request = rbac_pb::CreateInvitationRequest {
            parent: format!("organizations/{}", self.acme),
            invitation: Some(rbac_pb::Invitation {
                email: email.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut invitations = Invitations::new(self.w.channel.clone());
        match invitations
            .create_invitation(authed(request, &user.token))
            .await
        {
            Ok(_) => tonic::Status::ok(""),
            Err(status) => status,
        }
    }

    /// The four refusals recorded in Acme's log.
    async fn recorded(&self) -> Vec<pb::AuditEvent> {
        let acme = format!("organizations/{}", self.acme);
        let page = self
            .w
            .list(&self.ada, &acme, None, 1000, "")
            .await
            .expect("the log");
        let found: Vec<pb::AuditEvent> = page
            .audit_events
            .into_iter()
            .filter(|e| e.action == "organization.request.denied")
            .collect();
        assert_eq!(found.len(), 4, "the refusals in the log");
        found
    }
}

/// A string field of an event's metadata, empty when absent.
fn field(event: &pb::AuditEvent, key: &str) -> String {
    let value = event.metadata.as_ref().and_then(|m| m.fields.get(key));
    match value.and_then(|v| v.kind.clone()) {
        Some(prost_types::value::Kind::StringValue(s)) => s,
        _ => String::new(),
    }
}

fn actor(event: &pb::AuditEvent) -> &str {
    &event.actor.as_ref().unwrap().id
}

#[tokio::test]
async fn refusals_are_in_the_log_with_who_and_why() {
    for storage in storages() {
        let r = Refusals::start(storage).await;
        creates_are_refused_by_role_and_by_plan(&r).await;
        invitations_are_refused_by_role_and_by_seats(&r).await;
        let refusals = r.recorded().await;
        assert!(
            refusals.iter().all(|e| actor(e) != r.carol.id),
            "a stranger's NOT_FOUND is not recorded"
        );
        a_refused_invitation_says_who_and_why(&r, &refusals);
        a_refused_create_says_who_and_why(&r, &refusals);
        quota_refusals_name_the_metric_and_the_limit(&r, &refusals);
        r.w.sandbox.shutdown().await.unwrap();
    }
}

async fn creates_are_refused_by_role_and_by_plan(r: &Refusals) {
    // A member may not create projects; the owner fills the plan (three).
    let denied = r.create_project(&r.bob, "mine").await;
    assert_eq!(denied.code(), Code::PermissionDenied);
    for name in ["one", "two", "three"] {
        assert_eq!(r.create_project(&r.ada, name).await.code(), Code::Ok);
    }
    let over = r.create_project(&r.ada, "four").await;
    assert_eq!(over.code(), Code::ResourceExhausted);
}

async fn invitations_are_refused_by_role_and_by_seats(r: &Refusals) {
    // A member may not invite (rbac refuses and records it); a stranger is
    // told nothing exists, and nothing is recorded.
    for (who, code) in [(&r.carol, Code::NotFound), (&r.bob, Code::PermissionDenied)] {
        let refused = r.invite(who, "g@example.com").await;
        assert_eq!(refused.code(), code, "{refused:?}");
    }
    // Seats: ada and bob, three pending invitations fill FREE's five.
    for email in ["c@example.com", "d@example.com", "e@example.com"] {
        assert_eq!(r.invite(&r.ada, email).await.code(), Code::Ok);
    }
    let no_seat = r.invite(&r.ada, "f@example.com").await;
    assert_eq!(no_seat.code(), Code::ResourceExhausted);
}

fn a_refused_invitation_says_who_and_why(r: &Refusals, refusals: &[pb::AuditEvent]) {
    let invite_refused = refusals
        .iter()
        .find(|e| {
            field(e, "action") == "organization.members.invite"
                && field(e, "reason") == "PERMISSION_DENIED"
        })
        .expect("bob's refused invitation");
    assert_eq!(actor(invite_refused), r.bob.id);
    assert_eq!(invite_refused.source, "rbac");
    assert_eq!(field(invite_refused, "reason"), "PERMISSION_DENIED");
    assert_eq!(
        field(invite_refused, "permission"),
        "organization.members.invite"
    );
    assert!(invite_refused.targets.iter().any(|t| t.id == r.acme));
}

fn a_refused_create_says_who_and_why(r: &Refusals, refusals: &[pb::AuditEvent]) {
    let by_bob = refusals
        .iter()
        .find(|e| field(e, "action") == "project.create" && actor(e) == r.bob.id)
        .expect("bob's refusal");
    assert_eq!(by_bob.outcome, pb::Outcome::Denied as i32);
    assert_eq!(field(by_bob, "action"), "project.create");
    assert_eq!(field(by_bob, "reason"), "PERMISSION_DENIED");
    assert!(by_bob.targets.iter().any(|t| t.id == r.acme));
}

fn quota_refusals_name_the_metric_and_the_limit(r: &Refusals, refusals: &[pb::AuditEvent]) {
    let seat = refusals
        .iter()
        .find(|e| field(e, "metric") == "METRIC_MEMBERS")
        .expect("the seat refusal");
    assert_eq!(actor(seat), r.ada.id);
    assert_eq!(seat.source, "rbac");
    assert_eq!(field(seat, "limit"), "5");
    let by_ada = refusals
        .iter()
        .find(|e| field(e, "metric") == "METRIC_PROJECTS")
        .expect("ada's refusal");
    assert_eq!(actor(by_ada), r.ada.id);
    assert_eq!(by_ada.outcome, pb::Outcome::Denied as i32);
    assert_eq!(field(by_ada, "reason"), "QUOTA_EXCEEDED");
    assert_eq!(field(by_ada, "metric"), "METRIC_PROJECTS");
    assert_eq!(field(by_ada, "limit"), "3");
}
