//! Payment providers, behind one interface. Tenantry receives a provider's
//! webhooks ([`PaymentProvider::verify`] turns a signed payload into a
//! [`ProviderEvent`]); it makes no outgoing calls to any provider, so
//! nothing here touches the network.
//!
//! [`Stripe`] reads Stripe's format (and that of providers that copy it):
//! the `Stripe-Signature` header `t=<unix seconds>,v1=<hex>[,v1=…]`, where
//! each `v1` is HMAC-SHA256 over `{t}.{payload}` with the endpoint secret.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tenantry_kit::error::{Error, Result};

use crate::error::Error as Refusal;

/// What a verified provider event asks billing to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A subscription was created or changed at the provider.
    SubscriptionUpserted(ProviderSubscription),
    /// A subscription ended at the provider.
    SubscriptionDeleted(ProviderSubscription),
    /// An invoice was paid.
    InvoicePaid(ProviderInvoice),
    /// A payment failed.
    InvoicePaymentFailed(ProviderInvoice),
    /// Nothing Tenantry acts on.
    Ignored,
}

/// A subscription as the provider describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderSubscription {
    pub id: String,
    pub customer: String,
    /// `trialing`, `active`, `past_due`, `canceled`, …
    pub status: String,
    /// The Tenantry root organization, from the subscription's metadata.
    pub organization_id: Option<String>,
    /// The Tenantry plan, from the metadata, when the provider changed it.
    pub plan_id: Option<String>,
    /// The Tenantry billing account, from the metadata, to link the
    /// customer with.
    pub billing_account_id: Option<String>,
}

/// An invoice as the provider describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderInvoice {
    pub id: String,
    pub customer: String,
    pub amount_minor_units: i64,
    pub currency_code: String,
}

/// A verified provider event.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderEvent {
    pub id: String,
    pub event_type: String,
    pub action: Action,
}

/// A payment provider's webhook side.
pub trait PaymentProvider: Send + Sync {
    /// The provider's configured id, such as `stripe`.
    fn id(&self) -> &str;

    /// Verifies `signature` over `payload` at `now_secs` and parses it.
    /// A bad signature or stale timestamp is UNAUTHENTICATED; a payload
    /// that is signed but malformed is INVALID_ARGUMENT.
    fn verify(&self, payload: &[u8], signature: &str, now_secs: i64) -> Result<ProviderEvent>;
}

/// Stripe-compatible webhooks.
pub struct Stripe {
    id: String,
    secret: Vec<u8>,
    tolerance: Duration,
}

impl Stripe {
    pub fn new(id: &str, secret: &str, tolerance: Duration) -> Stripe {
        Stripe {
            id: id.to_string(),
            secret: secret.as_bytes().to_vec(),
            tolerance,
        }
    }

    /// The signature header Stripe would send for `payload` at `timestamp`.
    pub fn sign(secret: &str, timestamp: i64, payload: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length works");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(payload);
        format!(
            "t={timestamp},v1={}",
            hex::encode(mac.finalize().into_bytes())
        )
    }
}

#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    object: serde_json::Value,
}

fn text(object: &serde_json::Value, key: &str) -> String {
    object
        .get(key)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

fn metadata(object: &serde_json::Value, key: &str) -> Option<String> {
    object
        .get("metadata")
        .and_then(|m| m.get(key))
        .and_then(|v| v.as_str())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

fn subscription(object: &serde_json::Value) -> ProviderSubscription {
    ProviderSubscription {
        id: text(object, "id"),
        customer: text(object, "customer"),
        status: text(object, "status"),
        organization_id: metadata(object, "tenantry_organization_id"),
        plan_id: metadata(object, "tenantry_plan_id"),
        billing_account_id: metadata(object, "tenantry_billing_account_id"),
    }
}

fn invoice(object: &serde_json::Value, amount_key: &str) -> ProviderInvoice {
    ProviderInvoice {
        id: text(object, "id"),
        customer: text(object, "customer"),
        amount_minor_units: object.get(amount_key).and_then(|v| v.as_i64()).unwrap_or(0),
        currency_code: text(object, "currency").to_uppercase(),
    }
}

impl PaymentProvider for Stripe {
    fn id(&self) -> &str {
        &self.id
    }

    fn verify(&self, payload: &[u8], signature: &str, now_secs: i64) -> Result<ProviderEvent> {
        let mut timestamp = None;
        let mut candidates = Vec::new();
        for part in signature.split(',') {
            match part.trim().split_once('=') {
                Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
                Some(("v1", value)) => candidates.push(hex::decode(value).unwrap_or_default()),
                _ => {}
            }
        }
        let Some(timestamp) = timestamp else {
            return Err(Refusal::SignatureWithoutTimestamp.into());
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("any key length works");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(payload);
        let expected = mac.finalize().into_bytes();
        // Every candidate is compared in constant time, and all of them are
        // compared, so timing tells nothing about which (if any) matched.
        let matched = candidates.iter().fold(0u8, |any, candidate| {
            any | candidate.as_slice().ct_eq(expected.as_slice()).unwrap_u8()
        });
        if matched == 0 {
            return Err(Refusal::SignatureMismatch.into());
        }
        if now_secs.abs_diff(timestamp) > self.tolerance.as_secs() {
            return Err(Refusal::TimestampOutOfTolerance.into());
        }
        let envelope: Envelope = serde_json::from_slice(payload)
            .map_err(|_| Error::invalid_field("payload", "is not a provider event"))?;
        if envelope.id.is_empty() || envelope.id.len() > 255 {
            return Err(Error::invalid_field("payload", "has no event id"));
        }
        let object = &envelope.data.object;
        let action = match envelope.event_type.as_str() {
            "customer.subscription.created" | "customer.subscription.updated" => {
                Action::SubscriptionUpserted(subscription(object))
            }
            "customer.subscription.deleted" => Action::SubscriptionDeleted(subscription(object)),
            "invoice.paid" => Action::InvoicePaid(invoice(object, "amount_paid")),
            "invoice.payment_failed" => Action::InvoicePaymentFailed(invoice(object, "amount_due")),
            _ => Action::Ignored,
        };
        Ok(ProviderEvent {
            id: envelope.id,
            event_type: envelope.event_type,
            action,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_0123456789abcdef";

    fn provider() -> Stripe {
        Stripe::new("stripe", SECRET, Duration::from_secs(300))
    }

    const PAYLOAD: &[u8] = br#"{"id":"evt_1","type":"invoice.paid","data":{"object":{"id":"in_1","customer":"cus_1","amount_paid":2900,"currency":"usd"}}}"#;

    #[test]
    fn a_signed_event_verifies_and_parses() {
        let header = Stripe::sign(SECRET, 1_700_000_000, PAYLOAD);
        let event = provider().verify(PAYLOAD, &header, 1_700_000_100).unwrap();
        assert_eq!(event.id, "evt_1");
        assert_eq!(
            event.action,
            Action::InvoicePaid(ProviderInvoice {
                id: "in_1".into(),
                customer: "cus_1".into(),
                amount_minor_units: 2900,
                currency_code: "USD".into()
            })
        );
    }

    #[test]
    fn any_of_several_signatures_may_match() {
        let good = Stripe::sign(SECRET, 1_700_000_000, PAYLOAD);
        let header = format!(
            "t=1700000000,v1={},{}",
            "00".repeat(32),
            good.split_once(',').unwrap().1
        );
        assert!(provider().verify(PAYLOAD, &header, 1_700_000_000).is_ok());
    }

    #[test]
    fn bad_signatures_and_stale_timestamps_are_refused() {
        let header = Stripe::sign("whsec_another_secret_entirely", 1_700_000_000, PAYLOAD);
        let error = provider()
            .verify(PAYLOAD, &header, 1_700_000_000)
            .unwrap_err();
        assert_eq!(error.reason(), "BAD_SIGNATURE");

        let header = Stripe::sign(SECRET, 1_700_000_000, PAYLOAD);
        let mut tampered = PAYLOAD.to_vec();
        tampered[10] ^= 1;
        assert_eq!(
            provider()
                .verify(&tampered, &header, 1_700_000_000)
                .unwrap_err()
                .reason(),
            "BAD_SIGNATURE"
        );

        let error = provider()
            .verify(PAYLOAD, &header, 1_700_000_301)
            .unwrap_err();
        assert_eq!(error.reason(), "TIMESTAMP_OUT_OF_TOLERANCE");
        assert_eq!(
            provider()
                .verify(PAYLOAD, "garbage", 0)
                .unwrap_err()
                .reason(),
            "BAD_SIGNATURE"
        );
    }
}
