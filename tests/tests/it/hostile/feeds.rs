//! The feeds through which writers hand their events to the authorization
//! index, billing and the audit log take them from Tenantry's own services
//! only: a tenant who forges a `project.deleted` to get its plan's unit
//! back, or an event to plant in its log, is refused and changes nothing.

use prost::Message;
use tenantry_proto::tenantry::audit::v1 as audit_pb;
use tenantry_proto::tenantry::billing::v1 as billing_pb;
use tenantry_proto::tenantry::events::v1 as events;
use tenantry_testkit::clients::Audit;

use super::*;

/// Ada's forged event: her project, deleted.
fn forged_deletion(organization: &str, project: &str) -> events::Event {
    let payload = events::ProjectDeleted {
        project_id: project.into(),
        organization_id: organization.into(),
        display_name: "Rocket".into(),
        purge_time: None,
    };
    events::Event {
        id: uuid::Uuid::now_v7().to_string(),
        r#type: "project.deleted".into(),
        source: "organization".into(),
        aggregate_type: "project".into(),
        aggregate_id: project.into(),
        sequence: 99,
        organization_id: organization.into(),
        root_organization_id: organization.into(),
        payload: Some(prost_types::Any {
            type_url: "type.googleapis.com/tenantry.events.v1.ProjectDeleted".into(),
            value: payload.encode_to_vec(),
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_tenant_cannot_feed_the_index_billing_or_the_log() {
    for storage in storages() {
        let w = World::with(
            storage,
            &[
                ServiceKind::Identity,
                ServiceKind::Organization,
                ServiceKind::Rbac,
                ServiceKind::Billing,
                ServiceKind::Audit,
            ],
        )
        .await;
        let (ada, acme) = w.sign_up("ada@example.com").await;
        let project = w.project(&ada.token, &acme).await.unwrap();
        let projects_used = || {
            tenantry_testkit::usage::own_usage(
                &w.channel,
                &ada.token,
                &acme,
                billing_pb::Metric::Projects,
            )
        };
        let before = projects_used().await;
        let forged = forged_deletion(&acme, &project);

        let to_billing = billing_pb::billing_feed_service_client::BillingFeedServiceClient::new(
            w.channel.clone(),
        )
        .apply_events(authed(
            billing_pb::ApplyEventsRequest {
                events: vec![forged.clone()],
            },
            &ada.token,
        ))
        .await;
        assert_eq!(to_billing.unwrap_err().code(), Code::PermissionDenied);
        let to_log =
            audit_pb::audit_feed_service_client::AuditFeedServiceClient::new(w.channel.clone())
                .apply_events(authed(
                    audit_pb::ApplyEventsRequest {
                        events: vec![forged.clone()],
                    },
                    &ada.token,
                ))
                .await;
        assert_eq!(to_log.unwrap_err().code(), Code::PermissionDenied);
        let to_index = authz::index_service_client::IndexServiceClient::new(w.channel.clone())
            .apply_events(authed(
                authz::ApplyEventsRequest {
                    events: vec![forged.clone()],
                },
                &ada.token,
            ))
            .await;
        assert_eq!(to_index.unwrap_err().code(), Code::PermissionDenied);
        // With no credential at all, the same.
        let anonymous = billing_pb::billing_feed_service_client::BillingFeedServiceClient::new(
            w.channel.clone(),
        )
        .apply_events(billing_pb::ApplyEventsRequest {
            events: vec![forged.clone()],
        })
        .await;
        assert_eq!(anonymous.unwrap_err().code(), Code::Unauthenticated);

        // Nothing changed: the project counts, is there, and the log holds
        // no such event.
        assert_eq!(projects_used().await, before);
        assert_eq!(
            w.projects(&ada.token, &acme).await.unwrap().len(),
            2,
            "the default project and Rocket"
        );
        let log = Audit::new(w.channel.clone())
            .list_audit_events(authed(
                audit_pb::ListAuditEventsRequest {
                    parent: format!("organizations/{acme}"),
                    page_size: 1000,
                    ..Default::default()
                },
                &ada.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .audit_events;
        assert!(log.iter().any(|e| e.action == "project.created"));
        assert!(!log.iter().any(|e| e.action == "project.deleted"));
        w.sandbox.shutdown().await.unwrap();
    }
}
