//! Billing at /console/billing: usage against the limits as billing
//! counts it, the page refused in words to a member (and no link to it),
//! and a plan change shown at once, refused to a member with nothing
//! changed.

use super::keys::{Org, request_id};
use super::*;
use tenantry_proto::tenantry::billing::v1 as billing;
use tenantry_testkit::authed;
use tenantry_testkit::clients::{Subscriptions, Usage};

/// The organization's usage, as billing reports it to the owner.
async fn usage(org: &Org) -> Vec<billing::MetricUsage> {
    Usage::new(org.channel.clone())
        .get_usage(authed(
            billing::GetUsageRequest {
                organization: org.name(),
                ..Default::default()
            },
            &org.owner.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .usages
}

/// The organization's plan (`plans/…`), the free plan with no subscription.
async fn plan(org: &Org) -> String {
    Subscriptions::new(org.channel.clone())
        .get_subscription(authed(
            billing::GetSubscriptionRequest {
                name: format!("{}/subscription", org.name()),
            },
            &org.owner.token,
        ))
        .await
        .map(|s| s.into_inner().subscription.unwrap().plan)
        .unwrap_or_else(|_| "plans/free".into())
}

#[tokio::test]
async fn the_page_shows_usage_against_every_limit_as_billing_counts_it() {
    let mut org = Org::start().await;
    let page = org.ada.get("/console/billing").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Current plan: Free"), "{}", page.body);
    let usages = usage(&org).await;
    assert!(!usages.is_empty());
    for usage in &usages {
        let Some(limit) = usage.limit else { continue };
        let words = format!("{} of {limit} ", usage.subtree_quantity);
        assert!(page.body.contains(&words), "{words} in {}", page.body);
    }
    // The organization's default project, as words and as a meter.
    assert!(page.body.contains("1 of 3 projects"), "{}", page.body);
    assert!(page.body.contains("<meter"));
    assert!(page.body.contains(r#"aria-label="Switch to Starter""#));
}

#[tokio::test]
async fn a_member_gets_no_billing_link_and_a_refusal_in_words() {
    let mut org = Org::start().await;
    let overview = org.bob.get("/console/").await;
    assert_eq!(overview.status, StatusCode::OK);
    assert!(!overview.body.contains(r#"href="/console/billing""#));
    let page = org.bob.get("/console/billing").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(page.body.contains("billing.read"), "{}", page.body);
    assert!(!page.body.contains("<meter"));
}

#[tokio::test]
async fn a_plan_change_shows_the_new_plan() {
    let mut org = Org::start().await;
    let page = org.ada.get("/console/billing").await;
    let (csrf, id) = (page.csrf(), request_id(&page));
    let form = [
        ("csrf", csrf.as_str()),
        ("request_id", id.as_str()),
        ("plan", "plans/starter"),
        // Sign-up subscribed the organization to the free plan.
        ("subscribed", "yes"),
        ("billing_email", "finance@example.com"),
        ("currency_code", "USD"),
    ];
    let changed = org.ada.post("/console/billing", &form).await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.body);
    assert_eq!(changed.location(), "/console/billing");
    assert_eq!(plan(&org).await, "plans/starter");
    let page = org.ada.get("/console/billing").await;
    assert!(page.body.contains("Current plan: Starter"), "{}", page.body);
    assert!(page.body.contains("1 of 10 projects"), "{}", page.body);
    assert!(page.body.contains("Upcoming invoice"));
    assert!(
        page.body.contains("USD"),
        "the invoice preview: {}",
        page.body
    );
}

#[tokio::test]
async fn a_member_cannot_change_the_plan_and_nothing_changes() {
    let mut org = Org::start().await;
    let csrf = org.bob.get("/console/").await.csrf();
    let id = uuid::Uuid::now_v7().to_string();
    let form = [
        ("csrf", csrf.as_str()),
        ("request_id", id.as_str()),
        ("plan", "plans/starter"),
        ("billing_email", "bob@example.com"),
        ("currency_code", "USD"),
    ];
    let refused = org.bob.post("/console/billing", &form).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.body.contains(r#"role="alert""#), "{}", refused.body);
    assert!(refused.body.contains("billing.read"), "{}", refused.body);
    assert_eq!(plan(&org).await, "plans/free", "nothing changed");
}
