//! # jangteo-payment-manual
//!
//! The built-in `manual` payment provider. It captures at once, which is what the demo
//! store, the tests and a shop that collects payment offline (bank transfer checked by
//! hand, cash on delivery) need. Three magic test cards exercise the other outcomes:
//!
//! | `card_number`        | outcome                                   |
//! |----------------------|-------------------------------------------|
//! | `4000000000000002`   | declined (`card_declined`)                |
//! | `4000000000009995`   | declined (`insufficient_funds`)           |
//! | `4000000000003220`   | pending: waits until an operator confirms it |
//! | anything or nothing  | captured                                  |
//!
//! It is also the smallest complete example of a payment plugin: a config struct that
//! builds an `Arc<dyn PaymentProvider>`, registered by name in the engine's registry.

#![warn(missing_docs)]

use std::sync::Arc;

use async_trait::async_trait;
use jangteo_core::payment::{
    NextAction, PaymentOutcome, PaymentProvider, PaymentRequest, RefundRequest,
};
use jangteo_core::CoreResult;
use serde::Deserialize;

/// Card number that is always declined.
pub const DECLINE_CARD: &str = "4000000000000002";
/// Card number declined for insufficient funds.
pub const INSUFFICIENT_FUNDS_CARD: &str = "4000000000009995";
/// Card number whose payment stays pending until an operator confirms it.
pub const PENDING_CARD: &str = "4000000000003220";

/// Configuration of the manual provider (it has none yet beyond its name).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ManualConfig {}

impl ManualConfig {
    /// Builds the provider.
    pub fn build(&self) -> Arc<dyn PaymentProvider> {
        Arc::new(ManualProvider)
    }
}

/// The provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct ManualProvider;

#[async_trait]
impl PaymentProvider for ManualProvider {
    fn name(&self) -> &str {
        "manual"
    }

    /// `authorize` only looks at the request: checkout may ask it inside its
    /// transaction and commit a captured order once.
    fn answers_in_process(&self) -> bool {
        true
    }

    async fn authorize(&self, req: &PaymentRequest) -> CoreResult<PaymentOutcome> {
        let card: String = req
            .data
            .get("card_number")
            .map(|c| c.chars().filter(char::is_ascii_digit).collect())
            .unwrap_or_default();
        Ok(match card.as_str() {
            DECLINE_CARD => PaymentOutcome::Declined {
                code: "card_declined".into(),
                message: "the card was declined".into(),
            },
            INSUFFICIENT_FUNDS_CARD => PaymentOutcome::Declined {
                code: "insufficient_funds".into(),
                message: "insufficient funds".into(),
            },
            PENDING_CARD => PaymentOutcome::Pending {
                reference: format!("manual_{}", req.order_id),
                expires_at: None,
                // Pay by transfer quoting the order number; an operator confirms it
                // with `POST /admin/orders/{id}/confirm-payment`.
                next_action: Some(NextAction::VirtualAccount {
                    bank: "manual".into(),
                    account_number: req.order_number.clone(),
                }),
            },
            _ => PaymentOutcome::Captured {
                reference: format!("manual_{}", req.order_id),
            },
        })
    }

    async fn refund(&self, req: &RefundRequest) -> CoreResult<String> {
        Ok(format!("manual_refund_{}", req.order_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jangteo_core::ids::OrderId;
    use jangteo_core::money::{Currency, Money};

    fn req(card: Option<&str>) -> PaymentRequest {
        PaymentRequest {
            order_id: OrderId::new(),
            order_number: "JT-1".into(),
            amount: Money::parse("1000", Currency::KRW).unwrap(),
            email: "a@b.co".into(),
            data: card
                .map(|c| [("card_number".to_string(), c.to_string())].into())
                .unwrap_or_default(),
            idempotency_key: "k".into(),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn magic_cards() {
        let p = ManualConfig::default().build();
        assert!(matches!(
            p.authorize(&req(None)).await.unwrap(),
            PaymentOutcome::Captured { .. }
        ));
        assert!(matches!(
            p.authorize(&req(Some("4000 0000 0000 0002")))
                .await
                .unwrap(),
            PaymentOutcome::Declined { .. }
        ));
        assert!(matches!(
            p.authorize(&req(Some(PENDING_CARD))).await.unwrap(),
            PaymentOutcome::Pending { .. }
        ));
    }
}
