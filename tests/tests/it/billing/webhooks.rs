//! The provider's webhooks: verified, applied once, and past due.

use super::*;

/// Acme, Ada's, on the professional plan with two seats, paid from its
/// workspace's account; the event tap open.
struct Acme {
    w: World,
    tap: EventTap,
    ada: User,
    acme: String,
    account: pb::BillingAccount,
}

impl Acme {
    async fn start(storage: Storage) -> Acme {
        let w = World::start(storage).await;
        let tap = w.tap().await;
        let ada = w.user("ada@example.com").await;
        let acme = w.organization(&ada, "Acme", None, None).await;
        w.subscribed(&ada, &acme).await;
        let workspace = w.organization_workspace(&ada, &acme).await;
        let account = w.account(&ada, &workspace, None).await;
        w.pay_with(&ada, &acme, &account).await;
        w.change_plan(&ada, &acme, "professional", Some(2))
            .await
            .unwrap();

        Acme {
            w,
            tap,
            ada,
            acme,
            account,
        }
    }
}

#[tokio::test]
async fn webhooks_are_verified_applied_once_and_past_due_blocks_creation() {
    for storage in storages() {
        let mut a = Acme::start(storage).await;
        a_linked_customer_is_applied_once(&mut a).await;
        let failed = forged_stale_and_unknown_events_are_refused(&mut a).await;
        a_failed_payment_is_past_due_and_blocks_creation(&mut a, &failed).await;
        a_repeated_event_changes_nothing_and_a_payment_restores_creation(&mut a, &failed).await;
        the_invoice_preview_counts_seats_and_usage_in_cents(&mut a).await;
        a_subscription_deleted_at_the_provider_ends_here(&mut a).await;
        a.w.sandbox.shutdown().await.unwrap();
    }
}

async fn a_linked_customer_is_applied_once(a: &mut Acme) {
    let Acme {
        w,
        ada,
        acme,
        account,
        ..
    } = a;
    let linked = serde_json::json!({
        "id": "evt_link", "type": "customer.subscription.created",
        "data": {"object": {"id": "sub_1", "customer": "cus_1", "status": "active",
            "metadata": {"tenantry_organization_id": acme, "tenantry_billing_account_id": id(&account.name)}}}
    });
    let outcome = w
        .webhook("stripe", &linked, now_secs(), SECRET)
        .await
        .unwrap();
    assert_eq!(
        outcome.outcome,
        pb::handle_provider_event_response::Outcome::Processed as i32
    );
    let linked_account = w
        .accounts()
        .get_billing_account(authed(
            pb::GetBillingAccountRequest {
                name: account.name.clone(),
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .billing_account
        .unwrap();
    assert_eq!(
        (
            linked_account.provider.as_str(),
            linked_account.provider_customer_id.as_str()
        ),
        ("stripe", "cus_1")
    );
}

async fn forged_stale_and_unknown_events_are_refused(a: &mut Acme) -> serde_json::Value {
    let Acme { w, ada, acme, .. } = a;
    // Forged, stale and unknown: refused, nothing applied.
    let failed = serde_json::json!({
        "id": "evt_fail", "type": "invoice.payment_failed",
        "data": {"object": {"id": "in_1", "customer": "cus_1", "amount_due": 11500, "currency": "usd"}}
    });
    assert_status(
        w.webhook("stripe", &failed, now_secs(), "whsec_forged_secret_000")
            .await,
        Code::Unauthenticated,
        "BAD_SIGNATURE",
    );
    assert_status(
        w.webhook("stripe", &failed, now_secs() - 3600, SECRET)
            .await,
        Code::Unauthenticated,
        "TIMESTAMP_OUT_OF_TOLERANCE",
    );
    assert_status(
        w.webhook("paypal", &failed, now_secs(), SECRET).await,
        Code::NotFound,
        "",
    );
    assert_eq!(
        w.subscription(ada, acme).await.unwrap().state,
        pb::subscription::State::Active as i32
    );

    failed
}

async fn a_failed_payment_is_past_due_and_blocks_creation(
    a: &mut Acme,
    failed: &serde_json::Value,
) {
    let Acme {
        w, tap, ada, acme, ..
    } = a;
    // A failed payment: past due, creation refused, nothing deleted.
    let outcome = w
        .webhook("stripe", failed, now_secs(), SECRET)
        .await
        .unwrap();
    assert_eq!(
        outcome.outcome,
        pb::handle_provider_event_response::Outcome::Processed as i32
    );
    tap.expect("billing.invoice.payment_failed", EVENT_WAIT)
        .await
        .unwrap();
    assert_eq!(
        w.subscription(ada, acme).await.unwrap().state,
        pb::subscription::State::PastDue as i32
    );
    assert_status(
        w.create_project(ada, acme, "blocked").await,
        Code::FailedPrecondition,
        "SUBSCRIPTION_PAST_DUE",
    );
    let check = w.check(ada, acme, pb::Metric::Projects, 1).await.unwrap();
    assert_eq!(
        check.reason,
        pb::check_quota_response::Reason::SubscriptionPastDue as i32
    );
}

async fn a_repeated_event_changes_nothing_and_a_payment_restores_creation(
    a: &mut Acme,
    failed: &serde_json::Value,
) {
    let Acme { w, ada, acme, .. } = a;
    // The same event again changes nothing; a payment restores creation.
    let paid = serde_json::json!({
        "id": "evt_paid", "type": "invoice.paid",
        "data": {"object": {"id": "in_1", "customer": "cus_1", "amount_paid": 11500, "currency": "usd"}}
    });
    w.webhook("stripe", &paid, now_secs(), SECRET)
        .await
        .unwrap();
    assert_eq!(
        w.subscription(ada, acme).await.unwrap().state,
        pb::subscription::State::Active as i32
    );
    let duplicate = w
        .webhook("stripe", failed, now_secs(), SECRET)
        .await
        .unwrap();
    assert_eq!(
        duplicate.outcome,
        pb::handle_provider_event_response::Outcome::Duplicate as i32
    );
    assert_eq!(
        w.subscription(ada, acme).await.unwrap().state,
        pb::subscription::State::Active as i32
    );
    w.create_project(ada, acme, "unblocked").await.unwrap();
    let other =
        serde_json::json!({"id": "evt_other", "type": "charge.refunded", "data": {"object": {}}});
    let ignored = w
        .webhook("stripe", &other, now_secs(), SECRET)
        .await
        .unwrap();
    assert_eq!(
        ignored.outcome,
        pb::handle_provider_event_response::Outcome::Ignored as i32
    );
}

async fn the_invoice_preview_counts_seats_and_usage_in_cents(a: &mut Acme) {
    let Acme {
        w,
        ada,
        acme,
        account,
        ..
    } = a;
    // The invoice preview: plan, bought seats and metered usage above
    // what the plan includes, in cents.
    w.record(ada, acme, pb::Metric::Deployments, 6_000, "big-deploy")
        .await
        .unwrap();
    let preview = Invoices::new(w.channel.clone())
        .preview_invoice(authed(
            pb::PreviewInvoiceRequest {
                billing_account: account.name.clone(),
                period_time: None,
            },
            &ada.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .invoice_preview
        .unwrap();
    let amounts: Vec<(i32, i64, i64)> = preview
        .lines
        .iter()
        .map(|l| (l.kind, l.billable_quantity, l.amount_minor_units))
        .collect();
    assert_eq!(
        amounts,
        [
            (pb::invoice_line::Kind::Plan as i32, 1, 9_900),
            (pb::invoice_line::Kind::Seats as i32, 2, 2_400),
            (pb::invoice_line::Kind::MeteredUsage as i32, 1_000, 1_000),
        ]
    );
    assert_eq!(preview.total_minor_units, 13_300);
    assert_eq!(preview.currency_code, "USD");
}

async fn a_subscription_deleted_at_the_provider_ends_here(a: &mut Acme) {
    let Acme { w, ada, acme, .. } = a;
    // The deleted subscription at the provider ends it here.
    let deleted = serde_json::json!({
        "id": "evt_del", "type": "customer.subscription.deleted",
        "data": {"object": {"id": "sub_1", "customer": "cus_1", "status": "canceled", "metadata": {}}}
    });
    w.webhook("stripe", &deleted, now_secs(), SECRET)
        .await
        .unwrap();
    assert_eq!(
        w.subscription(ada, acme).await.unwrap().state,
        pb::subscription::State::Canceled as i32
    );
}
