//! Invoice previews: what a billing account would be charged for a period
//! if it ended now. Integers in minor units throughout, every product and
//! sum checked; an amount that does not fit is OUT_OF_RANGE, never wrapped.

use tenantry_kit::access::Caller;
use tenantry_kit::db::now_micros;
use tenantry_kit::error::Result;
use tenantry_kit::names::{BillingAccountName, SubscriptionName};
use tenantry_proto::tenantry::billing::v1 as pb;
use tonic::{Request, Response, Status};

use crate::access::Need;
use crate::catalog::{Interval, plan_name};
use crate::error::Error as Refusal;
use crate::metric::{self, Metric};
use crate::store::{self, SubscriptionRow};
use crate::subscriptions::{State, state_at};
use crate::{Core, micros, serve, timestamp};

/// A line charging `billable = max(quantity - included, 0)` units.
fn line(
    kind: pb::invoice_line::Kind,
    description: String,
    subscription: &SubscriptionRow,
    plan: &str,
    metric: Metric,
    (quantity, included, unit_price): (i64, i64, i64),
) -> Result<pb::InvoiceLine> {
    let billable = quantity.saturating_sub(included).max(0);
    Ok(pb::InvoiceLine {
        kind: kind as i32,
        description,
        subscription: SubscriptionName::new(&subscription.organization_id).to_string(),
        plan: plan_name(plan),
        metric: metric as i32,
        quantity,
        included_quantity: included,
        billable_quantity: billable,
        unit_price_minor_units: unit_price,
        amount_minor_units: billable
            .checked_mul(unit_price)
            .ok_or(Refusal::AmountOverflow)?,
    })
}

/// The `InvoiceService` handler.
#[derive(Debug, Clone)]
pub struct InvoiceApi(pub Core);

impl InvoiceApi {
    async fn preview(
        &self,
        caller: Caller,
        request: pb::PreviewInvoiceRequest,
    ) -> Result<pb::InvoicePreview> {
        let core = &self.0;
        let account = core
            .account_for(
                &caller,
                &request.billing_account,
                "billing_account",
                Need::Read,
            )
            .await?;
        let now = now_micros();
        let at = request.period_time.as_ref().map_or(now, micros);
        let (start, end) = (metric::month_start(at), metric::next_month(at));
        let pool = core.store.pool();
        let mut lines = Vec::new();
        for s in store::subscriptions_by(pool, store::SubscriptionKey::Account, &account.id).await?
        {
            // A subscription canceled before the period began owes nothing.
            if state_at(&s, start) == State::Canceled || state_at(&s, now) == State::Trialing {
                continue;
            }
            let Some(plan) = core.plan(&s.plan_id).await? else {
                continue;
            };
            let body = &plan.body;
            let interval = match body.billing_interval {
                Interval::Monthly => "monthly",
                Interval::Yearly => "yearly",
            };
            lines.push(line(
                pb::invoice_line::Kind::Plan,
                format!("{} plan ({interval})", body.display_name),
                &s,
                &plan.id,
                Metric::Unspecified,
                (1, 0, body.base_price_minor_units),
            )?);
            let seats_used = store::counters(
                pool,
                &[&s.organization_id],
                Metric::Members.as_str_name(),
                0,
            )
            .await?
            .get(&s.organization_id)
            .map_or(0, |c| c.1);
            // Bought seats are paid for whether or not they are used.
            let seats = seats_used.max(body.included_seats.saturating_add(s.extra_seats));
            lines.push(line(
                pb::invoice_line::Kind::Seats,
                format!("Seats above the {} included", body.included_seats),
                &s,
                &plan.id,
                Metric::Members,
                (seats, body.included_seats, body.seat_price_minor_units),
            )?);
            for price in &body.metered_prices {
                let Some(metric) = metric::from_name(&price.metric) else {
                    continue;
                };
                let used =
                    store::counters(pool, &[&s.organization_id], metric.as_str_name(), start)
                        .await?
                        .get(&s.organization_id)
                        .map_or(0, |c| c.1);
                lines.push(line(
                    pb::invoice_line::Kind::MeteredUsage,
                    format!(
                        "{} above the {} included",
                        capitalized(tenantry_kit::quota::metric_words(metric).1),
                        price.included_quantity
                    ),
                    &s,
                    &plan.id,
                    metric,
                    (used, price.included_quantity, price.unit_price_minor_units),
                )?);
            }
        }
        let total = lines
            .iter()
            .try_fold(0i64, |sum, l| sum.checked_add(l.amount_minor_units))
            .ok_or(Refusal::AmountOverflow)?;
        Ok(pb::InvoicePreview {
            billing_account: BillingAccountName::new(&account.workspace_id, &account.id)
                .to_string(),
            currency_code: account.currency_code,
            period_start_time: Some(timestamp(start)),
            period_end_time: Some(timestamp(end)),
            lines,
            total_minor_units: total,
        })
    }
}

#[tonic::async_trait]
impl pb::invoice_service_server::InvoiceService for InvoiceApi {
    async fn preview_invoice(
        &self,
        request: Request<pb::PreviewInvoiceRequest>,
    ) -> std::result::Result<Response<pb::PreviewInvoiceResponse>, Status> {
        let invoice_preview =
            Some(serve(request, |caller, request| self.preview(caller, request)).await?);
        Ok(Response::new(pb::PreviewInvoiceResponse {
            invoice_preview,
        }))
    }
}

/// "deployments a month" → "Deployments a month", for an invoice line.
fn capitalized(words: &str) -> String {
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
