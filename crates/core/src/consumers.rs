//! Event consumers: buyer notifications, sales statistics, catalog cache invalidation.
//!
//! Each is an [`EventHandler`]. Transports deliver every event at least once, in batches
//! (the Kafka consumer groups in production, [`FanOut`] in the embedded setup); the
//! handlers make a second delivery harmless, and apply a batch in one transaction where
//! they write. Statistics record the event ids in the same transaction as their effect
//! ([`ProjectionWrite::mark_applied_many`](crate::ports::ProjectionWrite::mark_applied_many)),
//! so a sale counts once; notifications are sent before their mark, so an external
//! notifier may see an event twice (with the same event id to dedupe on) while the store
//! notifier keeps one. Applied ids are kept for the pruning window (`prune`'s
//! `keys_before`).
//!
//! Errors: `CoreError::Internal` means "this event can never be applied" (a malformed
//! payload) and transports skip it; any other error means "try again later".

use std::sync::Arc;

use async_trait::async_trait;
use fluent_bundle::FluentArgs;
use serde::Deserialize;

use crate::engine::Engine;
use crate::error::{CoreError, CoreResult};
use crate::events::{apply_batch, DomainEvent, EventHandler, EventPublisher, InProcessBus};
use crate::ids::ProductId;
use crate::money::{Currency, Money};
use crate::ports::{NotificationRecord, SalesRow, Store};

/// Sends a rendered notification to a buyer (e-mail, SMS, Kakao alimtalk, ...).
#[async_trait]
pub trait Notifier: Send + Sync + std::fmt::Debug {
    /// Sends one message. `message.event_id` is a natural idempotency key for providers
    /// that accept one: a redelivered event may call this twice.
    async fn send(&self, message: &NotificationRecord) -> CoreResult<()>;

    /// Sends several messages, in order; an error means some may not have been sent
    /// (they all come again). Called only when [`Notifier::keeps_one_per_event`] is
    /// true, so a repeated message changes nothing. The default sends one at a time.
    async fn send_many(&self, messages: &[NotificationRecord]) -> CoreResult<()> {
        for message in messages {
            self.send(message).await?;
        }
        Ok(())
    }

    /// True when `send` itself keeps at most one message per event id and channel (a
    /// repeated send changes nothing). The consumer then skips its own record of
    /// applied events: one transaction per notification instead of two, plus a read.
    fn keeps_one_per_event(&self) -> bool {
        false
    }
}

fn _assert_object_safe(_: &dyn Notifier) {}

/// The default notifier: keeps every message in the store (readable at
/// `GET /admin/notifications`), once per event and channel. Real senders wrap or replace it.
#[derive(Debug, Clone)]
pub struct StoreNotifier {
    store: Arc<dyn Store>,
}

impl StoreNotifier {
    /// Records into `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        StoreNotifier { store }
    }
}

#[async_trait]
impl Notifier for StoreNotifier {
    async fn send(&self, message: &NotificationRecord) -> CoreResult<()> {
        self.send_many(std::slice::from_ref(message)).await
    }

    /// One transaction for the whole batch: a commit per message was most of what
    /// the notifications consumer cost the database.
    async fn send_many(&self, messages: &[NotificationRecord]) -> CoreResult<()> {
        let mut tx = self.store.begin().await?;
        tx.insert_notifications(messages).await?;
        tx.commit().await
    }

    /// `insert_notification` keeps one per event and channel (a storage contract).
    fn keeps_one_per_event(&self) -> bool {
        true
    }
}

/// The order fields consumers read from an order event's payload.
#[derive(Debug, Deserialize)]
struct OrderPayload {
    number: String,
    email: String,
    country: String,
    currency: String,
    locale: String,
    totals: PayloadTotals,
    lines: Vec<PayloadLine>,
    payment: PayloadPayment,
}

#[derive(Debug, Deserialize)]
struct PayloadTotals {
    total: PayloadMoney,
}

#[derive(Debug, Deserialize)]
struct PayloadMoney {
    amount: String,
    currency: String,
}

#[derive(Debug, Deserialize)]
struct PayloadLine {
    product_id: ProductId,
    quantity: i64,
    line_total: PayloadMoney,
}

#[derive(Debug, Deserialize)]
struct PayloadPayment {
    status: String,
}

impl PayloadMoney {
    /// The amount; a bad one is `Internal` (permanent: the event can never be applied).
    fn money(&self) -> CoreResult<Money> {
        self.currency
            .parse::<Currency>()
            .and_then(|c| Money::parse(&self.amount, c))
            .map_err(|e| CoreError::Internal(format!("bad money in an order event: {e}")))
    }
}

fn order_payload(event: &DomainEvent) -> CoreResult<OrderPayload> {
    serde_json::from_value(event.payload.clone()).map_err(|e| {
        // Not retryable: the same bytes will never parse. Surfaces in the logs.
        CoreError::Internal(format!(
            "event {} ({}) has a malformed order payload: {e}",
            event.id, event.event_type
        ))
    })
}

/// Message templates, one Fluent file per locale.
pub(crate) const TEMPLATES: &[(&str, &str)] = &[
    ("en", include_str!("../locales/en/notifications.ftl")),
    ("ko", include_str!("../locales/ko/notifications.ftl")),
    ("id", include_str!("../locales/id/notifications.ftl")),
];

/// The notification templates of every locale, parsed once.
struct Templates(crate::i18n::Catalog);

impl Templates {
    fn load() -> CoreResult<Self> {
        crate::i18n::Catalog::load("notification", TEMPLATES).map(Templates)
    }

    /// Renders `id` in the first of `locale`, its language, English that has it.
    fn render(
        &self,
        locale: &str,
        id: &str,
        args: &FluentArgs<'_>,
    ) -> CoreResult<(String, String)> {
        let (subject, _) = self.0.render(&[locale], id, Some("subject"), args)?;
        let (body, _) = self.0.render(&[locale], id, None, args)?;
        Ok((subject, body))
    }
}

/// Renders buyer notifications for order events and hands them to a [`Notifier`].
pub struct OrderNotifications {
    store: Arc<dyn Store>,
    notifier: Arc<dyn Notifier>,
    templates: Templates,
}

impl std::fmt::Debug for OrderNotifications {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderNotifications")
            .field("notifier", &self.notifier)
            .finish_non_exhaustive()
    }
}

impl OrderNotifications {
    /// Consumer name (Kafka group suffix, dedupe key).
    pub const NAME: &'static str = "notifications";

    /// A consumer recording applied events in `store` and sending through `notifier`.
    pub fn new(store: Arc<dyn Store>, notifier: Arc<dyn Notifier>) -> CoreResult<Self> {
        Ok(OrderNotifications {
            store,
            notifier,
            templates: Templates::load()?,
        })
    }
}

#[async_trait]
impl EventHandler for OrderNotifications {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn wants(&self, event_type: &str) -> bool {
        matches!(
            event_type,
            "order.placed" | "order.paid" | "order.canceled" | "order.fulfilled"
        )
    }

    fn aggregate_types(&self) -> Option<&[&str]> {
        Some(&["order"])
    }

    async fn handle(&self, event: &DomainEvent) -> CoreResult<()> {
        let message = self.render(event)?;
        if self.notifier.keeps_one_per_event() {
            return self.notifier.send(&message).await;
        }
        // Applied already? A plain read: the send must not happen inside a transaction
        // (a notifier may write to the same store, and SQLite has one writer).
        if self
            .store
            .read()
            .await?
            .applied(Self::NAME, event.id)
            .await?
        {
            return Ok(());
        }
        // Sent before the mark: if sending fails nothing is marked and the event comes
        // again; if marking fails after a send, the send repeats with the same event id
        // (at least once towards the provider, which can dedupe on it; the store
        // notifier keeps one per event).
        self.notifier.send(&message).await?;
        let mut tx = self.store.begin().await?;
        // Marked with the time of application, not of the event, so a late delivery's
        // mark is not pruned at once.
        if tx
            .mark_applied(Self::NAME, event.id, chrono::Utc::now())
            .await?
        {
            tx.commit().await?;
        }
        Ok(())
    }

    async fn handle_batch(&self, events: &[&DomainEvent]) -> CoreResult<()> {
        if !self.notifier.keeps_one_per_event() {
            // Each message needs its own applied check and mark around its send.
            for event in events {
                self.handle(event).await?;
            }
            return Ok(());
        }
        // Rendered first: a malformed event fails the batch before anything is sent
        // (`Internal`, so the transport retries one at a time and skips it).
        let messages = events
            .iter()
            .map(|e| self.render(e))
            .collect::<CoreResult<Vec<_>>>()?;
        self.notifier.send_many(&messages).await
    }
}

impl OrderNotifications {
    /// The buyer's message for an order event, in the order's locale.
    fn render(&self, event: &DomainEvent) -> CoreResult<NotificationRecord> {
        let order = order_payload(event)?;
        let mut args = FluentArgs::new();
        args.set("number", order.number.clone());
        args.set("total", order.totals.total.money()?.to_string());
        if let Some(f) = event.payload.get("fulfillment") {
            let text = |k: &str| f.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
            args.set("carrier", text("carrier"));
            args.set("tracking", text("tracking_number"));
        } else {
            args.set("carrier", "");
            args.set("tracking", "");
        }
        let template = event.event_type.replace('.', "-");
        let (subject, body) = self.templates.render(&order.locale, &template, &args)?;
        Ok(NotificationRecord {
            id: 0,
            event_id: event.id,
            channel: "email".into(),
            recipient: order.email,
            locale: order.locale,
            template: event.event_type.clone(),
            subject,
            body,
            created_at: event.occurred_at,
        })
    }
}

/// Sales per day, destination country and product: paid orders add, refunds and
/// cancellations of paid orders subtract.
#[derive(Debug, Clone)]
pub struct SalesStatistics {
    store: Arc<dyn Store>,
}

impl SalesStatistics {
    /// Consumer name.
    pub const NAME: &'static str = "sales-statistics";

    /// A projection kept in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        SalesStatistics { store }
    }

    /// The rows an event adds; empty for events that do not move sales.
    fn rows(event: &DomainEvent) -> CoreResult<Vec<SalesRow>> {
        let order = order_payload(event)?;
        let sign = match event.event_type.as_str() {
            "order.paid" => 1,
            "order.refunded" => -1,
            // A canceled order only counted if it had been paid (and is now refunded).
            "order.canceled" if order.payment.status == "refunded" => -1,
            _ => return Ok(Vec::new()),
        };
        let day = event.occurred_at.date_naive();
        let mut rows: Vec<SalesRow> = Vec::new();
        for line in &order.lines {
            let revenue = line.line_total.money()?.minor_units();
            match rows.iter_mut().find(|r| r.product_id == line.product_id) {
                Some(r) => {
                    r.units += sign * line.quantity;
                    // Saturating, as the stores sum: see `SalesRow::revenue_minor`.
                    r.revenue_minor = r.revenue_minor.saturating_add(sign * revenue);
                }
                None => rows.push(SalesRow {
                    day,
                    country: order.country.clone(),
                    product_id: line.product_id,
                    currency: order.currency.clone(),
                    orders: sign,
                    units: sign * line.quantity,
                    revenue_minor: sign * revenue,
                }),
            }
        }
        Ok(rows)
    }
}

#[async_trait]
impl EventHandler for SalesStatistics {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn wants(&self, event_type: &str) -> bool {
        matches!(
            event_type,
            "order.paid" | "order.refunded" | "order.canceled"
        )
    }

    fn aggregate_types(&self) -> Option<&[&str]> {
        Some(&["order"])
    }

    async fn handle(&self, event: &DomainEvent) -> CoreResult<()> {
        self.handle_batch(&[event]).await
    }

    /// One transaction for the batch: the events are marked applied together (a
    /// repeated one adds nothing) and the rows of the new ones added together.
    async fn handle_batch(&self, events: &[&DomainEvent]) -> CoreResult<()> {
        // Computed first: a malformed event fails the batch before anything is written.
        let per_event = events
            .iter()
            .map(|e| Ok((e.id, Self::rows(e)?)))
            .collect::<CoreResult<Vec<_>>>()?;
        let moving: Vec<_> = per_event
            .iter()
            .filter(|(_, rows)| !rows.is_empty())
            .map(|(id, _)| *id)
            .collect();
        if moving.is_empty() {
            return Ok(());
        }
        let mut tx = self.store.begin().await?;
        let mut fresh: std::collections::HashSet<_> = tx
            .mark_applied_many(Self::NAME, &moving, chrono::Utc::now())
            .await?
            .into_iter()
            .collect();
        let mut sales: Vec<SalesRow> = Vec::new();
        for (id, rows) in per_event {
            // Taken out once used: an event twice in the batch counts once.
            if fresh.remove(&id) {
                sales.extend(rows);
            }
        }
        if sales.is_empty() {
            return Ok(());
        }
        tx.add_sales(&sales).await?;
        tx.commit().await
    }
}

/// Drops cached catalog pages when the catalog or stock changes, in this instance and
/// in the shared cache. Applying it twice is harmless, so it records nothing.
#[derive(Debug, Clone)]
pub struct CatalogCacheInvalidation {
    engine: Engine,
}

impl CatalogCacheInvalidation {
    /// Consumer name. Every server instance needs every catalog event, so transports
    /// give each instance its own group (see the Kafka adapter).
    pub const NAME: &'static str = "catalog-cache";

    /// Invalidates `engine`'s caches.
    pub fn new(engine: Engine) -> Self {
        CatalogCacheInvalidation { engine }
    }
}

#[async_trait]
impl EventHandler for CatalogCacheInvalidation {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn wants(&self, event_type: &str) -> bool {
        event_type.starts_with("product.")
            || event_type.starts_with("inventory.")
            || event_type.starts_with("compliance.")
    }

    /// `compliance.*` events belong to a country's rules or to the exchange rates.
    fn aggregate_types(&self) -> Option<&[&str]> {
        Some(&["product", "inventory", "country", "exchange_rates"])
    }

    async fn handle(&self, event: &DomainEvent) -> CoreResult<()> {
        self.handle_batch(&[event]).await
    }

    /// A batch of catalog events needs one invalidation, not one per event.
    async fn handle_batch(&self, events: &[&DomainEvent]) -> CoreResult<()> {
        if events
            .iter()
            .any(|e| e.event_type.starts_with("compliance."))
        {
            // Rules or rates changed on some instance: re-read them here too; this
            // also drops every cached page, listings filtered by the old ones included.
            self.engine.rules_changed().await;
        } else if !events.is_empty() {
            self.engine.invalidate_catalog_cache_everywhere().await;
        }
        Ok(())
    }
}

/// The embedded transport: the outbox relay publishes to this, which broadcasts on the
/// in-process bus and calls every handler before reporting success. A handler error
/// fails the publish, so the relay delivers the batch again later (handlers dedupe).
#[derive(Debug, Clone)]
pub struct FanOut {
    bus: InProcessBus,
    handlers: Vec<Arc<dyn EventHandler>>,
}

impl FanOut {
    /// Fans out to `bus` subscribers and `handlers`.
    pub fn new(bus: InProcessBus, handlers: Vec<Arc<dyn EventHandler>>) -> Self {
        FanOut { bus, handlers }
    }
}

#[async_trait]
impl EventPublisher for FanOut {
    async fn publish(&self, events: &[DomainEvent]) -> CoreResult<()> {
        for h in &self.handlers {
            let wanted: Vec<&DomainEvent> =
                events.iter().filter(|e| h.wants(&e.event_type)).collect();
            // Skips (and logs) events that can never be applied, so they cannot block
            // the ones behind them; any other error fails the publish.
            apply_batch(h.as_ref(), &wanted).await?;
        }
        self.bus.publish(events).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order_event(event_type: &str, payment_status: &str) -> DomainEvent {
        DomainEvent::new(
            event_type,
            "order",
            "o1",
            chrono::Utc::now(),
            json!({
                "order_id": "o1", "number": "JT-20261128-ABCDEFGH", "status": "paid",
                "email": "b@example.com", "country": "ID", "currency": "IDR", "locale": "id",
                "totals": {"total": {"amount": "250000", "currency": "IDR"}},
                "lines": [
                    {"product_id": "01932c07-7a2b-7d5e-9b1a-3c8e4f2a1b07", "quantity": 2,
                     "line_total": {"amount": "200000", "currency": "IDR"}},
                    {"product_id": "01932c07-7a2b-7d5e-9b1a-3c8e4f2a1b07", "quantity": 1,
                     "line_total": {"amount": "50000", "currency": "IDR"}}
                ],
                "payment": {"provider": "manual", "status": payment_status},
                "fulfillment": null
            }),
        )
    }

    #[test]
    fn templates_render_in_every_locale_and_fall_back_to_english() {
        let t = Templates::load().unwrap();
        let mut args = FluentArgs::new();
        args.set("number", "JT-1");
        args.set("total", "39000 KRW");
        args.set("carrier", "cj");
        args.set("tracking", "123");
        for (locale, needle) in [
            ("ko", "결제"),
            ("id", "Pembayaran"),
            ("en", "Payment"),
            ("ko-KR", "결제"),
            ("fr", "Payment"),
        ] {
            let (subject, body) = t.render(locale, "order-paid", &args).unwrap();
            assert!(
                body.contains(needle) && body.contains("JT-1"),
                "{locale}: {body}"
            );
            assert!(subject.contains("JT-1"), "{locale}: {subject}");
            assert!(!body.contains('\u{2068}'), "no isolation marks");
        }
        for id in [
            "order-placed",
            "order-paid",
            "order-canceled",
            "order-fulfilled",
        ] {
            for (locale, _) in TEMPLATES {
                let (s, b) = t.render(locale, id, &args).unwrap();
                assert!(!s.is_empty() && !b.is_empty(), "{locale} {id}");
            }
        }
    }

    #[test]
    fn sales_rows_add_on_payment_and_subtract_on_refund() {
        let paid = SalesStatistics::rows(&order_event("order.paid", "captured")).unwrap();
        assert_eq!(paid.len(), 1, "lines of one product are summed");
        assert_eq!(
            (paid[0].orders, paid[0].units, paid[0].revenue_minor),
            (1, 3, 250_000)
        );
        assert_eq!(paid[0].country, "ID");
        let refunded = SalesStatistics::rows(&order_event("order.refunded", "refunded")).unwrap();
        assert_eq!(
            (
                refunded[0].orders,
                refunded[0].units,
                refunded[0].revenue_minor
            ),
            (-1, -3, -250_000)
        );
        let canceled_paid =
            SalesStatistics::rows(&order_event("order.canceled", "refunded")).unwrap();
        assert_eq!(canceled_paid[0].units, -3);
        let canceled_unpaid =
            SalesStatistics::rows(&order_event("order.canceled", "failed")).unwrap();
        assert!(canceled_unpaid.is_empty(), "an unpaid order never counted");
        assert!(
            SalesStatistics::rows(&order_event("order.placed", "pending"))
                .unwrap()
                .is_empty()
        );
        let mut bad = order_event("order.paid", "captured");
        bad.payload = json!({"nope": 1});
        assert!(matches!(
            SalesStatistics::rows(&bad),
            Err(CoreError::Internal(_))
        ));
    }
}
