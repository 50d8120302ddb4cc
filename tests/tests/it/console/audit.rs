//! The audit log at /console/audit: the events of what was done at the
//! console, filters narrowing them, the export of the filtered events as a
//! download, the chain's verification, and refusals in words.

use super::keys::{Org, create_key};
use super::*;
use tenantry_proto::tenantry::audit::v1 as audit;
use tenantry_proto::tenantry::identity::v1 as identity;
use tenantry_proto::tenantry::organization::v1 as organization;
use tenantry_testkit::authed;
use tenantry_testkit::clients::{Audit, Keys, Projects};

/// A key created and revoked at the console, and both events in the
/// audit log when the revocation has answered.
async fn key_made_and_revoked() -> Org {
    let mut org = Org::start().await;
    let created = create_key(&mut org.ada, "ci", &["project.read"]).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let key = org.keys().await.remove(0);
    let csrf = created.csrf();
    let form = [("csrf", csrf.as_str()), ("name", key.name.as_str())];
    let revoked = org.ada.post("/console/api-keys/revoke", &form).await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.body);
    // The log shows both at once: the console's writes hand it their events.
    let listed = Audit::new(org.channel.clone())
        .list_audit_events(authed(
            audit::ListAuditEventsRequest {
                parent: org.name(),
                page_size: 100,
                ..Default::default()
            },
            &org.owner.token,
        ))
        .await
        .unwrap()
        .into_inner();
    let actions: Vec<_> = listed
        .audit_events
        .iter()
        .map(|e| e.action.as_str())
        .collect();
    assert!(
        actions.contains(&"identity.api_key.created")
            && actions.contains(&"identity.api_key.revoked"),
        "{actions:?}"
    );
    org
}

/// The id of the organization's default project.
async fn default_project(org: &Org) -> String {
    let listed = Projects::new(org.channel.clone())
        .list_projects(authed(
            organization::ListProjectsRequest {
                parent: org.name(),
                ..Default::default()
            },
            &org.owner.token,
        ))
        .await
        .unwrap()
        .into_inner();
    let name = &listed.projects[0].name;
    name.rsplit('/').next().unwrap().to_string()
}

#[tokio::test]
async fn the_log_lists_the_events_and_filters_narrow_them() {
    let mut org = key_made_and_revoked().await;
    let all = org.ada.get("/console/audit").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    assert!(
        all.body.contains("identity.api_key.created"),
        "{}",
        all.body
    );
    assert!(all.body.contains("identity.api_key.revoked"));
    assert!(all.body.contains("Ada"), "the actor");

    let revoked = org
        .ada
        .get("/console/audit?action=identity.api_key.revoked")
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert!(revoked.body.contains("identity.api_key.revoked"));
    assert!(
        !revoked
            .body
            .contains("<code>identity.api_key.created</code>"),
        "{}",
        revoked.body
    );

    let keys = org.ada.get("/console/audit?action=identity.api_key.").await;
    assert!(keys.body.contains("<code>identity.api_key.created</code>"));
    assert!(keys.body.contains("<code>identity.api_key.revoked</code>"));
    assert!(!keys.body.contains("<code>project.created</code>"));

    // Targets: the default project's own events only.
    let project = default_project(&org).await;
    let about = org
        .ada
        .get(&format!("/console/audit?target=project:{project}"))
        .await;
    assert!(!about.body.contains("No events match"), "{}", about.body);
    assert!(about.body.contains(&project));
    assert!(!about.body.contains("<code>identity.api_key.created</code>"));

    let future = org.ada.get("/console/audit?from=2999-01-01").await;
    assert_eq!(future.status, StatusCode::OK);
    assert!(future.body.contains("No events match"), "{}", future.body);

    let bad = org.ada.get("/console/audit?from=yesterday").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("must be a date"), "{}", bad.body);
}

#[tokio::test]
async fn the_export_holds_the_filtered_events_and_the_chain_verifies() {
    let mut org = key_made_and_revoked().await;
    let export = org
        .ada
        .get("/console/audit/export?action=identity.api_key.created&format=jsonl")
        .await;
    assert_eq!(export.status, StatusCode::OK, "{}", export.body);
    let disposition = export.headers[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    let lines: Vec<&str> = export.body.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 1, "{}", export.body);
    assert!(lines[0].contains("identity.api_key.created"));

    let csv = org.ada.get("/console/audit/export?format=csv").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(
        csv.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(csv.body.contains("identity.api_key.revoked"));

    let verified = org.ada.get("/console/audit/verify").await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    assert!(
        verified.body.contains("Chain verified up to event"),
        "{}",
        verified.body
    );
}

#[tokio::test]
async fn a_member_is_refused_the_log_and_its_export_in_words() {
    let mut org = Org::start().await;
    let overview = org.bob.get("/console/").await;
    assert!(!overview.body.contains(r#"href="/console/audit""#));
    for path in [
        "/console/audit",
        "/console/audit/export?format=csv",
        "/console/audit/verify",
    ] {
        let page = org.bob.get(path).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}: {}", page.body);
        assert!(page.body.contains("audit.read"), "{path}: {}", page.body);
        assert!(page.headers.get(header::CONTENT_DISPOSITION).is_none());
    }
}

/// Creates and revokes `pairs` keys as the owner, through the API.
async fn churn_keys(org: &Org, pairs: usize) {
    let mut keys = Keys::new(org.channel.clone());
    for n in 0..pairs {
        let key = identity::ApiKey {
            display_name: format!("churn-{n}"),
            permissions: vec!["project.read".into()],
            ..Default::default()
        };
        let request = identity::CreateApiKeyRequest {
            parent: org.name(),
            api_key: Some(key),
            request_id: String::new(),
        };
        let created = keys
            .create_api_key(authed(request, &org.owner.token))
            .await
            .unwrap()
            .into_inner();
        let name = created.api_key.unwrap().name;
        let request = identity::RevokeApiKeyRequest { name };
        keys.revoke_api_key(authed(request, &org.owner.token))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn pages_follow_each_other_and_keep_the_filters() {
    let mut org = Org::start().await;
    // One key after another on the free plan's 3: a revoked key's unit is
    // free for the next create at once.
    churn_keys(&org, 12).await;
    let filter = audit::AuditEventFilter {
        action_prefix: "identity.api_key.".into(),
        ..Default::default()
    };
    let request = audit::ListAuditEventsRequest {
        parent: org.name(),
        page_size: 100,
        filter: Some(filter),
        ..Default::default()
    };
    let listed = Audit::new(org.channel.clone())
        .list_audit_events(authed(request, &org.owner.token))
        .await
        .unwrap();
    assert_eq!(
        listed.into_inner().audit_events.len(),
        24,
        "24 key events in the log"
    );
    let first = org.ada.get("/console/audit?action=identity.api_key.").await;
    assert_eq!(
        first.body.matches("<tr>").count(),
        1 + 20,
        "a header and 20 rows"
    );
    let link = first.body.find(">Next page<").expect("a next page");
    let start = first.body[..link].rfind(r#"href=""#).unwrap() + 6;
    let next = first.body[start..]
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    assert!(
        next.contains("action=identity.api_key.") && next.contains("page_token="),
        "{next}"
    );
    let second = org.ada.get(&next).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(
        second.body.matches("<tr>").count(),
        1 + 4,
        "{}",
        second.body
    );
    assert!(!second.body.contains(">Next page<"));
}
