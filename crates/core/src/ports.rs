//! Storage ports.
//!
//! A use case opens a transaction with [`Store::begin`], reads and writes through it,
//! and commits; nothing is visible to others before the commit, and a dropped
//! transaction rolls back. Reads outside a transaction go through [`Store::read`].
//! The traits are small and grouped by aggregate; [`Tx`] and [`Reads`] bundle them so a
//! use case holds one object. Every method takes `&mut self` because a database
//! transaction is one connection used by one task at a time.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cart::Cart;
use crate::catalog::{Category, Product, ProductPage, ProductQuery, VariantSnapshot};
use crate::customer::{Customer, RefreshToken, Role};
use crate::error::CoreResult;
use crate::events::DomainEvent;
use crate::ids::{CartId, CustomerId, EventId, OrderId, ProductId, VariantId};
use crate::order::{Order, OrderQuery, OrderStatus};

/// Reading the catalog.
#[async_trait]
pub trait CatalogRead: Send {
    /// A product by id, drafts included.
    async fn product(&mut self, id: ProductId) -> CoreResult<Option<Product>>;
    /// A product by handle, drafts included.
    async fn product_by_handle(&mut self, handle: &str) -> CoreResult<Option<Product>>;
    /// A page of products matching a query.
    async fn products(&mut self, query: &ProductQuery) -> CoreResult<ProductPage>;
    /// All categories.
    async fn categories(&mut self) -> CoreResult<Vec<Category>>;
    /// Variants with their product, for carts; unknown ids are left out.
    async fn variants(&mut self, ids: &[VariantId]) -> CoreResult<Vec<VariantSnapshot>>;
}

/// Changing the catalog and stock.
#[async_trait]
pub trait CatalogWrite: Send {
    /// Inserts a product and its variants; `Conflict("handle_taken" | "sku_taken")` on
    /// duplicates.
    async fn insert_product(&mut self, product: &Product) -> CoreResult<()>;
    /// Replaces a product and its variant set (variants missing from it are deleted).
    async fn update_product(&mut self, product: &Product) -> CoreResult<()>;
    /// Deletes a product; false when it did not exist.
    async fn delete_product(&mut self, id: ProductId) -> CoreResult<bool>;
    /// Creates or renames a category.
    async fn upsert_category(&mut self, category: &Category) -> CoreResult<()>;
    /// Decrements stock by `qty` only if at least `qty` is on hand; returns the stock
    /// left, or `None` when there was not enough (nothing changed then). This single
    /// conditional update is what keeps stock from going negative under concurrency.
    async fn take_stock(&mut self, variant: VariantId, qty: i64) -> CoreResult<Option<i64>>;
    /// Returns stock (cancellation, expiry); a deleted variant is ignored.
    async fn return_stock(&mut self, variant: VariantId, qty: i64) -> CoreResult<()>;
}

/// Reading carts.
#[async_trait]
pub trait CartRead: Send {
    /// A cart by id. Inside a transaction ([`Tx`]) the read also locks the cart until
    /// commit or rollback, because every such read is followed by a write of the same
    /// cart: two checkouts of one cart then run one after the other, and the second
    /// sees it completed (PostgreSQL: `FOR UPDATE`; SQLite: its single writer).
    async fn cart(&mut self, id: CartId) -> CoreResult<Option<Cart>>;
}

/// Writing carts.
#[async_trait]
pub trait CartWrite: Send {
    /// Inserts or replaces a cart with its lines.
    async fn save_cart(&mut self, cart: &Cart) -> CoreResult<()>;
    /// Deletes open carts that expired before `now`; returns how many.
    async fn delete_expired_carts(&mut self, now: DateTime<Utc>) -> CoreResult<u64>;
}

/// Reading orders.
#[async_trait]
pub trait OrderRead: Send {
    /// An order by id. Inside a transaction ([`Tx`]) the read also locks the order until
    /// commit or rollback, as [`CartRead::cart`] does: the order is written back after,
    /// and two writers (a webhook delivered twice at once, the expiry sweeper) must not
    /// both act on what they read (PostgreSQL: `FOR UPDATE`; SQLite: its single writer).
    async fn order(&mut self, id: OrderId) -> CoreResult<Option<Order>>;
    /// Orders, newest first.
    async fn orders(&mut self, query: &OrderQuery) -> CoreResult<Vec<Order>>;
    /// Pending orders whose payment expired before `now`.
    async fn expired_pending_orders(
        &mut self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> CoreResult<Vec<OrderId>>;
}

/// Writing orders.
#[async_trait]
pub trait OrderWrite: Send {
    /// Inserts a new order.
    async fn insert_order(&mut self, order: &Order) -> CoreResult<()>;
    /// Saves a changed order (status, payment, fulfilment, history), only if its
    /// stored status is still `expected`; returns whether it did (false: someone else
    /// moved it first, or there is no such order, and nothing was written).
    async fn update_order_if(&mut self, order: &Order, expected: OrderStatus) -> CoreResult<bool>;
}

/// Reading users.
#[async_trait]
pub trait CustomerRead: Send {
    /// By id. Inside a transaction the account is locked until it ends (PostgreSQL:
    /// `FOR UPDATE`; SQLite: the single writer): logins, refreshes, password changes
    /// and staff changes read it there first, so a token is never stored after a reset
    /// or disable revoked the account's tokens, and two changes never undo each other.
    async fn customer(&mut self, id: CustomerId) -> CoreResult<Option<Customer>>;
    /// By (lowercased) e-mail.
    async fn customer_by_email(&mut self, email: &str) -> CoreResult<Option<Customer>>;
    /// Users with one of the given roles, oldest first.
    async fn customers_with_roles(&mut self, roles: &[Role]) -> CoreResult<Vec<Customer>>;
    /// A refresh token by its hash.
    async fn refresh_token(&mut self, token_hash: &str) -> CoreResult<Option<RefreshToken>>;
}

/// Writing users and refresh tokens.
#[async_trait]
pub trait CustomerWrite: Send {
    /// Inserts a user; `Conflict("email_taken")` on a duplicate e-mail.
    async fn insert_customer(&mut self, customer: &Customer) -> CoreResult<()>;
    /// Stores a new refresh token.
    async fn insert_refresh_token(&mut self, token: &RefreshToken) -> CoreResult<()>;
    /// Marks a token rotated; returns false if it was already used (a race or replay).
    async fn use_refresh_token(&mut self, token_hash: &str, at: DateTime<Utc>) -> CoreResult<bool>;
    /// Revokes every token of a rotation family.
    async fn revoke_refresh_family(&mut self, family: &str) -> CoreResult<()>;
    /// Stores an account's role, password hash and `disabled_at` (by id); `false` if
    /// no such account.
    async fn update_customer(&mut self, customer: &Customer) -> CoreResult<bool>;
    /// Revokes every refresh token of an account (disabled, password reset).
    async fn revoke_customer_tokens(&mut self, customer: CustomerId) -> CoreResult<()>;
}

/// A remembered answer to an idempotent request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// What the key is for, e.g. `checkout`.
    pub scope: String,
    /// The client's key.
    pub key: String,
    /// Hash of what the request was about (the cart id); a reused key for another
    /// request is refused.
    pub fingerprint: String,
    /// The resource the first request produced (an order id).
    pub resource_id: String,
    /// When recorded.
    pub created_at: DateTime<Utc>,
}

/// Reading idempotency keys.
#[async_trait]
pub trait IdempotencyRead: Send {
    /// A stored key.
    async fn idempotency(
        &mut self,
        scope: &str,
        key: &str,
    ) -> CoreResult<Option<IdempotencyRecord>>;
}

/// Storing idempotency keys.
#[async_trait]
pub trait IdempotencyWrite: Send {
    /// Stores a key; `Conflict("idempotency_conflict")` when it exists.
    async fn put_idempotency(&mut self, record: &IdempotencyRecord) -> CoreResult<()>;
}

/// One admin write, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Sequence number (assigned by storage; 0 before insert).
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Staff user.
    pub actor_id: Option<CustomerId>,
    /// Staff e-mail.
    pub actor_email: String,
    /// `product.create`, `order.fulfill`, `user.create`, ...
    pub action: String,
    /// Kind of target.
    pub target_type: String,
    /// Target id.
    pub target_id: String,
    /// Request summary (never secrets).
    pub details: serde_json::Value,
}

/// Reading the audit log.
#[async_trait]
pub trait AuditRead: Send {
    /// Entries newest first, optionally before an id.
    async fn audit_entries(
        &mut self,
        limit: u32,
        before: Option<i64>,
    ) -> CoreResult<Vec<AuditEntry>>;
}

/// Appending to the audit log.
#[async_trait]
pub trait AuditWrite: Send {
    /// Appends an entry.
    async fn append_audit(&mut self, entry: &AuditEntry) -> CoreResult<()>;
}

/// Writing events to the outbox, inside the business transaction.
#[async_trait]
pub trait EventWrite: Send {
    /// Appends events.
    async fn append_events(&mut self, events: &[DomainEvent]) -> CoreResult<()>;
}

/// A committed outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Position in the outbox (commit order within one writer).
    pub seq: i64,
    /// The event.
    pub event: DomainEvent,
}

/// Events committed but not yet acknowledged by the publisher: what monitoring watches
/// (a broker outage shows as a growing backlog).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxBacklog {
    /// Unsent rows.
    pub unsent: u64,
    /// When the oldest unsent event happened; `None` when nothing waits.
    pub oldest: Option<DateTime<Utc>>,
}

/// Sales of one product on one day in one destination country and currency, in the
/// sales-statistics projection. Figures are net: refunds and cancellations of paid
/// orders subtract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SalesRow {
    /// UTC day of payment (or of the refund, for negative entries).
    pub day: chrono::NaiveDate,
    /// Destination country.
    pub country: String,
    /// Product.
    pub product_id: ProductId,
    /// Currency of the revenue.
    pub currency: String,
    /// Orders containing the product.
    pub orders: i64,
    /// Units sold.
    pub units: i64,
    /// Revenue in minor units of `currency` (line totals). Sums saturate at the
    /// bounds of `i64` (about 9.2 x 10^18 minor units per day, country, product and
    /// currency) instead of overflowing: a figure at a bound reads "at least this".
    pub revenue_minor: i64,
}

/// A rendered notification, as the recording notifier keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationRecord {
    /// Sequence number (assigned by storage; 0 before insert).
    pub id: i64,
    /// The event that caused it: one notification per event and channel.
    pub event_id: EventId,
    /// `email`, `sms`, `kakao`, ...
    pub channel: String,
    /// Address it goes to.
    pub recipient: String,
    /// Locale it was rendered in.
    pub locale: String,
    /// Template, e.g. `order.placed`.
    pub template: String,
    /// Rendered subject.
    pub subject: String,
    /// Rendered body.
    pub body: String,
    /// When recorded.
    pub created_at: DateTime<Utc>,
}

/// Reading what event consumers built.
#[async_trait]
pub trait ProjectionRead: Send {
    /// Sales rows with `from <= day <= to`, by day, country, product.
    async fn sales(
        &mut self,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> CoreResult<Vec<SalesRow>>;
    /// Whether `consumer` recorded `event` as applied.
    async fn applied(&mut self, consumer: &str, event: EventId) -> CoreResult<bool>;
    /// Recorded notifications, newest first, optionally before an id.
    async fn notifications(
        &mut self,
        limit: u32,
        before: Option<i64>,
    ) -> CoreResult<Vec<NotificationRecord>>;
}

/// Writing consumer state, in the same transaction as the consumer's effect, so that an
/// event delivered twice is applied once.
#[async_trait]
pub trait ProjectionWrite: Send {
    /// Records that `consumer` applied `event`; false when it already had (the caller
    /// then does nothing more).
    async fn mark_applied(
        &mut self,
        consumer: &str,
        event: EventId,
        at: DateTime<Utc>,
    ) -> CoreResult<bool>;
    /// [`mark_applied`](Self::mark_applied) for several events: returns those not
    /// applied before, each once, in the order given. Consumers applying a batch call
    /// this once; a store with round trips overrides the default (one call per event)
    /// with a single statement.
    async fn mark_applied_many(
        &mut self,
        consumer: &str,
        events: &[EventId],
        at: DateTime<Utc>,
    ) -> CoreResult<Vec<EventId>> {
        let mut fresh = Vec::new();
        for event in events {
            if self.mark_applied(consumer, *event, at).await? {
                fresh.push(*event);
            }
        }
        Ok(fresh)
    }
    /// Adds (or, with negative figures, subtracts) sales; rows may repeat a key.
    async fn add_sales(&mut self, rows: &[SalesRow]) -> CoreResult<()>;
    /// Keeps a rendered notification; a second one for the same event and channel is
    /// ignored.
    async fn insert_notification(&mut self, n: &NotificationRecord) -> CoreResult<()>;
    /// [`insert_notification`](Self::insert_notification) for several, in order. The
    /// default calls it once per message.
    async fn insert_notifications(&mut self, messages: &[NotificationRecord]) -> CoreResult<()> {
        for message in messages {
            self.insert_notification(message).await?;
        }
        Ok(())
    }
}

/// A versioned document operators maintain at run time: a country's rules
/// (`country_rules` / `ID`), the exchange-rate table (`exchange_rates` / `default`).
/// Versions are never changed or deleted, so any past decision can be explained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleDocument {
    /// Kind of document.
    pub kind: String,
    /// Which one (a country code).
    pub key: String,
    /// 1, 2, ... per kind and key.
    pub version: i64,
    /// The document.
    pub doc: serde_json::Value,
    /// When stored.
    pub created_at: DateTime<Utc>,
    /// Who stored it (none for plugin defaults).
    pub actor_email: Option<String>,
}

/// Reading rule documents and buyers' past imports.
#[async_trait]
pub trait ComplianceRead: Send {
    /// The latest version of every document of a kind.
    async fn latest_documents(&mut self, kind: &str) -> CoreResult<Vec<RuleDocument>>;
    /// Versions of one document, newest first.
    async fn document_history(
        &mut self,
        kind: &str,
        key: &str,
        limit: u32,
    ) -> CoreResult<Vec<RuleDocument>>;
    /// The orders carrying `buyer_key` created in `[from, to)` that are not canceled
    /// or refunded, oldest first (for cumulative import limits).
    async fn buyer_orders(
        &mut self,
        buyer_key: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> CoreResult<Vec<crate::compliance::PastOrder>>;
}

/// Writing rule documents; serializing a buyer's checkouts.
#[async_trait]
pub trait ComplianceWrite: Send {
    /// Stores a new version; `Conflict("version_conflict")` when that version exists
    /// (another operator saved first).
    async fn insert_document(&mut self, doc: &RuleDocument) -> CoreResult<()>;
    /// Holds a lock on `buyer_key` until the transaction ends, so two checkouts of one
    /// buyer cannot both pass a cumulative limit (SQLite's single writer already
    /// serializes them; PostgreSQL takes a transaction-level advisory lock).
    async fn lock_buyer(&mut self, buyer_key: &str) -> CoreResult<()>;
}

/// Everything readable, bundled.
pub trait Reads:
    CatalogRead
    + CartRead
    + OrderRead
    + CustomerRead
    + IdempotencyRead
    + AuditRead
    + ProjectionRead
    + ComplianceRead
{
}
impl<
        T: CatalogRead
            + CartRead
            + OrderRead
            + CustomerRead
            + IdempotencyRead
            + AuditRead
            + ProjectionRead
            + ComplianceRead,
    > Reads for T
{
}

/// A transaction: every read and write, then commit. Dropping it rolls back.
#[async_trait]
pub trait Tx:
    Reads
    + CatalogWrite
    + CartWrite
    + OrderWrite
    + CustomerWrite
    + IdempotencyWrite
    + AuditWrite
    + EventWrite
    + ProjectionWrite
    + ComplianceWrite
{
    /// Checkout's first read: the cart, locked as [`CartRead::cart`] locks it, and the
    /// snapshots of the variants on its lines (unknown ids left out, as
    /// [`CatalogRead::variants`] does). The variants are not locked: their stock is
    /// what it was when read, and [`Tx::place_order`]'s decrement decides.
    ///
    /// The default makes the two reads; PostgreSQL makes them in one statement, a
    /// round trip less on the hottest write path.
    async fn cart_for_checkout(
        &mut self,
        id: CartId,
    ) -> CoreResult<Option<(Cart, Vec<VariantSnapshot>)>> {
        let Some(cart) = self.cart(id).await? else {
            return Ok(None);
        };
        let ids: Vec<VariantId> = cart.lines.iter().map(|l| l.variant_id).collect();
        let snaps = if ids.is_empty() {
            Vec::new()
        } else {
            self.variants(&ids).await?
        };
        Ok(Some((cart, snaps)))
    }

    /// Writes what a checkout produces: takes the stock (each entry a conditional
    /// decrement, as [`CatalogWrite::take_stock`]), writes the new order, the completed
    /// cart, the idempotency key (if any) and the events. Anything but
    /// [`Placement::Placed`] means the transaction is to be dropped, whatever was
    /// written: the key was stored by another request first (the caller replays that
    /// request's answer), or a variant had less stock than the order takes.
    ///
    /// The default calls the single-purpose writes; a backend with round trips
    /// (PostgreSQL) writes all of it in one statement, as checkout is the hottest
    /// write path.
    async fn place_order(&mut self, placed: &PlacedOrder<'_>) -> CoreResult<Placement> {
        if let Some(key) = placed.idempotency {
            if self.idempotency(&key.scope, &key.key).await?.is_some() {
                return Ok(Placement::KeyTaken);
            }
            self.put_idempotency(key).await?;
        }
        let mut stock_left = Vec::with_capacity(placed.stock.len());
        for take in placed.stock {
            match self.take_stock(take.variant, take.quantity).await? {
                Some(left) => stock_left.push(left),
                None => return Ok(Placement::OutOfStock(take.variant)),
            }
        }
        self.insert_order(placed.order).await?;
        self.save_cart(placed.cart).await?;
        self.append_events(placed.events).await?;
        Ok(Placement::Placed { stock_left })
    }

    /// Makes every change visible at once.
    async fn commit(self: Box<Self>) -> CoreResult<()>;
}

/// The writes of one checkout, for [`Tx::place_order`].
#[derive(Debug, Clone, Copy)]
pub struct PlacedOrder<'a> {
    /// The new order.
    pub order: &'a Order,
    /// Its cart, now completed and pointing at the order.
    pub cart: &'a Cart,
    /// The client's Idempotency-Key, when it sent one.
    pub idempotency: Option<&'a IdempotencyRecord>,
    /// The order's events, starting with `order.placed`.
    pub events: &'a [DomainEvent],
    /// The stock the order takes: one entry per variant, in variant id order, the
    /// order every checkout locks variant rows in, so two cannot deadlock.
    pub stock: &'a [StockTake],
}

/// Units one checkout takes from one variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockTake {
    /// The variant.
    pub variant: VariantId,
    /// How many units; positive.
    pub quantity: i64,
}

/// What [`Tx::place_order`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Everything is written; commit (after any `inventory.low` the stock left calls
    /// for).
    Placed {
        /// The stock left of each [`PlacedOrder::stock`] entry, in the same order.
        stock_left: Vec<i64>,
    },
    /// The idempotency key was already stored; drop the transaction.
    KeyTaken,
    /// This variant had less stock than the order takes; drop the transaction.
    OutOfStock(VariantId),
}

/// A storage backend.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Starts a read-write transaction.
    async fn begin(&self) -> CoreResult<Box<dyn Tx>>;
    /// A connection for reads outside a transaction.
    async fn read(&self) -> CoreResult<Box<dyn Reads>>;
    /// Unsent outbox rows, oldest first.
    async fn outbox_pending(&self, limit: u32) -> CoreResult<Vec<OutboxRow>>;
    /// Unsent outbox rows, oldest first, leaving out `skip` (rows published but not
    /// yet marked sent): the relay reads its next batch while it marks the last one.
    /// The default reads `skip.len()` more rows and drops those.
    async fn outbox_pending_skipping(
        &self,
        limit: u32,
        skip: &[i64],
    ) -> CoreResult<Vec<OutboxRow>> {
        if skip.is_empty() {
            return self.outbox_pending(limit).await;
        }
        let extra = u32::try_from(skip.len()).unwrap_or(u32::MAX);
        let skip: std::collections::HashSet<i64> = skip.iter().copied().collect();
        let rows = self.outbox_pending(limit.saturating_add(extra)).await?;
        Ok(rows
            .into_iter()
            .filter(|r| !skip.contains(&r.seq))
            .take(limit as usize)
            .collect())
    }
    /// Marks rows sent after the publisher acknowledged them.
    async fn outbox_mark_sent(&self, seqs: &[i64]) -> CoreResult<()>;
    /// How many rows wait to be published and since when (monitoring).
    async fn outbox_backlog(&self) -> CoreResult<OutboxBacklog>;
    /// Takes or renews the outbox lease for `ttl`; true when `holder` has it. Several
    /// relays may run (in several processes); only the lease holder publishes, so two
    /// live relays do not publish the same rows and per-entity order is kept. A holder
    /// that dies, or stalls longer than `ttl`, loses the lease; its last batch may then
    /// be published again by the next holder (at least once; consumers dedupe).
    async fn outbox_lease(&self, holder: &str, ttl: std::time::Duration) -> CoreResult<bool>;
    /// Gives the outbox lease up if `holder` has it (a relay that stops), so the next
    /// relay takes over at once instead of after the lease's `ttl`: without it a
    /// rolling restart holds every event back for up to 15 s. Another holder's lease
    /// is left alone. The default does nothing, which is correct but slow: the lease
    /// then runs out by itself.
    async fn outbox_release_lease(&self, holder: &str) -> CoreResult<()> {
        let _ = holder;
        Ok(())
    }
    /// Answers when the database is reachable (readiness).
    async fn ping(&self) -> CoreResult<()>;
    /// Deletes what is no longer needed: outbox rows sent before `sent_before`,
    /// idempotency keys created before `keys_before`, refresh tokens expired before
    /// `now`. Returns how many rows went.
    async fn prune(
        &self,
        sent_before: DateTime<Utc>,
        keys_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> CoreResult<u64>;
    /// Closes connections (on shutdown); the default does nothing.
    async fn close(&self) {}
    /// Gives back memory an idle store can do without (caches it refills on demand).
    /// The server calls it when a burst of work is over; the default does nothing.
    async fn release_memory(&self) {}
}

fn _assert_object_safe(_: &dyn Store, _: &dyn Tx, _: &dyn Reads) {}
