//! Billing of the active organization: its plan, its usage against every
//! limit, changing the plan, and the upcoming invoice. For Owner and
//! Finance (`billing.read` to see, `billing.manage` to change); billing
//! decides every call.

use std::sync::Arc;

use axum::Router;
use axum::response::Response;
use axum::routing::get;
use http::StatusCode;
use maud::{Markup, html};
use serde::Deserialize;
use tenantry_kit::peer::PeerChannel;
use tenantry_kit::permission::Permission;
use tenantry_proto::tenantry::billing::v1 as billing;

use super::overview::no_organization;
use super::{Console, Posted, Shared, Signed, View};
use crate::calls::Failure;
use crate::pages::{csrf, failure, request_id, when};

pub fn routes() -> Router<Arc<Console>> {
    Router::new().route("/console/billing", get(page).post(change_plan))
}

/// The billing clients, all on the billing channel.
struct Clients {
    subscriptions: billing::subscription_service_client::SubscriptionServiceClient<PeerChannel>,
    plans: billing::plan_service_client::PlanServiceClient<PeerChannel>,
    usage: billing::usage_service_client::UsageServiceClient<PeerChannel>,
    invoices: billing::invoice_service_client::InvoiceServiceClient<PeerChannel>,
}

impl Clients {
    fn of(console: &Console) -> Clients {
        let channel = console.billing.clone();
        Clients {
            subscriptions: billing::subscription_service_client::SubscriptionServiceClient::new(
                channel.clone(),
            ),
            plans: billing::plan_service_client::PlanServiceClient::new(channel.clone()),
            usage: billing::usage_service_client::UsageServiceClient::new(channel.clone()),
            invoices: billing::invoice_service_client::InvoiceServiceClient::new(channel),
        }
    }
}

async fn page(console: Shared, view: View) -> Response {
    let body = body(&console, &view, None).await;
    let mut answer = console.render(&view, "Billing", body);
    if !view.may(Permission::BILLING_READ) && answer.status() == StatusCode::OK {
        *answer.status_mut() = StatusCode::FORBIDDEN;
    }
    answer
}

/// What a user without `billing.read` sees instead of the page.
fn not_yours() -> Markup {
    html! {
        p.error role="alert" { "You may not see this organization's billing: it needs the "
            code { "billing.read" } " permission, which the Owner and Finance roles have. Ask an owner if you need it." }
    }
}

/// The subscription's name for an organization.
fn subscription_name(organization: &str) -> String {
    format!("{organization}/subscription")
}

async fn body(console: &Console, view: &View, error: Option<&Failure>) -> Result<Markup, Failure> {
    let Some(organization) = view.organization() else {
        return Ok(no_organization());
    };
    if !view.may(Permission::BILLING_READ) {
        return Ok(html! { (failure(error)) (not_yours()) });
    }
    let mut clients = Clients::of(console);
    // No subscription is the free plan (billing's fallback), not a failure.
    let subscription = match clients
        .subscriptions
        .get_subscription(view.request(billing::GetSubscriptionRequest {
            name: subscription_name(organization),
        }))
        .await
    {
        Ok(answer) => answer.into_inner().subscription,
        Err(status) if status.code() == tonic::Code::NotFound => None,
        Err(status) => return Err(status.into()),
    };
    let usage = clients
        .usage
        .get_usage(view.request(billing::GetUsageRequest {
            organization: organization.into(),
            ..Default::default()
        }))
        .await?
        .into_inner();
    let plans = clients
        .plans
        .list_plans(view.request(billing::ListPlansRequest {
            page_size: 100,
            ..Default::default()
        }))
        .await?
        .into_inner()
        .plans;
    let current = subscription
        .as_ref()
        .map_or("plans/free".to_string(), |s| s.plan.clone());
    let plan = plans.iter().find(|p| p.name == current);
    let invoice = match subscription.as_ref().map(|s| s.billing_account.as_str()) {
        Some(account) if !account.is_empty() => Some(
            clients
                .invoices
                .preview_invoice(view.request(billing::PreviewInvoiceRequest {
                    billing_account: account.into(),
                    period_time: None,
                }))
                .await?
                .into_inner()
                .invoice_preview
                .unwrap_or_default(),
        ),
        _ => None,
    };
    Ok(html! {
        (summary(subscription.as_ref(), plan, &current))
        h2 { "Usage this period" }
        p.small { (when(usage.period_start_time.as_ref())) " to " (when(usage.period_end_time.as_ref())) }
        (usage_list(&usage.usages))
        @if let Some(limits) = subscription.as_ref().and_then(|s| s.limits.as_ref()).or(plan.and_then(|p| p.limits.as_ref())) {
            @if let Some(days) = limits.audit_retention_days { p { "Audit events are kept " (days) " days." } }
        }
        h2 { "Plans" }
        (failure(error))
        (plans_table(view, &plans, subscription.as_ref(), &current))
        h2 { "Upcoming invoice" }
        (invoice_preview(invoice.as_ref()))
    })
}

fn state_words(state: i32) -> &'static str {
    use billing::subscription::State;
    match State::try_from(state) {
        Ok(State::Trialing) => "Trial",
        Ok(State::Active) => "Active",
        Ok(State::PastDue) => "Past due: a payment failed",
        Ok(State::Canceled) => "Canceled",
        _ => "Unknown",
    }
}

fn summary(
    subscription: Option<&billing::Subscription>,
    plan: Option<&billing::Plan>,
    current: &str,
) -> Markup {
    let plan_name = plan.map_or(current, |p| p.display_name.as_str());
    html! {
        section.card aria-labelledby="plan-heading" {
            h2 #plan-heading { "Current plan: " (plan_name) }
            @match subscription {
                None => p { "No subscription: the organization uses the free plan." },
                Some(s) => dl {
                    dt { "State" } dd { (state_words(s.state)) }
                    @if s.trial_end_time.is_some() { dt { "Trial ends" } dd { (when(s.trial_end_time.as_ref())) } }
                    dt { "Period ends" } dd { (when(s.current_period_end_time.as_ref())) }
                    @if s.cancel_at_period_end { dt { "Cancellation" } dd { "Ends at the end of the period" } }
                    dt { "Billing account" } dd { @if s.billing_account.is_empty() { "None" } @else { code { (s.billing_account) } } }
                    @if !s.over_limit_metrics.is_empty() {
                        dt { "Over the limit" }
                        dd.bad { @for m in &s.over_limit_metrics { (metric_words(*m).1) " " } }
                    }
                },
            }
        }
    }
}

/// A metric's (singular, plural) words.
fn metric_words(metric: i32) -> (&'static str, &'static str) {
    use billing::Metric;
    match Metric::try_from(metric) {
        Ok(Metric::Projects) => ("project", "projects"),
        Ok(Metric::Members) => ("member", "members"),
        Ok(Metric::Teams) => ("team", "teams"),
        Ok(Metric::SubOrganizations) => ("child organization", "child organizations"),
        Ok(Metric::ApiKeys) => ("API key", "API keys"),
        Ok(Metric::Deployments) => ("deployment this month", "deployments this month"),
        _ => ("unit", "units"),
    }
}

/// Usage against every limit: a meter and the numbers in words (a meter's
/// colour alone says nothing to a screen reader or in high contrast).
fn usage_list(usages: &[billing::MetricUsage]) -> Markup {
    html! {
        @if usages.is_empty() { p.empty { "No usage to show yet." } }
        ul.usage {
            @for usage in usages {
                @let (_, plural) = metric_words(usage.metric);
                @let id = format!("usage-{}", usage.metric);
                li {
                    @match usage.limit {
                        Some(limit) => {
                            label for=(id) { (usage.subtree_quantity) " of " (limit) " " (plural) }
                            meter id=(id) min="0" max=(limit.max(1)) high=((limit.max(1) * 8 + 9) / 10) value=(usage.subtree_quantity) {
                                (usage.subtree_quantity) " of " (limit)
                            }
                            @if usage.subtree_quantity > limit { span.bad { " Over the limit" } }
                        }
                        None => { span { (usage.subtree_quantity) " " (plural) " (no limit)" } }
                    }
                    @if usage.own_quantity != usage.subtree_quantity {
                        span.small { " — " (usage.own_quantity) " in this organization itself, the rest in its child organizations" }
                    }
                }
            }
        }
    }
}

/// An amount in minor units, in its currency (two decimals: the catalog's
/// currencies).
fn money(minor: i64, currency: &str) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let minor = minor.unsigned_abs();
    format!("{sign}{}.{:02} {currency}", minor / 100, minor % 100)
}

fn limit_words(limit: Option<i64>, plural: &str) -> String {
    match limit {
        Some(n) => format!("{n} {plural}"),
        None => format!("unlimited {plural}"),
    }
}

fn plans_table(
    view: &View,
    plans: &[billing::Plan],
    subscription: Option<&billing::Subscription>,
    current: &str,
) -> Markup {
    let manage = view.may(Permission::BILLING_MANAGE);
    let needs_account = subscription.is_none_or(|s| s.billing_account.is_empty());
    html! {
        @if plans.is_empty() { p.empty { "No plans are offered." } }
        @else {
            div.scroll { table {
                thead { tr { th { "Plan" } th { "Price" } th { "Limits" } th { span.small { "Actions" } } } }
                tbody { @for plan in plans {
                    @let limits = plan.limits.clone().unwrap_or_default();
                    tr {
                        td { (plan.display_name) @if plan.name == current { " " strong { "(current)" } } }
                        td { (money(plan.base_price_minor_units, &plan.currency_code)) @if plan.billing_interval == billing::BillingInterval::Yearly as i32 { " a year" } @else { " a month" } }
                        td.small {
                            (limit_words(limits.projects, "projects")) ", "
                            (limit_words(limits.members, "members")) ", "
                            (limit_words(limits.teams, "teams")) ", "
                            (limit_words(limits.api_keys, "API keys"))
                        }
                        td { @if manage && plan.name != current { (change_form(view, plan, subscription, needs_account)) } }
                    }
                } }
            } }
            @if manage && needs_account {
                p.small { "A paid plan needs a billing account: its form asks for the address invoices go to." }
            }
        }
    }
}

fn change_form(
    view: &View,
    plan: &billing::Plan,
    subscription: Option<&billing::Subscription>,
    needs_account: bool,
) -> Markup {
    let free = plan.base_price_minor_units == 0 && plan.seat_price_minor_units == 0;
    let slug = plan.name.rsplit('/').next().unwrap_or_default();
    html! {
        form.inline method="post" action="/console/billing" {
            (csrf(view.csrf()))
            (request_id())
            input type="hidden" name="plan" value=(plan.name);
            input type="hidden" name="etag" value=(subscription.map(|s| s.etag.as_str()).unwrap_or_default());
            @if subscription.is_some() { input type="hidden" name="subscribed" value="yes"; }
            @if needs_account && !free {
                div.field {
                    label for={ "email-" (slug) } { "Billing email for " (plan.display_name) }
                    input id={ "email-" (slug) } type="email" name="billing_email" required autocomplete="email";
                }
                input type="hidden" name="currency_code" value=(plan.currency_code);
            }
            button type="submit" aria-label={ "Switch to " (plan.display_name) } { "Switch" }
        }
    }
}

fn invoice_preview(invoice: Option<&billing::InvoicePreview>) -> Markup {
    html! {
        @match invoice {
            None => p.empty { "Nothing to invoice: no billing account pays for this organization (the free plan needs none). "
                              "Past invoices are not available through the API yet." },
            Some(invoice) => {
                p.small { "If the period ended now (" (when(invoice.period_start_time.as_ref())) " to " (when(invoice.period_end_time.as_ref())) "):" }
                div.scroll { table {
                    thead { tr { th { "Charge" } th { "Quantity" } th { "Amount" } } }
                    tbody {
                        @for line in &invoice.lines {
                            tr { td { (line.description) } td { (line.billable_quantity) " of " (line.quantity) } td { (money(line.amount_minor_units, &invoice.currency_code)) } }
                        }
                    }
                    tfoot { tr { th colspan="2" { "Total" } th { (money(invoice.total_minor_units, &invoice.currency_code)) } } }
                } }
            }
        }
    }
}

#[derive(Deserialize)]
struct PlanForm {
    plan: String,
    #[serde(default)]
    etag: String,
    /// Whether the page showed a subscription (else: the free fallback).
    #[serde(default)]
    subscribed: String,
    #[serde(default)]
    billing_email: String,
    #[serde(default)]
    currency_code: String,
    #[serde(default)]
    request_id: String,
}

async fn change_plan(console: Shared, posted: Posted<PlanForm>) -> Response {
    let Posted { signed, form } = posted;
    match switch(&console, &signed, form).await {
        Ok(()) => console.done(&signed, "/console/billing"),
        Err(status) => {
            console
                .refused(signed, "Billing", status.into(), async |view, failure| {
                    body(&console, view, Some(failure)).await
                })
                .await
        }
    }
}

/// Moves the organization to `form.plan`. An organization without a
/// subscription is on the free plan: it subscribes to it first, because
/// only a plan change can open a billing account on the way.
async fn switch(console: &Console, signed: &Signed, form: PlanForm) -> Result<(), tonic::Status> {
    let name = subscription_name(&signed.tokens().organization);
    let mut clients = Clients::of(console);
    let mut etag = form.etag;
    if form.subscribed.is_empty() {
        let subscribed = clients
            .subscriptions
            .subscribe(signed.request(billing::SubscribeRequest {
                name: name.clone(),
                plan: "plans/free".into(),
                request_id: form.request_id.clone(),
                ..Default::default()
            }))
            .await;
        match subscribed {
            Ok(answer) => etag = answer.into_inner().subscription.unwrap_or_default().etag,
            // A live subscription already (another tab): change it.
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::FailedPrecondition | tonic::Code::AlreadyExists
                ) => {}
            Err(status) => return Err(status),
        }
        if form.plan == "plans/free" {
            return Ok(());
        }
    }
    let new_billing_account = (!form.billing_email.is_empty()).then(|| billing::BillingAccount {
        display_name: format!("{} billing", signed.tokens().organization),
        currency_code: form.currency_code,
        billing_email: form.billing_email,
        ..Default::default()
    });
    clients
        .subscriptions
        .change_plan(signed.request(billing::ChangePlanRequest {
            name,
            plan: form.plan,
            etag,
            // The subscribe above used the form's id; this call is another.
            request_id: derived_id(&form.request_id),
            new_billing_account,
            ..Default::default()
        }))
        .await?;
    Ok(())
}

/// A second request id, fixed for a given form's id, so a double submit
/// repeats both calls' ids.
fn derived_id(request_id: &str) -> String {
    match request_id {
        "" => String::new(),
        id => format!("{id}:change-plan"),
    }
}
