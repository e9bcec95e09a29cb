//! Checkout: a cart becomes an order.
//!
//! 1. One transaction takes the stock of every line (a conditional decrement that never
//!    goes below zero), writes the order as `pending`, marks the cart completed, stores
//!    the idempotency key and appends `order.placed`. Either all of it commits or none.
//! 2. Outside any transaction the payment provider is asked to collect. A database write
//!    lock is never held across a network call.
//! 3. A second transaction records the answer: captured -> `paid`; pending -> the order
//!    waits with its stock reserved until a verified webhook or the expiry sweeper ends
//!    it; declined -> `canceled`, stock returned, the cart reopened.
//!
//! A crash between 1 and 3 leaves a pending order whose reservation the expiry sweeper
//! releases, so stock never leaks.
//!
//! A provider that answers in process ([`PaymentProvider::answers_in_process`], the
//! built-in `manual`) is asked inside transaction 1 instead; a captured payment is then
//! written with the order (`order.placed` and `order.paid` in one commit), and any
//! other answer goes through step 3 as above.
//!
//! [`PaymentProvider::answers_in_process`]: crate::payment::PaymentProvider::answers_in_process

use std::collections::BTreeMap;

use serde_json::json;

use crate::auth::{derived_token, token_hash, Principal};
use crate::cart::CartStatus;
use crate::engine::Engine;
use crate::error::{CoreError, CoreResult};
use crate::events::DomainEvent;
use crate::ids::{CartId, OrderId};
use crate::money::Money;
use crate::order::{
    Actor, Order, OrderLine, OrderStatus, PaymentInfo, PaymentStatus, StatusChange,
};
use crate::payment::{NextAction, PaymentOutcome, PaymentRequest};
use crate::ports::{IdempotencyRecord, PlacedOrder, Placement, StockTake};

/// Payment choice sent with a completion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaymentChoice {
    /// Provider name; the default provider when absent.
    pub provider: Option<String>,
    /// Provider-specific fields (card token, method, return URL).
    pub data: BTreeMap<String, String>,
}

/// What a completion returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutResult {
    /// The order.
    pub order: Order,
    /// For guest orders, the token that lets the buyer read and cancel it (stored
    /// hashed; replays of the completion return it again).
    pub guest_token: Option<String>,
    /// For pending payments, what the buyer must do.
    pub next_action: Option<NextAction>,
    /// True when this answer repeats an earlier completion.
    pub replayed: bool,
}

const SCOPE: &str = "checkout";

pub(crate) fn order_payload(o: &Order) -> serde_json::Value {
    json!({
        "order_id": o.id, "number": o.number, "status": o.status.as_str(),
        "customer_id": o.customer_id, "email": o.email, "country": o.country,
        "currency": o.currency, "locale": o.locale, "totals": o.totals,
        "lines": o.lines.iter().map(|l| json!({
            "variant_id": l.variant_id, "product_id": l.product_id, "sku": l.sku,
            "quantity": l.quantity, "unit_price": l.unit_price, "line_total": l.line_total,
            "tax": l.tax,
        })).collect::<Vec<_>>(),
        "payment": {"provider": o.payment.provider, "status": o.payment.status},
        "fulfillment": o.fulfillment,
    })
}

/// A replayed checkout shows a buyer's order to that buyer only (guest orders to whoever
/// holds the cart); anyone else is told there is no such cart.
fn replay_owner_only(order: &Order, caller: Option<&Principal>) -> CoreResult<()> {
    match (order.customer_id, caller) {
        (Some(owner), Some(p)) if owner == p.id => Ok(()),
        (Some(_), _) => Err(CoreError::NotFound { entity: "cart" }),
        (None, _) => Ok(()),
    }
}

fn order_number(prefix: &str, now: chrono::DateTime<chrono::Utc>, id: OrderId) -> String {
    // Crockford base32 of the random tail of the UUID v7: readable, no I/L/O/U.
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let bytes = id.0.as_bytes();
    let mut n = u64::from_be_bytes([
        bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15],
    ]);
    let mut tail = String::with_capacity(8);
    for _ in 0..8 {
        tail.push(ALPHABET[(n % 32) as usize] as char);
        n /= 32;
    }
    format!("{prefix}-{}-{tail}", now.format("%Y%m%d"))
}

/// A captured payment: the order becomes `paid`; returns its `order.paid` event.
fn capture(
    order: &mut Order,
    reference: String,
    actor: Actor,
    now: chrono::DateTime<chrono::Utc>,
) -> CoreResult<DomainEvent> {
    order.payment.reference = Some(reference);
    order.payment.status = PaymentStatus::Captured;
    order.payment_expires_at = None;
    order.transition(OrderStatus::Paid, actor, None, now)?;
    Ok(DomainEvent::new(
        "order.paid",
        "order",
        order.id,
        now,
        order_payload(order),
    ))
}

/// Checks an `Idempotency-Key`: 1-255 visible ASCII characters.
pub fn validate_idempotency_key(key: &str) -> CoreResult<()> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CoreError::invalid_field(
            "Idempotency-Key",
            "invalid_idempotency_key",
            "1-255 visible ASCII characters",
        ));
    }
    Ok(())
}

impl Engine {
    /// Completes a cart: reserves stock, places the order, collects payment.
    pub async fn complete_cart(
        &self,
        cart_id: CartId,
        idempotency_key: Option<&str>,
        payment: PaymentChoice,
        caller: Option<&Principal>,
    ) -> CoreResult<CheckoutResult> {
        if let Some(k) = idempotency_key {
            validate_idempotency_key(k)?;
        }
        let provider = self.0.payments.get(payment.provider.as_deref())?;
        let now = self.now();
        // Rules are read before the transaction: a reload inside it would ask for a
        // second connection while holding the writer.
        let rules = self.rules_snapshot().await;

        let mut tx = self.0.store.begin().await?;
        // The key is not looked up first: a stored key means a retry, and a retry
        // finds its cart completed (or loses the key insert below), so a lookup would
        // only cost every first attempt a round trip.
        // The variants come with the cart (one round trip on PostgreSQL); they are
        // only used once the cart turns out to be open and ready.
        let Some((mut cart, snaps)) = tx.cart_for_checkout(cart_id).await? else {
            drop(tx);
            // A key used for another cart is refused even when this one is gone.
            if let Some(stored) = self.replay_stored(idempotency_key, cart_id, caller).await? {
                return Ok(stored);
            }
            return Err(CoreError::NotFound { entity: "cart" });
        };
        if cart.status == CartStatus::Completed {
            drop(tx);
            if let Some(stored) = self.replay_stored(idempotency_key, cart_id, caller).await? {
                return Ok(stored);
            }
            // A retry without a key (or with a new one) still gets the first order.
            Self::check_owner(&cart, caller)?;
            let order_id = cart
                .order_id
                .ok_or_else(|| CoreError::Internal("completed cart without order".into()))?;
            let result = self.replayed_order(order_id).await?;
            // A guest cart a signed-in buyer completed: the cart is anyone's who has its
            // id, the order only its buyer's.
            replay_owner_only(&result.order, caller)?;
            return Ok(result);
        }
        Self::check_owner(&cart, caller)?;
        cart.ensure_open(now)?;
        let email = cart.email.clone().ok_or_else(|| {
            CoreError::invalid_field("email", "required", "set an e-mail on the cart first")
        })?;
        let address = cart.shipping_address.clone().ok_or_else(|| {
            CoreError::invalid_field(
                "shipping_address",
                "required",
                "set a shipping address on the cart first",
            )
        })?;
        if cart.lines.is_empty() {
            return Err(CoreError::invalid("cart_empty", "the cart has no lines"));
        }

        // Yearly limits read the buyer's past orders under a lock on the buyer, in this
        // transaction, so two checkouts of one buyer cannot both pass the limit.
        let (history, buyer_key) = self.buyer_history(&rules, tx.as_mut(), &cart).await?;
        let priced = self
            .price_and_check(&rules, &cart, &snaps, true, Some(&history))
            .await?;
        if !priced.compliance.ok {
            return Err(CoreError::Compliance(priced.compliance.violations));
        }

        // `place_order` takes the stock, one conditional decrement per variant, in one
        // global order (by variant id): two checkouts that share variants lock their
        // rows in the same order and cannot deadlock.
        let mut by_variant: Vec<_> = priced.lines.iter().collect();
        by_variant.sort_by_key(|l| l.variant_id);
        let mut stock: Vec<StockTake> = Vec::with_capacity(by_variant.len());
        for line in &by_variant {
            match stock.last_mut() {
                Some(t) if t.variant == line.variant_id => t.quantity += line.quantity,
                _ => stock.push(StockTake {
                    variant: line.variant_id,
                    quantity: line.quantity,
                }),
            }
        }
        let mut events = Vec::new();

        let order_id = OrderId::new();
        let customer_id = cart.customer_id.or(caller.map(|p| p.id));
        let guest_token = customer_id.is_none().then(|| self.guest_token(order_id));
        let actor = Actor::Customer { id: customer_id };
        let mut order = Order {
            id: order_id,
            number: order_number(&self.0.settings.order_prefix, now, order_id),
            cart_id,
            customer_id,
            email,
            status: OrderStatus::Pending,
            country: cart.country.clone(),
            currency: cart.currency,
            locale: cart.locale.clone(),
            lines: priced
                .lines
                .iter()
                .map(|l| OrderLine {
                    variant_id: l.variant_id,
                    product_id: l.product_id,
                    sku: l.sku.clone(),
                    title: l.title.clone(),
                    quantity: l.quantity,
                    unit_price: l.unit_price,
                    line_total: l.line_total,
                    tax: Some(l.tax),
                })
                .collect(),
            totals: priced.totals,
            shipping_address: address,
            payment: PaymentInfo {
                provider: provider.name().to_string(),
                reference: None,
                status: PaymentStatus::Pending,
                amount: priced.totals.total,
                failure_code: None,
                late_references: Vec::new(),
            },
            buyer_identifiers: cart.buyer_identifiers.clone(),
            buyer_key,
            fulfillment: None,
            history: vec![StatusChange {
                from: None,
                to: OrderStatus::Pending,
                at: now,
                actor: actor.clone(),
                reason: None,
            }],
            guest_token_hash: guest_token.as_deref().map(token_hash),
            payment_expires_at: Some(now + self.0.settings.payment_ttl),
            created_at: now,
            updated_at: now,
        };
        let request = PaymentRequest {
            order_id,
            order_number: order.number.clone(),
            amount: order.totals.total,
            email: order.email.clone(),
            data: payment.data,
            idempotency_key: format!("pay-{order_id}"),
        };
        let provider_actor = Actor::Provider {
            name: provider.name().into(),
        };
        events.insert(
            0,
            DomainEvent::new(
                "order.placed",
                "order",
                order_id,
                now,
                order_payload(&order),
            ),
        );
        // Step 2 inside the transaction when the provider does no I/O: a capture is
        // then written with the order, saving the second commit of step 3.
        let early = if provider.answers_in_process() {
            Some(provider.authorize(&request).await)
        } else {
            None
        };
        if let Some(Ok(PaymentOutcome::Captured { reference })) = &early {
            events.push(capture(
                &mut order,
                reference.clone(),
                provider_actor.clone(),
                now,
            )?);
        }
        cart.status = CartStatus::Completed;
        cart.order_id = Some(order_id);
        cart.updated_at = now;
        let key = idempotency_key.map(|key| IdempotencyRecord {
            scope: SCOPE.into(),
            key: key.to_string(),
            fingerprint: cart_id.to_string(),
            resource_id: order_id.to_string(),
            created_at: now,
        });
        let placed = PlacedOrder {
            order: &order,
            cart: &cart,
            idempotency: key.as_ref(),
            events: &events,
            stock: &stock,
        };
        match tx.place_order(&placed).await? {
            Placement::Placed { stock_left } => {
                // `inventory.low` needs the stock left, known only now: a write of its
                // own in the same transaction, made only when stock fell that low.
                let low: Vec<DomainEvent> = stock
                    .iter()
                    .zip(&stock_left)
                    .filter_map(|(take, left)| {
                        let line = by_variant.iter().find(|l| l.variant_id == take.variant)?;
                        self.low_stock_event(line.product_id, take.variant, &line.sku, *left)
                    })
                    .collect();
                if !low.is_empty() {
                    tx.append_events(&low).await?;
                }
            }
            Placement::KeyTaken => {
                // Another request stored this key first (a concurrent retry, or the
                // key reused for another cart): nothing of this attempt is kept.
                drop(tx);
                return match self.replay_stored(idempotency_key, cart_id, caller).await? {
                    Some(stored) => Ok(stored),
                    // Stored and pruned since: rare enough that the client may retry.
                    None => Err(CoreError::conflict(
                        "idempotency_conflict",
                        "another request used this Idempotency-Key; retry",
                    )),
                };
            }
            Placement::OutOfStock(variant) => {
                // Dropping the transaction undoes whatever was taken or written.
                drop(tx);
                let requested = stock
                    .iter()
                    .find(|t| t.variant == variant)
                    .map_or(0, |t| t.quantity);
                // What was on hand when the cart was read, capped below the request:
                // stock the failed decrement proves was not there.
                let available = snaps
                    .iter()
                    .find(|s| s.variant.id == variant)
                    .map_or(0, |s| s.variant.stock);
                return Err(CoreError::OutOfStock {
                    variant_id: variant.to_string(),
                    requested,
                    available: available.min(requested - 1).max(0),
                });
            }
        }
        // The events went in with `place_order`: commit and wake the relay.
        tx.commit().await?;
        self.0.relay_wake.notify_one();
        // Counted once the buyer's answer is known: paid, pending (the provider
        // confirms later, or could not be asked) or declined (order canceled).
        let counted = |outcome: &'static str| {
            metrics::counter!(
                "jangteo_checkouts_total",
                "provider" => provider.name().to_string(), "outcome" => outcome
            )
            .increment(1);
        };
        if order.status == OrderStatus::Paid {
            counted("paid");
            return Ok(CheckoutResult {
                order,
                guest_token,
                next_action: None,
                replayed: false,
            });
        }

        // Step 2: the provider, outside the transaction (unless it answered above).
        let answered = match early {
            Some(answer) => answer,
            None => provider.authorize(&request).await,
        };
        let outcome = match answered {
            Ok(o) => o,
            Err(e) => {
                // The provider (or its plugin) refused the request itself, e.g. payment
                // data it cannot use: nothing was charged. The order is canceled as for
                // a decline (stock back, cart open again) and the buyer gets the
                // reason, so the payment can be corrected and the cart completed
                // again; otherwise the order would hold its stock, unpayable, until
                // it expired.
                if let Some(code) = refusal_code(&e) {
                    let declined = PaymentOutcome::Declined {
                        code,
                        message: e.to_string(),
                    };
                    self.record_payment_outcome(
                        order_id,
                        Some(order),
                        declined,
                        provider_actor,
                        None,
                    )
                    .await?;
                    counted("declined");
                    return Err(e);
                }
                metrics::counter!("jangteo_payment_provider_errors_total", "provider" => provider.name().to_string())
                    .increment(1);
                counted("pending");
                // The order stays pending with its stock reserved; a webhook or the
                // expiry sweeper settles it.
                tracing::warn!(order = %order_id, error = %e, "payment provider failed; order left pending");
                return Ok(CheckoutResult {
                    order,
                    guest_token,
                    next_action: None,
                    replayed: false,
                });
            }
        };
        let (order, next_action) = match self
            .record_payment_outcome(order_id, Some(order), outcome, provider_actor, None)
            .await
        {
            Ok(recorded) => recorded,
            Err(e) => {
                // The order is placed (pending, stock reserved) but the provider's
                // answer was not written: the buyer gets the error, a retry replays
                // the order, and a webhook or the expiry settles it.
                counted("unrecorded");
                return Err(e);
            }
        };
        if is_declined(&order) {
            counted("declined");
            return Err(declined_error(&order));
        }
        // Canceled meanwhile (the buyer in another tab, staff, the expiry): the order
        // is answered as it is; a payment taken anyway is in its `late_references`.
        counted(match order.status {
            OrderStatus::Paid => "paid",
            OrderStatus::Pending => "pending",
            _ => "canceled",
        });
        Ok(CheckoutResult {
            order,
            guest_token,
            next_action,
            replayed: false,
        })
    }

    /// Step 3: writes what the provider answered.
    /// `known` is the order as the caller last saw it (checkout just wrote it); the
    /// write below only succeeds if it is still pending, so a concurrent webhook or
    /// sweeper is never overwritten and the writer is spared a read.
    async fn record_payment_outcome(
        &self,
        order_id: OrderId,
        known: Option<Order>,
        outcome: PaymentOutcome,
        actor: Actor,
        audit: Option<crate::ports::AuditEntry>,
    ) -> CoreResult<(Order, Option<NextAction>)> {
        let now = self.now();
        let mut tx = self.0.store.begin().await?;
        // Always read (and lock) the stored order, even when the caller holds a copy:
        // a webhook may have written to it meanwhile (an unmatched payment in
        // `late_references` on a still-pending order), which writing the copy back
        // would erase. The copy only spares the read when it is settled already.
        if known
            .as_ref()
            .is_some_and(|o| o.status != OrderStatus::Pending)
        {
            drop(tx);
            return self.settled_meanwhile(order_id, outcome).await;
        }
        let mut order = tx
            .order(order_id)
            .await?
            .ok_or(CoreError::NotFound { entity: "order" })?;
        if order.status != OrderStatus::Pending {
            // Someone (webhook, sweeper, a cancel) settled it meanwhile.
            drop(tx);
            return self.settled_meanwhile(order_id, outcome).await;
        }
        // Money the provider took, should the order turn out settled meanwhile.
        let captured = match &outcome {
            PaymentOutcome::Captured { reference } => Some(reference.clone()),
            _ => None,
        };
        let mut events = Vec::new();
        let mut next = None;
        let mut declined = false;
        match outcome {
            PaymentOutcome::Captured { reference } => {
                events.push(capture(&mut order, reference, actor, now)?);
            }
            PaymentOutcome::Pending {
                reference,
                expires_at,
                next_action,
            } => {
                order.payment.reference = Some(reference);
                if let Some(at) = expires_at {
                    order.payment_expires_at =
                        Some(order.payment_expires_at.map_or(at, |cur| cur.min(at)));
                }
                order.updated_at = now;
                next = next_action;
            }
            PaymentOutcome::Declined { code, message } => {
                order.payment.status = PaymentStatus::Failed;
                order.payment.failure_code = Some(code.clone());
                order.payment_expires_at = None;
                order.transition(
                    OrderStatus::Canceled,
                    actor,
                    Some(format!("payment declined: {code}: {message}")),
                    now,
                )?;
                declined = true;
                events.push(DomainEvent::new(
                    "order.canceled",
                    "order",
                    order.id,
                    now,
                    order_payload(&order),
                ));
            }
        }
        // The order row first, then stock and cart: cancel and expiry lock in that
        // order too, so a decline recorded while they run cannot deadlock with them.
        if !tx.update_order_if(&order, OrderStatus::Pending).await? {
            // Settled meanwhile (webhook, sweeper, a cancel): nothing of ours is
            // written, but money taken is put on record.
            drop(tx);
            let outcome = match captured {
                Some(reference) => PaymentOutcome::Captured { reference },
                None => PaymentOutcome::Declined {
                    code: String::new(),
                    message: String::new(),
                },
            };
            return self.settled_meanwhile(order_id, outcome).await;
        }
        if declined {
            super::orders::restock(&mut tx, &order.lines).await?;
            // The buyer may try again with another card.
            if let Some(mut cart) = tx.cart(order.cart_id).await? {
                cart.status = CartStatus::Open;
                cart.order_id = None;
                cart.updated_at = now;
                tx.save_cart(&cart).await?;
            }
        }
        if let Some(a) = audit {
            tx.append_audit(&a).await?;
        }
        let returned_stock = order.status == OrderStatus::Canceled;
        self.commit(tx, &events).await?;
        if returned_stock {
            self.invalidate_catalog_cache();
        }
        Ok((order, next))
    }

    /// A provider's answer for an order someone settled first: a capture is money
    /// the order no longer takes (canceled meanwhile, or paid by another payment), so
    /// it is put on record for a refund; any other answer changes nothing.
    async fn settled_meanwhile(
        &self,
        order_id: OrderId,
        outcome: PaymentOutcome,
    ) -> CoreResult<(Order, Option<NextAction>)> {
        if let PaymentOutcome::Captured { reference } = outcome {
            self.record_unapplied_payment(order_id, reference, None)
                .await?;
        }
        Ok((self.order_by_id(order_id).await?, None))
    }

    /// The stored answer for `key`, if a request with it was recorded.
    async fn replay_stored(
        &self,
        key: Option<&str>,
        cart_id: CartId,
        caller: Option<&Principal>,
    ) -> CoreResult<Option<CheckoutResult>> {
        let Some(key) = key else { return Ok(None) };
        let stored = self.0.store.read().await?.idempotency(SCOPE, key).await?;
        match stored {
            Some(rec) => self.replay(rec, cart_id, caller).await.map(Some),
            None => Ok(None),
        }
    }

    async fn replay(
        &self,
        rec: IdempotencyRecord,
        cart_id: CartId,
        caller: Option<&Principal>,
    ) -> CoreResult<CheckoutResult> {
        if rec.fingerprint != cart_id.to_string() {
            return Err(CoreError::invalid(
                "idempotency_key_reused",
                "this Idempotency-Key was used for another request",
            ));
        }
        let order_id: OrderId = rec
            .resource_id
            .parse()
            .map_err(|_| CoreError::Internal("bad idempotency record".into()))?;
        let result = self.replayed_order(order_id).await?;
        replay_owner_only(&result.order, caller)?;
        Ok(result)
    }

    async fn replayed_order(&self, order_id: OrderId) -> CoreResult<CheckoutResult> {
        let order = self.order_by_id(order_id).await?;
        if is_declined(&order) {
            return Err(declined_error(&order));
        }
        // Guests lose nothing if the first answer was lost: the token is derived.
        let guest_token = order
            .customer_id
            .is_none()
            .then(|| self.guest_token(order.id));
        Ok(CheckoutResult {
            order,
            guest_token,
            next_action: None,
            replayed: true,
        })
    }

    /// The access token of a guest order (derived from the engine secret).
    fn guest_token(&self, order_id: OrderId) -> String {
        derived_token(&self.0.secret, &format!("jangteo-order-token:{order_id}"))
    }

    /// A provider's webhook: verified by the provider plugin, then applied once.
    pub async fn handle_payment_webhook(
        &self,
        provider: &str,
        headers: &std::collections::HashMap<String, String>,
        body: &[u8],
    ) -> CoreResult<()> {
        // A webhook URL naming no installed provider is a path that does not exist,
        // not a bad checkout field.
        let p = self
            .0
            .payments
            .get(Some(provider))
            .map_err(|_| CoreError::NotFound {
                entity: "payment provider",
            })?;
        let verified = p.verify_webhook(headers, body).await;
        let outcome = match &verified {
            Ok(crate::payment::WebhookEvent::Paid { .. }) => "paid",
            Ok(crate::payment::WebhookEvent::Failed { .. }) => "failed",
            Ok(crate::payment::WebhookEvent::Ignored) => "ignored",
            Err(_) => "refused",
        };
        // A provider's integration breaking (secret rotated, format changed) shows as
        // refused webhooks before buyers complain that paid orders stay pending.
        metrics::counter!("jangteo_payment_webhooks_total", "provider" => provider.to_string(), "outcome" => outcome)
            .increment(1);
        match verified? {
            crate::payment::WebhookEvent::Paid {
                order_id,
                reference,
                amount,
            } => {
                let order = self.provider_order(order_id, provider).await?;
                if amount != order.payment.amount {
                    // The money is real even if it does not match: kept on record for
                    // a refund (and answered 2xx, so the provider stops redelivering).
                    self.record_unapplied_payment(order_id, reference, Some(amount))
                        .await?;
                    return Ok(());
                }
                // A capture for an order settled meanwhile is put on record there.
                self.record_payment_outcome(
                    order_id,
                    None,
                    PaymentOutcome::Captured { reference },
                    Actor::Provider {
                        name: provider.into(),
                    },
                    None,
                )
                .await?;
                Ok(())
            }
            crate::payment::WebhookEvent::Failed { order_id, reason } => {
                self.provider_order(order_id, provider).await?;
                self.record_payment_outcome(
                    order_id,
                    None,
                    PaymentOutcome::Declined {
                        code: "payment_failed".into(),
                        message: reason,
                    },
                    Actor::Provider {
                        name: provider.into(),
                    },
                    None,
                )
                .await?;
                Ok(())
            }
            crate::payment::WebhookEvent::Ignored => Ok(()),
        }
    }
}

impl Engine {
    /// The order a provider's webhook names, if that provider takes its payment: one
    /// provider's webhook never settles (or cancels) another's order, such as a
    /// `manual` bank transfer only an operator may confirm.
    async fn provider_order(&self, order_id: OrderId, provider: &str) -> CoreResult<Order> {
        let order = self.order_by_id(order_id).await?;
        if order.payment.provider != provider {
            // As for an unknown order: this provider has no such order.
            return Err(CoreError::NotFound { entity: "order" });
        }
        Ok(order)
    }

    /// Money a provider took that the order does not take: paid after the order was
    /// canceled (expired, canceled by the buyer while paying), a second payment for an
    /// order already paid, or an amount that is not the order's (`mismatch`, the amount
    /// paid). Someone must refund it: the reference is kept in the order's
    /// `payment.late_references` and one event is emitted per reference, however often
    /// the provider redelivers (they retry until they see a 2xx, sometimes several
    /// deliveries at once): the order read in the transaction holds the order, so a
    /// racing delivery waits and then finds the reference. The order's own payment
    /// delivered again (captured, refunding or refunded) is no new money and records
    /// nothing.
    async fn record_unapplied_payment(
        &self,
        order_id: OrderId,
        reference: String,
        mismatch: Option<Money>,
    ) -> CoreResult<()> {
        let now = self.now();
        let mut tx = self.0.store.begin().await?;
        let mut order = tx
            .order(order_id)
            .await?
            .ok_or(CoreError::NotFound { entity: "order" })?;
        let own_payment = order.payment.reference.as_deref() == Some(reference.as_str())
            && matches!(
                order.payment.status,
                PaymentStatus::Captured | PaymentStatus::Refunding | PaymentStatus::Refunded
            );
        if (own_payment && mismatch.is_none()) || order.payment.late_references.contains(&reference)
        {
            return Ok(());
        }
        let read_as = order.status;
        order.payment.late_references.push(reference.clone());
        order.updated_at = now;
        if !tx.update_order_if(&order, read_as).await? {
            return Ok(());
        }
        let (event_type, reason) = match (read_as, mismatch) {
            (OrderStatus::Canceled, _) => ("order.payment_after_cancel", "after_cancel"),
            (_, Some(_)) => ("order.payment_unmatched", "amount_mismatch"),
            _ => ("order.payment_unmatched", "already_paid"),
        };
        let provider = order.payment.provider.clone();
        let amount = mismatch.unwrap_or(order.payment.amount);
        // Whoever refunds needs to know which payment: the snapshot names the order only.
        let mut payload = order_payload(&order);
        payload["late_payment"] = json!({
            "provider": provider, "reference": reference, "amount": amount, "reason": reason,
        });
        let ev = DomainEvent::new(event_type, "order", order_id, now, payload);
        self.commit(tx, &[ev]).await?;
        tracing::error!(order = %order_id, %provider, %reference, reason, "a payment the order does not take; refund needed");
        Ok(())
    }

    /// An operator confirms a pending payment collected outside any provider API (the
    /// `manual` provider: a bank transfer checked by hand, cash on delivery). Payments of
    /// real providers are confirmed only by their verified webhooks.
    pub async fn confirm_manual_payment(
        &self,
        staff: &Principal,
        id: OrderId,
        reference: Option<String>,
    ) -> CoreResult<Order> {
        let order = self.order_by_id(id).await?;
        if order.status != OrderStatus::Pending {
            return Err(CoreError::conflict(
                "invalid_state",
                format!(
                    "an order that is {} has no payment to confirm",
                    order.status.as_str()
                ),
            ));
        }
        if order.payment.provider != "manual" {
            return Err(CoreError::conflict(
                "provider_confirms",
                format!(
                    "payments by `{}` are confirmed by the provider's webhook",
                    order.payment.provider
                ),
            ));
        }
        if reference.as_ref().is_some_and(|r| r.chars().count() > 200) {
            return Err(CoreError::invalid_field(
                "reference",
                "too_long",
                "at most 200 characters",
            ));
        }
        // A blank reference is no reference: the order always names its payment.
        let reference = reference
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| format!("manual_{id}"));
        let audit = self.audit(
            staff,
            "order.confirm_payment",
            "order",
            id,
            json!({"reference": reference}),
        );
        let actor = Actor::Staff {
            id: staff.id,
            email: staff.email.clone(),
        };
        let (order, _) = self
            .record_payment_outcome(
                id,
                None,
                PaymentOutcome::Captured { reference },
                actor,
                Some(audit),
            )
            .await?;
        if order.payment.status != PaymentStatus::Captured {
            // Settled by someone else meanwhile (canceled, expired): nothing was
            // confirmed, and the operator must know before telling the buyer otherwise.
            return Err(CoreError::conflict(
                "invalid_state",
                format!(
                    "the order became {} (payment {:?}) while this request ran; nothing was confirmed",
                    order.status.as_str(),
                    order.payment.status
                ),
            ));
        }
        Ok(order)
    }
}

/// The failure code of an `authorize` error that is a refusal of the request itself
/// (nothing charged); `None` for errors whose outcome is unknown.
fn refusal_code(e: &CoreError) -> Option<String> {
    match e {
        CoreError::Invalid { code, .. } => Some((*code).to_string()),
        CoreError::PaymentDeclined { code, .. } => Some(code.clone()),
        _ => None,
    }
}

/// Canceled because the provider declined the payment (not by a cancel or expiry,
/// which record no failure code).
fn is_declined(order: &Order) -> bool {
    order.status == OrderStatus::Canceled
        && order.payment.status == PaymentStatus::Failed
        && order.payment.failure_code.is_some()
}

fn declined_error(order: &Order) -> CoreError {
    let reason = order
        .history
        .last()
        .and_then(|h| h.reason.clone())
        .unwrap_or_default();
    CoreError::PaymentDeclined {
        code: order
            .payment
            .failure_code
            .clone()
            .unwrap_or_else(|| "payment_declined".into()),
        message: format!("the payment was not accepted ({reason})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_numbers_are_readable() {
        let n = order_number("JT", chrono::Utc::now(), OrderId::new());
        assert_eq!(n.len(), "JT-20261128-".len() + 8);
        assert!(n
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-'));
    }

    #[test]
    fn idempotency_keys_are_checked() {
        assert!(validate_idempotency_key("abc-123").is_ok());
        assert!(validate_idempotency_key("").is_err());
        assert!(validate_idempotency_key("has space").is_err());
        assert!(validate_idempotency_key(&"x".repeat(256)).is_err());
    }
}
