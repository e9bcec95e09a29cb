//! Orders and their state machine.
//!
//! ```text
//! pending ──paid──> paid ──fulfill──> fulfilled ──deliver──> delivered
//!    │                │                   │                      │
//!    └──cancel/expire─┴──cancel(refund)   └──────refund──────────┴──> refunded
//!          v
//!       canceled
//! ```
//! Every change is recorded as a [`StatusChange`] and emits a domain event.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cart::{Address, Totals};
use crate::error::{CoreError, CoreResult};
use crate::ids::{CartId, CustomerId, OrderId, ProductId, VariantId};
use crate::money::{Currency, Money};

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Placed, stock reserved, waiting for the payment to confirm.
    Pending,
    /// Paid in full.
    Paid,
    /// Handed to the carrier.
    Fulfilled,
    /// Received by the buyer.
    Delivered,
    /// Canceled before fulfilment; stock returned, any payment refunded.
    Canceled,
    /// Refunded after fulfilment.
    Refunded,
}

impl OrderStatus {
    /// Every status.
    pub const ALL: [OrderStatus; 6] = [
        OrderStatus::Pending,
        OrderStatus::Paid,
        OrderStatus::Fulfilled,
        OrderStatus::Delivered,
        OrderStatus::Canceled,
        OrderStatus::Refunded,
    ];

    /// Storage / wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Paid => "paid",
            OrderStatus::Fulfilled => "fulfilled",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Canceled => "canceled",
            OrderStatus::Refunded => "refunded",
        }
    }

    /// Parses the storage form.
    pub fn parse(s: &str) -> CoreResult<Self> {
        OrderStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                CoreError::invalid_field(
                    "status",
                    "invalid_value",
                    format!("unknown order status `{s}`"),
                )
            })
    }

    /// Whether the machine allows `self -> to`.
    pub fn can_become(self, to: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, to),
            (Pending, Paid)
                | (Pending, Canceled)
                | (Paid, Fulfilled)
                | (Paid, Canceled)
                | (Fulfilled, Delivered)
                | (Fulfilled, Refunded)
                | (Delivered, Refunded)
        )
    }

    /// No further change is possible.
    pub fn is_terminal(self) -> bool {
        matches!(self, OrderStatus::Canceled | OrderStatus::Refunded)
    }
}

/// Payment state of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Waiting for the provider to confirm (virtual account, QR, redirect).
    Pending,
    /// Captured.
    Captured,
    /// Declined or expired.
    Failed,
    /// A cancellation sent the refund to the provider and waits for its answer; the
    /// order cannot be fulfilled meanwhile. A cancel sent again finishes it.
    Refunding,
    /// Given back.
    Refunded,
}

/// What the order knows of its payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentInfo {
    /// Provider name (`manual`, `toss`, ...).
    pub provider: String,
    /// Provider's reference for the payment, once known.
    pub reference: Option<String>,
    /// State.
    pub status: PaymentStatus,
    /// Amount to be paid.
    pub amount: Money,
    /// The provider's reason when the payment failed (`card_declined`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_code: Option<String>,
    /// References of payments the provider confirmed after the order was canceled
    /// (paid after expiry): money that must be refunded by hand, one entry per payment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub late_references: Vec<String>,
}

/// Shipping details once fulfilled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fulfillment {
    /// Carrier name (`cj`, `jne`, ...).
    pub carrier: String,
    /// Tracking number.
    pub tracking_number: String,
    /// When handed over.
    pub fulfilled_at: DateTime<Utc>,
}

/// A line copied from the cart at checkout; later catalog changes do not alter it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// Variant.
    pub variant_id: VariantId,
    /// Product.
    pub product_id: ProductId,
    /// SKU at checkout.
    pub sku: String,
    /// Title at checkout, in the order's locale.
    pub title: String,
    /// Quantity.
    pub quantity: i64,
    /// Unit price at checkout.
    pub unit_price: Money,
    /// Line total.
    pub line_total: Money,
    /// Tax of the line (included in the line total when the order's totals say so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax: Option<Money>,
}

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// The engine itself (expiry, webhook).
    System,
    /// A buyer, signed in or guest.
    Customer {
        /// Customer id; absent for guests.
        id: Option<CustomerId>,
    },
    /// An operator or admin.
    Staff {
        /// Staff user id.
        id: CustomerId,
        /// Staff e-mail, for the audit trail.
        email: String,
    },
    /// A payment provider's webhook.
    Provider {
        /// Provider name.
        name: String,
    },
}

/// One recorded transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    /// From (absent for the creation).
    pub from: Option<OrderStatus>,
    /// To.
    pub to: OrderStatus,
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: Actor,
    /// Why, free text.
    pub reason: Option<String>,
}

/// An order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Id.
    pub id: OrderId,
    /// Human-facing number, e.g. `JT-20261128-7F3KQ2`.
    pub number: String,
    /// Cart it came from.
    pub cart_id: CartId,
    /// Buyer, if signed in.
    pub customer_id: Option<CustomerId>,
    /// Contact e-mail.
    pub email: String,
    /// State.
    pub status: OrderStatus,
    /// Destination country.
    pub country: String,
    /// Currency.
    pub currency: Currency,
    /// Locale.
    pub locale: String,
    /// Lines.
    pub lines: Vec<OrderLine>,
    /// Totals.
    pub totals: Totals,
    /// Ship to.
    pub shipping_address: Address,
    /// Payment.
    pub payment: PaymentInfo,
    /// Shipping, once fulfilled.
    pub fulfillment: Option<Fulfillment>,
    /// Transitions, oldest first.
    pub history: Vec<StatusChange>,
    /// SHA-256 of the guest access token, hex; guests read their order with the token.
    pub guest_token_hash: Option<String>,
    /// A pending order is canceled and its stock released after this moment.
    pub payment_expires_at: Option<DateTime<Utc>>,
    /// Identifiers the buyer gave customs, sealed (never in events or logs).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub buyer_identifiers: crate::compliance::identifiers::SealedIdentifiers,
    /// Keyed hash of the identifier a yearly import limit counts by (storage indexes
    /// it to add up the buyer's orders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer_key: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Changed.
    pub updated_at: DateTime<Utc>,
}

impl Order {
    /// Moves to `to`, recording who and why; refuses transitions the machine forbids.
    pub fn transition(
        &mut self,
        to: OrderStatus,
        actor: Actor,
        reason: Option<String>,
        now: DateTime<Utc>,
    ) -> CoreResult<()> {
        if !self.status.can_become(to) {
            return Err(CoreError::conflict(
                "invalid_state",
                format!(
                    "order is {} and cannot become {}",
                    self.status.as_str(),
                    to.as_str()
                ),
            ));
        }
        if to == OrderStatus::Fulfilled && self.payment.status != PaymentStatus::Captured {
            // A cancellation is refunding the money: shipping now would give the goods
            // away as well.
            return Err(CoreError::conflict(
                "invalid_state",
                "a cancellation is refunding this order's payment; it cannot be fulfilled",
            ));
        }
        self.history.push(StatusChange {
            from: Some(self.status),
            to,
            at: now,
            actor,
            reason,
        });
        self.status = to;
        self.updated_at = now;
        Ok(())
    }

    /// Whether the buyer may still cancel (until fulfilled).
    pub fn buyer_may_cancel(&self) -> bool {
        matches!(self.status, OrderStatus::Pending | OrderStatus::Paid)
    }

    /// The currency-consistent sum of lines (used by tests and invariants).
    pub fn lines_subtotal(&self) -> CoreResult<Money> {
        self.lines
            .iter()
            .try_fold(Money::zero(self.currency), |acc, l| {
                acc.checked_add(l.line_total)
            })
    }
}

/// Filter for order listings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderQuery {
    /// Only this buyer's orders.
    pub customer_id: Option<CustomerId>,
    /// Only in this state.
    pub status: Option<OrderStatus>,
    /// Page size.
    pub limit: u32,
    /// Continue after this order (orders are listed newest first).
    pub before: Option<OrderId>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn status() -> impl Strategy<Value = OrderStatus> {
        proptest::sample::select(OrderStatus::ALL.to_vec())
    }

    #[test]
    fn the_happy_path_is_allowed() {
        use OrderStatus::*;
        for (a, b) in [
            (Pending, Paid),
            (Paid, Fulfilled),
            (Fulfilled, Delivered),
            (Delivered, Refunded),
        ] {
            assert!(a.can_become(b), "{a:?} -> {b:?}");
        }
        assert!(!Fulfilled.can_become(Canceled));
        assert!(!Paid.can_become(Pending));
    }

    proptest! {
        #[test]
        fn terminal_states_never_move(from in status(), to in status()) {
            if from.is_terminal() {
                prop_assert!(!from.can_become(to));
            }
        }

        #[test]
        fn no_state_moves_to_itself_or_back_to_pending(s in status()) {
            prop_assert!(!s.can_become(s));
            prop_assert!(!s.can_become(OrderStatus::Pending));
        }

        #[test]
        fn every_state_is_reachable_from_pending(target in status()) {
            // Breadth-first over the machine.
            let mut seen = vec![OrderStatus::Pending];
            let mut i = 0;
            while i < seen.len() {
                let s = seen[i];
                for t in OrderStatus::ALL { if s.can_become(t) && !seen.contains(&t) { seen.push(t); } }
                i += 1;
            }
            prop_assert!(seen.contains(&target));
        }
    }
}
