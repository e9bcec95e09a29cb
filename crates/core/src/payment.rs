//! The payment port.
//!
//! Payments often confirm later (virtual accounts, QR, card redirects). A provider's
//! answer to [`PaymentProvider::authorize`] is therefore either captured at once, pending
//! (the order waits with its stock reserved until a verified webhook says paid, or the
//! expiry releases the stock), or declined.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, CoreResult};
use crate::ids::OrderId;
use crate::money::Money;

/// What checkout asks a provider to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRequest {
    /// Our order id (the provider's `orderId` / `external_id`).
    pub order_id: OrderId,
    /// Human order number.
    pub order_number: String,
    /// Amount to collect.
    pub amount: Money,
    /// Buyer e-mail.
    pub email: String,
    /// Provider-specific data from the buyer's client (card token, method, return URL).
    pub data: BTreeMap<String, String>,
    /// Key the provider should use to dedupe retries.
    pub idempotency_key: String,
}

/// What the buyer must do next for a pending payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NextAction {
    /// Open this URL (card 3-D Secure, easy-pay app).
    Redirect {
        /// Where to send the buyer.
        url: String,
    },
    /// Transfer to this virtual account.
    VirtualAccount {
        /// Bank code or name.
        bank: String,
        /// Account number.
        account_number: String,
    },
    /// Show this QR payload.
    Qr {
        /// QR string.
        qr_string: String,
    },
}

/// A provider's answer to an authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// Money is captured.
    Captured {
        /// Provider reference.
        reference: String,
    },
    /// Waiting for the buyer / bank; confirmation arrives by webhook.
    Pending {
        /// Provider reference.
        reference: String,
        /// When the provider gives up (the order's stock is released then).
        expires_at: Option<DateTime<Utc>>,
        /// What the buyer must do.
        next_action: Option<NextAction>,
    },
    /// Refused.
    Declined {
        /// Provider-independent code.
        code: String,
        /// Explanation.
        message: String,
    },
}

/// A refund request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    /// Our order.
    pub order_id: OrderId,
    /// Provider reference of the payment.
    pub reference: String,
    /// Amount to give back.
    pub amount: Money,
    /// Why.
    pub reason: String,
    /// Dedupe key.
    pub idempotency_key: String,
}

/// A verified webhook, translated to the domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    /// The payment for this order is captured.
    Paid {
        /// Our order id as the provider echoes it.
        order_id: OrderId,
        /// Provider reference.
        reference: String,
        /// Amount the provider says it collected (checked against the order).
        amount: Money,
    },
    /// The payment failed or expired.
    Failed {
        /// Our order id.
        order_id: OrderId,
        /// Why.
        reason: String,
    },
    /// Nothing we act on (other event types).
    Ignored,
}

/// A payment provider. Implementations turn domain requests into provider API calls.
#[async_trait]
pub trait PaymentProvider: Send + Sync + std::fmt::Debug {
    /// Registry name, e.g. `manual`, `toss`.
    fn name(&self) -> &str;

    /// Authorizes and captures (or starts a pending payment).
    async fn authorize(&self, req: &PaymentRequest) -> CoreResult<PaymentOutcome>;

    /// True only when `authorize` does no I/O and answers at once (no network, no
    /// database, no lock), as the built-in `manual` provider does. Checkout then asks
    /// such a provider inside its transaction and writes a captured payment with the
    /// order: one commit per order instead of two. Every provider that calls out must
    /// keep the default, since checkout never holds a database transaction across a
    /// network call.
    fn answers_in_process(&self) -> bool {
        false
    }

    /// Refunds a captured payment in full or in part.
    async fn refund(&self, req: &RefundRequest) -> CoreResult<String>;

    /// Verifies a webhook (signature, secret, or a call back to the provider) and
    /// translates it. Providers without webhooks refuse every call.
    async fn verify_webhook(
        &self,
        headers: &HashMap<String, String>,
        body: &[u8],
    ) -> CoreResult<WebhookEvent> {
        let _ = (headers, body);
        Err(CoreError::invalid(
            "webhook_unsupported",
            format!("provider `{}` takes no webhooks", self.name()),
        ))
    }
}

fn _assert_object_safe(_: &dyn PaymentProvider) {}

/// Named providers the engine can use; built explicitly by whoever wires the engine.
#[derive(Debug, Clone, Default)]
pub struct PaymentRegistry {
    providers: BTreeMap<String, Arc<dyn PaymentProvider>>,
    default: Option<String>,
}

impl PaymentRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a provider; the first one added is the default.
    pub fn register(mut self, provider: Arc<dyn PaymentProvider>) -> Self {
        let name = provider.name().to_string();
        if self.default.is_none() {
            self.default = Some(name.clone());
        }
        self.providers.insert(name, provider);
        self
    }

    /// Looks a provider up; `None` picks the default.
    pub fn get(&self, name: Option<&str>) -> CoreResult<Arc<dyn PaymentProvider>> {
        let name = name
            .or(self.default.as_deref())
            .ok_or_else(|| CoreError::Internal("no payment provider registered".into()))?;
        self.providers.get(name).cloned().ok_or_else(|| {
            CoreError::invalid_field(
                "payment.provider",
                "unknown_provider",
                format!("unknown payment provider `{name}`"),
            )
        })
    }

    /// Registered names.
    pub fn names(&self) -> Vec<String> {
        self.providers.keys().cloned().collect()
    }
}
