//! What the edge puts in the audit log: StrictOps' journey and counted
//! rate-limit bursts.

use super::*;

/// StrictOps' admin, signed up over REST with the organization.
struct StrictOps {
    sandbox: Sandbox,
    rest: Rest,
    admin: SignedUp,
    org: String,
}

impl StrictOps {
    async fn start(storage: tenantry_testkit::Storage) -> StrictOps {
        let sandbox = start(storage, |_| {}).await;
        let rest = Rest::new(sandbox.http_url());
        let admin = sign_up(&rest, "admin@strictops.example", json!({})).await;
        let org = admin.organization.clone();
        StrictOps {
            sandbox,
            rest,
            admin,
            org,
        }
    }
}

/// StrictOps, over REST as its customers' tools call it: the admin signs
/// up (the organization comes with it), sees the tiers and starts on FREE;
/// a customer joins by invitation and may not create projects; custom
/// roles wait for a paid tier, which one call reaches; every answer carries
/// its rate limit; and the audit log holds each step, refusals included.
#[tokio::test]
async fn strictops_signs_up_picks_a_tier_and_audits_everything() {
    for storage in storages() {
        let s = StrictOps::start(storage).await;
        the_tiers_are_listed_and_the_organization_starts_on_free(&s).await;
        a_customer_joins_by_invitation_and_creates_no_projects(&s).await;
        custom_roles_wait_for_a_paid_tier_that_one_call_reaches(&s).await;
        the_audit_log_holds_every_step_refusals_included(&s).await;
        s.sandbox.shutdown().await.unwrap();
    }
}

async fn the_tiers_are_listed_and_the_organization_starts_on_free(s: &StrictOps) {
    let StrictOps {
        rest, admin, org, ..
    } = s;
    // The tiers, and the one the organization starts on.
    let plans = rest.ok("GET", "/v1/plans", Some(&admin.token), None).await;
    let tiers: Vec<&str> = plans["plans"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["tier"].as_str())
        .collect();
    for tier in [
        "PLAN_TIER_FREE",
        "PLAN_TIER_STARTER",
        "PLAN_TIER_PROFESSIONAL",
        "PLAN_TIER_ENTERPRISE",
    ] {
        assert!(tiers.contains(&tier), "{tier} in {tiers:?}");
    }
    let subscription = rest
        .ok(
            "GET",
            &format!("/v1/{org}/subscription"),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(subscription["subscription"]["plan"], "plans/free");
}

async fn a_customer_joins_by_invitation_and_creates_no_projects(s: &StrictOps) {
    let StrictOps {
        sandbox,
        rest,
        admin,
        org,
    } = s;
    // A customer joins by invitation; customers do not create projects.
    rest.ok(
        "POST",
        &format!("/v1/{org}/invitations"),
        Some(&admin.token),
        Some(json!({"email": "customer@client.example", "roles": ["roles/member"]})),
    )
    .await;
    let token = sandbox
        .mail_token("customer@client.example", "invitation")
        .expect("the invitation was mailed");
    let customer = sign_up(
        rest,
        "customer@client.example",
        json!({"invitationToken": token}),
    )
    .await;
    assert_eq!(customer.organization, *org);
    let refused = rest
        .call(
            "POST",
            &format!("/v1/{org}/projects"),
            Some(&customer.token),
            Some(json!({"displayName": "Mine"})),
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert_eq!(count_projects(rest, org, &admin.token).await, 1);
}

async fn custom_roles_wait_for_a_paid_tier_that_one_call_reaches(s: &StrictOps) {
    let StrictOps {
        rest, admin, org, ..
    } = s;
    // Custom roles wait for a paid tier; one call upgrades.
    let role =
        json!({"displayName": "Auditor", "permissions": ["organization.read", "audit.read"]});
    let on_free = rest
        .call(
            "POST",
            &format!("/v1/{org}/roles"),
            Some(&admin.token),
            Some(role.clone()),
        )
        .await;
    assert_eq!(on_free.status, 400, "{}", on_free.text);
    assert_eq!(on_free.reason().as_deref(), Some("FEATURE_NOT_INCLUDED"));
    let upgraded = rest
        .ok(
            "POST",
            &format!("/v1/{org}/subscription:changePlan"),
            Some(&admin.token),
            Some(json!({
                "plan": "plans/starter",
                "newBillingAccount": {
                    "displayName": "StrictOps billing",
                    "currencyCode": "USD",
                    "billingEmail": "billing@strictops.example",
                },
            })),
        )
        .await;
    assert_eq!(upgraded["subscription"]["plan"], "plans/starter");
    let created = rest
        .call(
            "POST",
            &format!("/v1/{org}/roles"),
            Some(&admin.token),
            Some(role),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.text);
    // Every answer says where the caller stands against its limit.
    assert!(created.header("ratelimit-limit").is_some());
    assert!(created.header("ratelimit-remaining").is_some());
}

async fn the_audit_log_holds_every_step_refusals_included(s: &StrictOps) {
    let StrictOps {
        rest, admin, org, ..
    } = s;
    // The audit log holds every step, the customer's refusal included.
    let wanted = [
        "organization.created",
        "organization.member.invited",
        "organization.member.invitation_accepted",
        "organization.request.denied",
        "billing.subscription.changed",
        "role.created",
    ];
    let mut actions: Vec<String> = Vec::new();
    for _ in 0..400 {
        let page = rest
            .ok(
                "GET",
                &format!("/v1/{org}/auditEvents?pageSize=200"),
                Some(&admin.token),
                None,
            )
            .await;
        actions = page["auditEvents"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|e| e["action"].as_str().map(str::to_string))
            .collect();
        if wanted.iter().all(|w| actions.iter().any(|a| a == w)) {
            break;
        }
        // The log is fed by the event bus: it is allowed to be late.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    for action in wanted {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }
}

/// A field of an audit event's metadata, as text (64-bit numbers are JSON
/// strings).
fn metadata_field(event: &audit_pb::AuditEvent, field: &str) -> String {
    use prost_types::value::Kind;
    match event
        .metadata
        .as_ref()
        .and_then(|m| m.fields.get(field))
        .and_then(|v| v.kind.as_ref())
    {
        Some(Kind::StringValue(text)) => text.clone(),
        Some(Kind::NumberValue(n)) => n.to_string(),
        other => panic!("metadata `{field}`: {other:?}"),
    }
}

/// A server on SQLite whose free plan allows five reads a minute, with
/// rate-limit counts sent each second; Ada and Bob signed up, each with an
/// organization of their own.
struct Bursts {
    sandbox: Sandbox,
    rest: Rest,
    audit: audit_pb::audit_service_client::AuditServiceClient<tonic::transport::Channel>,
    ada: SignedUp,
    bob: SignedUp,
    _catalog: tempfile::TempDir,
}

impl Bursts {
    async fn start(storage: tenantry_testkit::Storage) -> Bursts {
        let catalog = tempfile::tempdir().unwrap();
        let path = catalog.path().join("plans.toml");
        std::fs::write(
            &path,
            "[plans.free]\ndisplay_name = \"Free\"\ncurrency_code = \"USD\"\n\
             [plans.free.limits.rate_limits_per_minute]\nread = 5\nwrite = 600\nauth = 600\nexpensive = 60\n",
        )
        .unwrap();
        let sandbox = start(storage, move |config| {
            config.billing.catalog_file = Some(path);
            config.gateway.rate_limit_audit_window_secs = 1;
        })
        .await;
        let rest = Rest::new(sandbox.http_url());
        let ada = sign_up(&rest, "ada@example.com", json!({})).await;
        let bob = sign_up(&rest, "bob@example.com", json!({})).await;
        // Read over gRPC so reading spends no budget.
        let channel = sandbox.channel().await.unwrap();
        let audit = audit_pb::audit_service_client::AuditServiceClient::new(channel);
        Bursts {
            sandbox,
            rest,
            audit,
            ada,
            bob,
            _catalog: catalog,
        }
    }

    /// The rate-limit rows in the log of `whose` organization.
    async fn rate_limited(&self, whose: &SignedUp) -> Vec<audit_pb::AuditEvent> {
        let filter = audit_pb::AuditEventFilter {
            action: "gateway.requests.rate_limited".into(),
            ..Default::default()
        };
        let request = audit_pb::ListAuditEventsRequest {
            parent: whose.organization.clone(),
            page_size: 100,
            filter: Some(filter),
            ..Default::default()
        };
        let mut audit = self.audit.clone();
        let listed = audit.list_audit_events(authed(request, &whose.token));
        listed.await.unwrap().into_inner().audit_events
    }
}

#[tokio::test]
async fn rate_limited_bursts_reach_the_organization_audit_log_counted_not_row_by_row() {
    let b = Bursts::start(tenantry_testkit::Storage::Sqlite).await;
    let refused = a_burst_of_reads_is_refused_past_the_limit(&b).await;
    let rows = the_log_counts_the_refusals_in_a_row_or_two(&b, refused).await;
    let forged = forged_report(&b.bob, &rows[0]);
    a_members_report_is_refused_and_writes_nothing(&b, forged.clone()).await;
    a_made_up_edge_credential_is_no_credential(&b, forged).await;
    b.sandbox.shutdown().await.unwrap();
}

/// How many of the burst were refused.
async fn a_burst_of_reads_is_refused_past_the_limit(b: &Bursts) -> u64 {
    // A burst of reads: five pass, the rest are refused.
    let mut refused = 0u64;
    for _ in 0..12 {
        let reply = b.rest.call("GET", "/v1/me", Some(&b.ada.token), None).await;
        match reply.status {
            200 => {}
            429 => refused += 1,
            other => panic!("{other}: {}", reply.text),
        }
    }
    assert!(refused >= 7, "{refused} refused");
    refused
}

async fn the_log_counts_the_refusals_in_a_row_or_two(
    b: &Bursts,
    refused: u64,
) -> Vec<audit_pb::AuditEvent> {
    let ada = &b.ada;
    // The log says so in a row or two (a window may close mid-burst), not
    // a row per request.
    // Counts go out when their window closes (a second here) and reach
    // the log through the event pipeline: both later by design.
    let counted = |rows: &[audit_pb::AuditEvent]| -> u64 {
        rows.iter()
            .map(|e| metadata_field(e, "count").parse::<u64>().unwrap())
            .sum()
    };
    let rows = eventually("every refusal counted in the log", || async {
        let rows = b.rate_limited(ada).await;
        assert!(
            counted(&rows) <= refused,
            "counted more than {refused} refused"
        );
        (counted(&rows) == refused).then_some(rows)
    })
    .await;
    assert!((1..=2).contains(&rows.len()), "{} rows", rows.len());
    for row in &rows {
        let actor = row.actor.as_ref().unwrap();
        assert_eq!(actor.id, ada.id);
        assert_eq!(actor.display_name, "ada@example.com");
        assert_eq!(row.outcome, audit_pb::Outcome::Denied as i32);
        assert_eq!(metadata_field(row, "class"), "read");
        assert_eq!(metadata_field(row, "limitPerMinute"), "5");
        assert!(
            row.targets
                .iter()
                .any(|t| format!("organizations/{}", t.id) == ada.organization),
            "{:?}",
            row.targets
        );
    }
    assert!(
        b.rate_limited(&b.bob).await.is_empty(),
        "another organization's log holds none of it"
    );
    rows
}

/// A report of a thousand refusals in `victim`'s organization, by the
/// actor of a real row.
fn forged_report(
    victim: &SignedUp,
    row: &audit_pb::AuditEvent,
) -> audit_pb::ReportRateLimitedRequest {
    let now = prost_types::Timestamp {
        seconds: 1_800_000_000,
        nanos: 0,
    };
    let forged_burst = audit_pb::RateLimitedBurst {
        id: "forged".into(),
        organization_id: id(&victim.organization),
        actor: row
            .actor
            .clone()
            .map(|a| tenantry_proto::tenantry::events::v1::Actor {
                kind: a.kind,
                id: a.id,
                display_name: a.display_name,
            }),
        class: "read".into(),
        count: 1000,
        limit_per_minute: 5,
        window_start_time: Some(now),
        window_end_time: Some(now),
        ..Default::default()
    };
    audit_pb::ReportRateLimitedRequest {
        bursts: vec![forged_burst],
    }
}

async fn edge_reports(
    b: &Bursts,
) -> audit_pb::edge_report_service_client::EdgeReportServiceClient<tonic::transport::Channel> {
    let channel = b.sandbox.channel().await.unwrap();
    audit_pb::edge_report_service_client::EdgeReportServiceClient::new(channel)
}

async fn a_members_report_is_refused_and_writes_nothing(
    b: &Bursts,
    report: audit_pb::ReportRateLimitedRequest,
) {
    // Only the gateway reports: a member's call is refused and writes
    // nothing.
    let denied = edge_reports(b)
        .await
        .report_rate_limited(authed(report, &b.ada.token))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
}

async fn a_made_up_edge_credential_is_no_credential(
    b: &Bursts,
    report: audit_pb::ReportRateLimitedRequest,
) {
    let expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 30;
    let mut made_up = tonic::Request::new(report);
    made_up.metadata_mut().insert(
        tenantry_kit::auth::internal::HEADER,
        format!("gateway.{expiry}.{}", "00".repeat(32))
            .parse()
            .unwrap(),
    );
    let edge = edge_reports(b).await.report_rate_limited(made_up).await;
    assert_eq!(edge.unwrap_err().code(), tonic::Code::Unauthenticated);
    assert!(
        b.rate_limited(&b.bob).await.is_empty(),
        "nothing was written"
    );
}
