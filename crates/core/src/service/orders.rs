//! Order use cases after checkout: reading, cancelling, fulfilment, expiry.

use serde_json::json;

use crate::auth::{token_hash, Principal};
use crate::engine::Engine;
use crate::error::{CoreError, CoreResult};
use crate::events::DomainEvent;
use crate::ids::OrderId;
use crate::order::{Actor, Fulfillment, Order, OrderQuery, OrderStatus, PaymentStatus};
use crate::payment::RefundRequest;

use super::checkout::order_payload;

/// How old a `refunding` mark must be before another cancel may take it over (and put
/// the payment back if the provider refuses). Longer than any live cancel holds it: the
/// HTTP request timeout (30 s by default) drops a cancel long before, and provider
/// clients time out in seconds.
pub const REFUND_TAKEOVER: chrono::Duration = chrono::Duration::minutes(5);

/// How a buyer proves an order is theirs.
#[derive(Debug, Clone, Copy)]
pub enum OrderAccess<'a> {
    /// A signed-in buyer.
    Customer(&'a Principal),
    /// A guest with the order token from checkout.
    GuestToken(&'a str),
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl OrderAccess<'_> {
    fn allows(&self, order: &Order) -> bool {
        match self {
            OrderAccess::Customer(p) => order.customer_id == Some(p.id),
            OrderAccess::GuestToken(t) => order
                .guest_token_hash
                .as_deref()
                .is_some_and(|h| constant_time_eq(h, &token_hash(t))),
        }
    }
}

/// A page of orders, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderPage {
    /// Orders.
    pub orders: Vec<Order>,
    /// Pass as `before` for the next page; `None` on the last page.
    pub next: Option<OrderId>,
}

/// Fulfilment details from the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FulfillInput {
    /// Carrier.
    pub carrier: String,
    /// Tracking number.
    pub tracking_number: String,
}

impl Engine {
    /// A buyer's orders, newest first.
    pub async fn customer_orders(
        &self,
        who: &Principal,
        limit: u32,
        before: Option<OrderId>,
    ) -> CoreResult<OrderPage> {
        self.order_page(Some(who.id), None, limit, before).await
    }

    /// Reads one more than asked so the page knows whether another follows.
    async fn order_page(
        &self,
        customer_id: Option<crate::ids::CustomerId>,
        status: Option<OrderStatus>,
        limit: u32,
        before: Option<OrderId>,
    ) -> CoreResult<OrderPage> {
        let limit = limit.clamp(1, 100);
        let q = OrderQuery {
            customer_id,
            status,
            limit: limit + 1,
            before,
        };
        let mut orders = self.0.store.read().await?.orders(&q).await?;
        let next = if orders.len() > limit as usize {
            orders.truncate(limit as usize);
            orders.last().map(|o| o.id)
        } else {
            None
        };
        Ok(OrderPage { orders, next })
    }

    /// One order for its buyer. Someone else's order is "not found", not "forbidden",
    /// so ids cannot be probed.
    pub async fn customer_order(&self, id: OrderId, access: OrderAccess<'_>) -> CoreResult<Order> {
        let order = self.order_by_id(id).await?;
        if !access.allows(&order) {
            return Err(CoreError::NotFound { entity: "order" });
        }
        Ok(order)
    }

    /// The buyer cancels an order that is not yet fulfilled: the payment is refunded
    /// and the stock returns.
    pub async fn cancel_by_customer(
        &self,
        id: OrderId,
        access: OrderAccess<'_>,
        reason: Option<String>,
    ) -> CoreResult<Order> {
        let order = self.customer_order(id, access).await?;
        if !order.buyer_may_cancel() {
            return Err(CoreError::conflict(
                "invalid_state",
                format!(
                    "an order that is {} can no longer be canceled",
                    order.status.as_str()
                ),
            ));
        }
        self.cancel(order, access.actor_for(), reason).await
    }

    /// Orders for operators, newest first.
    pub async fn admin_orders(
        &self,
        status: Option<OrderStatus>,
        limit: u32,
        before: Option<OrderId>,
    ) -> CoreResult<OrderPage> {
        self.order_page(None, status, limit, before).await
    }

    /// Any order by id, without an ownership check (operators; use cases after they
    /// checked access).
    pub async fn order_by_id(&self, id: OrderId) -> CoreResult<Order> {
        self.0
            .store
            .read()
            .await?
            .order(id)
            .await?
            .ok_or(CoreError::NotFound { entity: "order" })
    }

    /// An operator cancels a pending or paid order.
    pub async fn cancel_by_staff(
        &self,
        staff: &Principal,
        id: OrderId,
        reason: Option<String>,
    ) -> CoreResult<Order> {
        let order = self.order_by_id(id).await?;
        if !matches!(order.status, OrderStatus::Pending | OrderStatus::Paid) {
            return Err(CoreError::conflict(
                "invalid_state",
                format!(
                    "an order that is {} cannot be canceled",
                    order.status.as_str()
                ),
            ));
        }
        let actor = Actor::Staff {
            id: staff.id,
            email: staff.email.clone(),
        };
        let audit = self.audit(
            staff,
            "order.cancel",
            "order",
            id,
            json!({"reason": reason}),
        );
        self.cancel_with_audit(order, actor, reason, Some(audit))
            .await
    }

    async fn cancel(
        &self,
        order: Order,
        actor: Actor,
        reason: Option<String>,
    ) -> CoreResult<Order> {
        self.cancel_with_audit(order, actor, reason, None).await
    }

    async fn cancel_with_audit(
        &self,
        order: Order,
        actor: Actor,
        reason: Option<String>,
        audit: Option<crate::ports::AuditEntry>,
    ) -> CoreResult<Order> {
        let refunded = if matches!(
            order.payment.status,
            PaymentStatus::Captured | PaymentStatus::Refunding
        ) {
            self.refund_for_cancel(order.id, reason.as_deref()).await?;
            true
        } else {
            false
        };
        let now = self.now();
        let mut tx = self.0.store.begin().await?;
        let mut current = tx
            .order(order.id)
            .await?
            .ok_or(CoreError::NotFound { entity: "order" })?;
        match (current.status, current.payment.status, refunded) {
            // A second cancel that waited on the refund behind the first one: the
            // order is already what the caller asked for.
            (OrderStatus::Canceled, PaymentStatus::Refunded, true) => return Ok(current),
            // The provider refunded: the order must say so, even if a cancel whose own
            // refund call failed put the payment back to `captured` meanwhile.
            (OrderStatus::Paid, PaymentStatus::Captured | PaymentStatus::Refunding, true) => {}
            (_, PaymentStatus::Captured | PaymentStatus::Refunding, false) => {
                // Paid between the first read and this one (a webhook, an operator's
                // confirmation): canceling now would keep the money without a refund.
                return Err(CoreError::conflict(
                    "concurrent_update",
                    "the order was paid while this request ran; read it again",
                ));
            }
            (OrderStatus::Fulfilled | OrderStatus::Delivered, _, true) => {
                // Shipped in the moment another cancel had put the payment back: the
                // money is returned all the same, so the order is recorded refunded.
                let shipped = current.status;
                self.record_refund(tx, current, actor, audit, now).await?;
                return Err(CoreError::conflict(
                    "invalid_state",
                    format!(
                        "the order was {} while the refund ran; the refund went through and the order is now refunded",
                        shipped.as_str()
                    ),
                ));
            }
            (_, _, true) => {
                return Err(CoreError::conflict(
                    "concurrent_update",
                    "the order changed while this request ran; read it again",
                ))
            }
            (_, _, false) => {}
        }
        current.transition(OrderStatus::Canceled, actor, reason, now)?;
        current.payment.status = if refunded {
            PaymentStatus::Refunded
        } else {
            PaymentStatus::Failed
        };
        current.payment_expires_at = None;
        restock(&mut tx, &current.lines).await?;
        save_transition(&mut tx, &current).await?;
        if let Some(a) = audit {
            tx.append_audit(&a).await?;
        }
        let events = [DomainEvent::new(
            "order.canceled",
            "order",
            current.id,
            now,
            order_payload(&current),
        )];
        self.commit(tx, &events).await?;
        self.invalidate_catalog_cache();
        Ok(current)
    }

    /// Writes a refund the provider made for an order that was shipped meanwhile:
    /// `fulfilled`/`delivered` -> `refunded`, with its event.
    async fn record_refund(
        &self,
        mut tx: Box<dyn crate::ports::Tx>,
        mut order: Order,
        actor: Actor,
        audit: Option<crate::ports::AuditEntry>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> CoreResult<Order> {
        order.transition(
            OrderStatus::Refunded,
            actor,
            Some("refunded by a cancellation that raced the fulfilment".into()),
            now,
        )?;
        order.payment.status = PaymentStatus::Refunded;
        save_transition(&mut tx, &order).await?;
        // The staff member's cancel moved the money: it belongs in the audit log.
        if let Some(a) = audit {
            tx.append_audit(&a).await?;
        }
        let events = [DomainEvent::new(
            "order.refunded",
            "order",
            order.id,
            now,
            order_payload(&order),
        )];
        self.commit(tx, &events).await?;
        Ok(order)
    }

    /// Refunds a paid order that is being canceled, so that nothing can ship it in
    /// between: the payment is marked `refunding` (which fulfilment refuses) and
    /// committed before the provider is called, and put back to `captured` if the
    /// provider refuses the call that marked it. An order left `refunding` (a crash, a
    /// request cut off by its timeout, an answer of unknown outcome) is finished by the
    /// next cancel, the provider deduping the refund by its per-order key; once the
    /// mark is older than [`REFUND_TAKEOVER`], that cancel owns it, so a refusal then
    /// puts the payment back instead of leaving the order neither shippable nor
    /// cancelable.
    async fn refund_for_cancel(&self, id: OrderId, reason: Option<&str>) -> CoreResult<()> {
        let mut tx = self.0.store.begin().await?;
        let mut order = tx
            .order(id)
            .await?
            .ok_or(CoreError::NotFound { entity: "order" })?;
        // Only the cancel that marked the payment `refunding` may put it back: another
        // one that finds it marked may be failing only because the first one's refund
        // is still with the provider. A mark older than any live cancel can be belongs
        // to no one, and is taken over.
        let now = self.now();
        let owner = match (order.status, order.payment.status) {
            (OrderStatus::Paid, PaymentStatus::Captured) => true,
            (OrderStatus::Paid, PaymentStatus::Refunding) => {
                order.updated_at <= now - REFUND_TAKEOVER
            }
            (status, _) => {
                return Err(CoreError::conflict(
                    "invalid_state",
                    format!(
                        "an order that is {} can no longer be canceled",
                        status.as_str()
                    ),
                ))
            }
        };
        if owner {
            order.payment.status = PaymentStatus::Refunding;
            order.updated_at = now;
            if !tx.update_order_if(&order, OrderStatus::Paid).await? {
                return Err(CoreError::conflict(
                    "concurrent_update",
                    "the order changed while this request ran; read it again",
                ));
            }
            tx.commit().await?;
        } else {
            drop(tx);
        }
        if let Err(e) = self
            .refund_payment(&order, reason.unwrap_or("canceled"))
            .await
        {
            // `Unavailable` (a timeout, the provider unreachable) says nothing about
            // whether the money moved: the order stays `refunding`, unshippable, and a
            // cancel sent again settles it with the same key. Any other error is the
            // provider's refusal: the order is paid as before.
            if owner && !matches!(e, CoreError::Unavailable(_)) {
                self.undo_refunding(id).await?;
            }
            return Err(e);
        }
        Ok(())
    }

    /// The provider refused a cancellation's refund: the order is paid as before.
    async fn undo_refunding(&self, id: OrderId) -> CoreResult<()> {
        let mut tx = self.0.store.begin().await?;
        if let Some(mut order) = tx.order(id).await? {
            if order.status == OrderStatus::Paid && order.payment.status == PaymentStatus::Refunding
            {
                order.payment.status = PaymentStatus::Captured;
                order.updated_at = self.now();
                tx.update_order_if(&order, OrderStatus::Paid).await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Gives the whole payment back through its provider. The key is per order, so a
    /// retry after a failure later in the use case never refunds twice.
    async fn refund_payment(&self, order: &Order, reason: &str) -> CoreResult<String> {
        let provider = self.0.payments.get(Some(&order.payment.provider))?;
        provider
            .refund(&RefundRequest {
                order_id: order.id,
                reference: order.payment.reference.clone().unwrap_or_default(),
                amount: order.payment.amount,
                reason: reason.to_string(),
                idempotency_key: format!("refund-{}", order.id),
            })
            .await
    }

    /// Hands a paid order to a carrier.
    pub async fn fulfill_order(
        &self,
        staff: &Principal,
        id: OrderId,
        input: FulfillInput,
    ) -> CoreResult<Order> {
        let mut errors = Vec::new();
        for (field, v) in [
            ("carrier", &input.carrier),
            ("tracking_number", &input.tracking_number),
        ] {
            if v.trim().is_empty() || v.len() > 100 || v.chars().any(char::is_control) {
                errors.push(crate::error::FieldError::new(
                    field,
                    "invalid_value",
                    "1-100 printable characters",
                ));
            }
        }
        if !errors.is_empty() {
            return Err(CoreError::validation(errors));
        }
        let now = self.now();
        self.staff_transition(
            staff,
            id,
            OrderStatus::Fulfilled,
            "order.fulfilled",
            "order.fulfill",
            move |o| {
                o.fulfillment = Some(Fulfillment {
                    carrier: input.carrier.trim().to_string(),
                    tracking_number: input.tracking_number.trim().to_string(),
                    fulfilled_at: now,
                });
            },
        )
        .await
    }

    /// Records delivery.
    pub async fn mark_delivered(&self, staff: &Principal, id: OrderId) -> CoreResult<Order> {
        self.staff_transition(
            staff,
            id,
            OrderStatus::Delivered,
            "order.delivered",
            "order.deliver",
            |_| {},
        )
        .await
    }

    /// Refunds a fulfilled or delivered order (a return).
    pub async fn refund_order(
        &self,
        staff: &Principal,
        id: OrderId,
        reason: Option<String>,
    ) -> CoreResult<Order> {
        let order = self.order_by_id(id).await?;
        if !order.status.can_become(OrderStatus::Refunded) {
            return Err(CoreError::conflict(
                "invalid_state",
                format!(
                    "an order that is {} cannot be refunded",
                    order.status.as_str()
                ),
            ));
        }
        self.refund_payment(&order, reason.as_deref().unwrap_or("refund"))
            .await?;
        self.staff_transition(
            staff,
            id,
            OrderStatus::Refunded,
            "order.refunded",
            "order.refund",
            |o| {
                o.payment.status = PaymentStatus::Refunded;
            },
        )
        .await
    }

    async fn staff_transition<F: FnOnce(&mut Order) + Send>(
        &self,
        staff: &Principal,
        id: OrderId,
        to: OrderStatus,
        event: &str,
        action: &str,
        change: F,
    ) -> CoreResult<Order> {
        let now = self.now();
        let mut tx = self.0.store.begin().await?;
        let mut order = tx
            .order(id)
            .await?
            .ok_or(CoreError::NotFound { entity: "order" })?;
        order.transition(
            to,
            Actor::Staff {
                id: staff.id,
                email: staff.email.clone(),
            },
            None,
            now,
        )?;
        change(&mut order);
        save_transition(&mut tx, &order).await?;
        tx.append_audit(&self.audit(
            staff,
            action,
            "order",
            id,
            json!({"status": to.as_str(), "fulfillment": order.fulfillment}),
        ))
        .await?;
        let events = [DomainEvent::new(
            event,
            "order",
            id,
            now,
            order_payload(&order),
        )];
        self.commit(tx, &events).await?;
        Ok(order)
    }

    /// Cancels pending orders whose payment window closed and returns their stock.
    /// Returns how many were canceled.
    pub async fn expire_pending_orders(&self) -> CoreResult<usize> {
        let ids = self
            .0
            .store
            .read()
            .await?
            .expired_pending_orders(self.now(), 500)
            .await?;
        let mut n = 0;
        for id in ids {
            let now = self.now();
            let mut tx = self.0.store.begin().await?;
            let Some(mut order) = tx.order(id).await? else {
                continue;
            };
            if order.status != OrderStatus::Pending {
                continue;
            }
            order.transition(
                OrderStatus::Canceled,
                Actor::System,
                Some("payment expired".into()),
                now,
            )?;
            order.payment.status = PaymentStatus::Failed;
            order.payment_expires_at = None;
            restock(&mut tx, &order.lines).await?;
            save_transition(&mut tx, &order).await?;
            let events = [DomainEvent::new(
                "order.canceled",
                "order",
                id,
                now,
                order_payload(&order),
            )];
            self.commit(tx, &events).await?;
            n += 1;
        }
        if n > 0 {
            self.invalidate_catalog_cache();
        }
        Ok(n)
    }
}

impl OrderAccess<'_> {
    fn actor_for(&self) -> Actor {
        match self {
            OrderAccess::Customer(p) => Actor::Customer { id: Some(p.id) },
            OrderAccess::GuestToken(_) => Actor::Customer { id: None },
        }
    }
}

/// Writes an order that just made a transition, only over the status it came from, so
/// two use cases moving the same order at once cannot both win (the database checks
/// it, whatever its isolation level).
/// Returns the stock of order lines, in variant-id order: the same global order in which
/// checkout takes it, so concurrent restocks and checkouts cannot deadlock on rows.
pub(crate) async fn restock(
    tx: &mut Box<dyn crate::ports::Tx>,
    lines: &[crate::order::OrderLine],
) -> CoreResult<()> {
    let mut by_variant: Vec<_> = lines.iter().collect();
    by_variant.sort_by_key(|l| l.variant_id);
    for l in by_variant {
        tx.return_stock(l.variant_id, l.quantity).await?;
    }
    Ok(())
}

async fn save_transition(tx: &mut Box<dyn crate::ports::Tx>, order: &Order) -> CoreResult<()> {
    let from = order
        .history
        .last()
        .and_then(|h| h.from)
        .unwrap_or(order.status);
    if tx.update_order_if(order, from).await? {
        Ok(())
    } else {
        Err(CoreError::conflict(
            "concurrent_update",
            "the order changed while this request ran; read it again",
        ))
    }
}
