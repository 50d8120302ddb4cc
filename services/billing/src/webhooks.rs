//! Provider webhooks: verified by signature (see [`crate::provider`]),
//! deduplicated by the provider's event id (a replay answers DUPLICATE and
//! changes nothing), and applied in one transaction with their events.
//! A failed payment makes the account and the subscriptions it pays for
//! PAST_DUE, which refuses creation until an invoice is paid.

use std::sync::Arc;
use tenantry_kit::write::Write;

use tenantry_kit::db::now_micros;
use tenantry_kit::error::{Error, Result};
use tenantry_kit::tenancy;
use tenantry_proto::tenantry::billing::v1 as pb;
use tenantry_proto::tenantry::events::v1 as events;
use tonic::{Request, Response, Status};

use crate::provider::{
    Action, PaymentProvider, ProviderEvent, ProviderInvoice, ProviderSubscription,
};
use crate::store::{self, AccountRow, SubscriptionRow, Tx};
use crate::subscriptions::{State, state_at};
use crate::{Core, not_found, system_actor};

use pb::handle_provider_event_response::Outcome;

/// The most a payload may weigh.
const MAX_PAYLOAD: usize = 1024 * 1024;

fn provider_state(status: &str) -> State {
    match status {
        "trialing" => State::Trialing,
        "past_due" | "unpaid" | "incomplete" => State::PastDue,
        "canceled" | "incomplete_expired" => State::Canceled,
        _ => State::Active,
    }
}

impl Core {
    /// Moves a subscription to `state`, with its event.
    pub(crate) async fn set_state(
        &self,
        tx: &mut Write,
        s: &mut SubscriptionRow,
        state: State,
        provider_event_id: &str,
    ) -> Result<()> {
        let now = now_micros();
        let old = State::parse(&s.state);
        if old == state {
            return Ok(());
        }
        s.state = state.as_str().into();
        if state == State::Canceled {
            s.canceled_at_us = Some(now);
        }
        if state != State::Trialing {
            s.trial_end_us = s.trial_end_us.filter(|end| *end <= now);
        }
        s.version += 1;
        s.updated_at_us = now;
        store::save_subscription(tx, s).await?;
        self.emit_for_subscription(
            tx,
            system_actor(),
            None,
            &s.organization_id,
            &events::SubscriptionStateChanged {
                organization_id: s.organization_id.clone(),
                old_state: old.to_event() as i32,
                new_state: state.to_event() as i32,
                provider_event_id: provider_event_id.to_string(),
            },
        )
        .await
    }

    /// Appends an event billing makes on its own about a billing account.
    async fn emit_for_account<M: tenantry_proto::EventType>(
        &self,
        tx: &mut Write,
        account_id: &str,
        payload: &M,
    ) -> Result<()> {
        self.emit(
            tx,
            system_actor(),
            None,
            ("billing_account", account_id),
            None,
            payload,
        )
        .await
    }

    async fn save_account_state(
        &self,
        tx: &mut Write,
        account: &mut AccountRow,
        state: &str,
        field: &str,
    ) -> Result<()> {
        account.state = state.to_string();
        account.version += 1;
        account.updated_at_us = now_micros();
        store::save_account(tx, account).await?;
        self.emit_for_account(
            tx,
            &account.id,
            &events::BillingAccountUpdated {
                billing_account_id: account.id.clone(),
                workspace_id: account.workspace_id.clone(),
                changed_fields: vec![field.to_string()],
            },
        )
        .await
    }

    /// The subscription a provider subscription is about.
    async fn provider_subscription(
        &self,
        tx: &mut Tx,
        ps: &ProviderSubscription,
    ) -> Result<Option<SubscriptionRow>> {
        if !ps.id.is_empty()
            && let Some(s) =
                store::subscriptions_by(&mut **tx, store::SubscriptionKey::ProviderId, &ps.id)
                    .await?
                    .into_iter()
                    .next()
        {
            return Ok(Some(s));
        }
        match ps
            .organization_id
            .as_deref()
            .filter(|id| uuid::Uuid::try_parse(id).is_ok())
        {
            Some(id) => store::subscription(&mut **tx, id).await,
            None => Ok(None),
        }
    }

    async fn apply_subscription(
        &self,
        tx: &mut Write,
        provider: &str,
        event_id: &str,
        ps: &ProviderSubscription,
        deleted: bool,
    ) -> Result<bool> {
        let Some(mut s) = self.provider_subscription(tx, ps).await? else {
            return Ok(false);
        };
        if let Some(account_id) = ps
            .billing_account_id
            .as_deref()
            .filter(|id| uuid::Uuid::try_parse(id).is_ok())
            && let Some(mut account) = store::account_by_id(tx, account_id).await?
            && account.workspace_id == s.workspace_id
        {
            if account.provider_customer_id.is_empty() && !ps.customer.is_empty() {
                account.provider = provider.to_string();
                account.provider_customer_id = ps.customer.clone();
                let state = account.state.clone();
                self.save_account_state(tx, &mut account, &state, "provider_customer_id")
                    .await?;
            }
            if s.billing_account_id.is_none() {
                s.billing_account_id = Some(account.id.clone());
            }
        }
        let before = s.clone();
        s.provider_subscription_id = ps.id.clone();
        if let Some(plan) = &ps.plan_id
            && self.plan(plan).await?.is_some()
        {
            s.plan_id = plan.clone();
        }
        if s != before {
            s.version += 1;
            s.updated_at_us = now_micros();
            store::save_subscription(tx, &s).await?;
            if s.plan_id != before.plan_id {
                self.emit_changed(
                    tx,
                    system_actor(),
                    None,
                    &before.plan_id,
                    &s,
                    vec!["plan".into()],
                )
                .await?;
            }
        }
        let state = if deleted {
            State::Canceled
        } else {
            provider_state(&ps.status)
        };
        if deleted && state_at(&s, now_micros()) != State::Canceled {
            self.emit_for_subscription(
                tx,
                system_actor(),
                None,
                &s.organization_id,
                &events::SubscriptionCanceled {
                    organization_id: s.organization_id.clone(),
                    plan_id: s.plan_id.clone(),
                    immediately: true,
                    end_time: Some(crate::timestamp(now_micros())),
                },
            )
            .await?;
        }
        self.set_state(tx, &mut s, state, event_id).await?;
        Ok(true)
    }

    async fn apply_invoice(
        &self,
        tx: &mut Write,
        provider: &str,
        event_id: &str,
        invoice: &ProviderInvoice,
        paid: bool,
    ) -> Result<bool> {
        let Some(mut account) = store::account_by_customer(tx, provider, &invoice.customer).await?
        else {
            return Ok(false);
        };
        let (account_state, from, to) = if paid {
            ("active", State::PastDue, State::Active)
        } else {
            ("past_due", State::Active, State::PastDue)
        };
        if account.state != account_state && account.state != "closed" {
            self.save_account_state(tx, &mut account, account_state, "state")
                .await?;
        }
        let now = now_micros();
        for mut s in store::subscriptions_by(
            tx.connection(),
            store::SubscriptionKey::Account,
            &account.id,
        )
        .await?
        {
            let current = state_at(&s, now);
            if current == from || (!paid && current == State::Trialing) {
                self.set_state(tx, &mut s, to, event_id).await?;
            }
        }
        let payload_paid = events::InvoicePaid {
            billing_account_id: account.id.clone(),
            provider_invoice_id: invoice.id.clone(),
            amount_minor_units: invoice.amount_minor_units,
            currency_code: invoice.currency_code.clone(),
        };
        if paid {
            self.emit_for_account(tx, &account.id, &payload_paid)
                .await?;
        } else {
            let failed = events::InvoicePaymentFailed {
                billing_account_id: payload_paid.billing_account_id,
                provider_invoice_id: payload_paid.provider_invoice_id,
                amount_minor_units: payload_paid.amount_minor_units,
                currency_code: payload_paid.currency_code,
            };
            self.emit_for_account(tx, &account.id, &failed).await?;
        }
        Ok(true)
    }
}

/// The `ProviderWebhookService` handler.
#[derive(Debug, Clone)]
pub struct ProviderWebhookApi(pub Core);

impl ProviderWebhookApi {
    async fn handle(
        &self,
        request: pb::HandleProviderEventRequest,
    ) -> Result<pb::HandleProviderEventResponse> {
        let core = &self.0;
        let provider = core
            .providers
            .get(&request.provider)
            .cloned()
            .ok_or_else(|| not_found("provider"))?;
        if request.payload.is_empty() || request.payload.len() > MAX_PAYLOAD {
            return Err(Error::invalid_field("payload", "must be 1 byte to 1 MiB"));
        }
        let now_secs = now_micros() / 1_000_000;
        let event = provider.verify(&request.payload, &request.signature, now_secs)?;
        // A signed provider event names its subscription or customer, in
        // whichever tenant it is: the signature is the credential here.
        tenancy::system(self.apply_verified(core, provider, event)).await
    }

    async fn apply_verified(
        &self,
        core: &Core,
        provider: Arc<dyn PaymentProvider>,
        event: ProviderEvent,
    ) -> Result<pb::HandleProviderEventResponse> {
        let mut tx = core.begin().await?;
        let first = store::claim_provider_event(
            &mut tx,
            provider.id(),
            &event.id,
            &event.event_type,
            false,
        )
        .await?;
        let respond = |outcome: Outcome| pb::HandleProviderEventResponse {
            outcome: outcome as i32,
            provider_event_id: event.id.clone(),
            provider_event_type: event.event_type.clone(),
        };
        if !first {
            return Ok(respond(Outcome::Duplicate));
        }
        let applied = match &event.action {
            Action::SubscriptionUpserted(s) => {
                core.apply_subscription(&mut tx, provider.id(), &event.id, s, false)
                    .await?
            }
            Action::SubscriptionDeleted(s) => {
                core.apply_subscription(&mut tx, provider.id(), &event.id, s, true)
                    .await?
            }
            Action::InvoicePaid(i) => {
                core.apply_invoice(&mut tx, provider.id(), &event.id, i, true)
                    .await?
            }
            Action::InvoicePaymentFailed(i) => {
                core.apply_invoice(&mut tx, provider.id(), &event.id, i, false)
                    .await?
            }
            Action::Ignored => false,
        };
        store::set_provider_event_applied(&mut tx, provider.id(), &event.id, applied).await?;
        core.emit(
            &mut tx,
            system_actor(),
            None,
            ("provider_event", &event.id),
            None,
            &events::ProviderEventProcessed {
                provider: provider.id().to_string(),
                provider_event_id: event.id.clone(),
                provider_event_type: event.event_type.clone(),
                applied,
            },
        )
        .await?;
        core.commit(tx).await?;
        Ok(respond(if applied {
            Outcome::Processed
        } else {
            Outcome::Ignored
        }))
    }
}

#[tonic::async_trait]
impl pb::provider_webhook_service_server::ProviderWebhookService for ProviderWebhookApi {
    async fn handle_provider_event(
        &self,
        request: Request<pb::HandleProviderEventRequest>,
    ) -> std::result::Result<Response<pb::HandleProviderEventResponse>, Status> {
        Ok(Response::new(self.handle(request.into_inner()).await?))
    }
}
