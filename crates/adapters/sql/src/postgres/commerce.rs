//! Carts, orders, customers, tokens, idempotency keys, the audit log and the outbox
//! writes (PostgreSQL).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use jangteo_core::cart::{Cart, CartStatus};
use jangteo_core::catalog::VariantSnapshot;
use jangteo_core::customer::{Customer, RefreshToken, Role};
use jangteo_core::events::DomainEvent;
use jangteo_core::ids::{CartId, CustomerId, OrderId, VariantId};
use jangteo_core::order::{Order, OrderQuery, OrderStatus};
use jangteo_core::ports::{
    AuditEntry, AuditWrite, CartWrite, CustomerWrite, EventWrite, IdempotencyRecord,
    IdempotencyWrite, OrderWrite, PlacedOrder, Placement,
};
use jangteo_core::CoreResult;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::{Conn, PgReader, PgTx};
use crate::error::{json, map};

fn doc<T: serde::de::DeserializeOwned>(row: &PgRow) -> CoreResult<T> {
    serde_json::from_str(&row.try_get::<String, _>("doc").map_err(map)?).map_err(json)
}

fn customer_from_row(r: &PgRow) -> CoreResult<Customer> {
    Ok(Customer {
        id: CustomerId(r.try_get("id").map_err(map)?),
        email: r.try_get("email").map_err(map)?,
        password_hash: r.try_get("password_hash").map_err(map)?,
        role: Role::parse(&r.try_get::<String, _>("role").map_err(map)?)?,
        created_at: r.try_get("created_at").map_err(map)?,
        disabled_at: r.try_get("disabled_at").map_err(map)?,
        session_version: r.try_get("session_version").map_err(map)?,
    })
}

async fn cart(conn: &mut PgConnection, id: CartId) -> CoreResult<Option<Cart>> {
    doc_by_id(
        conn,
        "SELECT doc::text AS doc FROM carts WHERE id = $1",
        id.0,
    )
    .await
}

/// A cart read inside a transaction: it is written back before commit, so the row is
/// locked, and a second checkout of the same cart waits, then sees it completed
/// (READ COMMITTED alone would let both place an order).
async fn cart_for_update(conn: &mut PgConnection, id: CartId) -> CoreResult<Option<Cart>> {
    let sql = "SELECT doc::text AS doc FROM carts WHERE id = $1 FOR UPDATE";
    doc_by_id(conn, sql, id.0).await
}

/// The variant ids come out of the locked cart's document, so they are the ids of the
/// cart as it is now, not as a racing writer left it before the lock.
static CART_FOR_CHECKOUT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH c AS (SELECT doc FROM carts WHERE id = $1 FOR UPDATE)
         SELECT c.doc::text AS doc, s.* FROM c LEFT JOIN LATERAL ({} WHERE v.id IN (
             SELECT (l->>'variant_id')::uuid FROM jsonb_array_elements(c.doc->'lines') l)
         ) s ON TRUE",
        super::catalog::snapshot_select()
    )
});

/// The cart locked as [`cart_for_update`] locks it, and the snapshots of its lines'
/// variants, in one statement: one row per variant found (the cart's document repeated)
/// or a single row with no variant when none is.
pub(crate) async fn cart_for_checkout(
    conn: &mut PgConnection,
    id: CartId,
) -> CoreResult<Option<(Cart, Vec<VariantSnapshot>)>> {
    let rows = sqlx::query(CART_FOR_CHECKOUT.as_str())
        .bind(id.0)
        .fetch_all(&mut *conn)
        .await
        .map_err(map)?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let cart: Cart = doc(first)?;
    Ok(Some((cart, super::catalog::snapshots_from_rows(&rows)?)))
}

async fn doc_by_id<T: serde::de::DeserializeOwned>(
    conn: &mut PgConnection,
    sql: &'static str,
    id: Uuid,
) -> CoreResult<Option<T>> {
    let row = sqlx::query(sql)
        .bind(id)
        .fetch_optional(conn)
        .await
        .map_err(map)?;
    row.as_ref().map(doc).transpose()
}

async fn order(conn: &mut PgConnection, id: OrderId) -> CoreResult<Option<Order>> {
    doc_by_id(
        conn,
        "SELECT doc::text AS doc FROM orders WHERE id = $1",
        id.0,
    )
    .await
}

/// An order read inside a transaction: it is written back before commit (a payment
/// recorded, a status changed), so the row is locked and a racing writer (a webhook
/// delivered twice at once, the expiry sweeper) waits, then sees what this one wrote.
async fn order_for_update(conn: &mut PgConnection, id: OrderId) -> CoreResult<Option<Order>> {
    let sql = "SELECT doc::text AS doc FROM orders WHERE id = $1 FOR UPDATE";
    doc_by_id(conn, sql, id.0).await
}

async fn orders(conn: &mut PgConnection, q: &OrderQuery) -> CoreResult<Vec<Order>> {
    let mut qb = QueryBuilder::<Postgres>::new("SELECT doc::text AS doc FROM orders WHERE TRUE");
    if let Some(c) = q.customer_id {
        qb.push(" AND customer_id = ").push_bind(c.0);
    }
    if let Some(s) = q.status {
        qb.push(" AND status = ").push_bind(s.as_str());
    }
    if let Some(b) = q.before {
        qb.push(" AND id < ").push_bind(b.0);
    }
    qb.push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(q.limit.max(1)));
    let rows = qb.build().fetch_all(conn).await.map_err(map)?;
    rows.iter().map(doc).collect()
}

async fn expired_pending(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: u32,
) -> CoreResult<Vec<OrderId>> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM orders WHERE status = 'pending' AND payment_expires_at < $1 ORDER BY payment_expires_at LIMIT $2",
    )
    .bind(now)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await
    .map_err(map)?;
    Ok(ids.into_iter().map(OrderId).collect())
}

async fn customer(conn: &mut PgConnection, id: CustomerId) -> CoreResult<Option<Customer>> {
    customer_where(conn, "id", &id.to_string()).await
}

/// The account, locked until the transaction ends: whatever issues or revokes its
/// tokens, or changes it, takes this lock first, so a login checked against the old
/// password cannot store a token after a reset revoked them all.
async fn customer_for_update(
    conn: &mut PgConnection,
    id: CustomerId,
) -> CoreResult<Option<Customer>> {
    let row = sqlx::query(
        "SELECT id, email, password_hash, role, created_at, disabled_at, session_version FROM customers WHERE id = $1 FOR UPDATE",
    )
    .bind(id.0)
    .fetch_optional(conn)
    .await
    .map_err(map)?;
    row.as_ref().map(customer_from_row).transpose()
}

async fn customer_where(
    conn: &mut PgConnection,
    col: &str,
    v: &str,
) -> CoreResult<Option<Customer>> {
    let Ok(col) = (match col {
        "id" => Ok("id"),
        "email" => Ok("email"),
        _ => Err(()),
    }) else {
        return Ok(None);
    };
    let q = format!(
        "SELECT id, email, password_hash, role, created_at, disabled_at, session_version FROM customers WHERE {col} = $1"
    );
    let query = sqlx::query(&q);
    let query = if col == "id" {
        match v.parse::<Uuid>() {
            Ok(id) => query.bind(id),
            Err(_) => return Ok(None),
        }
    } else {
        query.bind(v)
    };
    let row = query.fetch_optional(conn).await.map_err(map)?;
    row.as_ref().map(customer_from_row).transpose()
}

async fn customers_with_roles(
    conn: &mut PgConnection,
    roles: &[Role],
) -> CoreResult<Vec<Customer>> {
    let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    let rows = sqlx::query(
        "SELECT id, email, password_hash, role, created_at, disabled_at, session_version FROM customers WHERE role = ANY($1) ORDER BY created_at, id",
    )
    .bind(&roles)
    .fetch_all(conn)
    .await
    .map_err(map)?;
    rows.iter().map(customer_from_row).collect()
}

async fn refresh_token(conn: &mut PgConnection, hash: &str) -> CoreResult<Option<RefreshToken>> {
    let row = sqlx::query(
        "SELECT token_hash, family, customer_id, expires_at, used_at, revoked FROM refresh_tokens WHERE token_hash = $1",
    )
    .bind(hash)
    .fetch_optional(conn)
    .await
    .map_err(map)?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(RefreshToken {
        token_hash: r.try_get("token_hash").map_err(map)?,
        family: r.try_get("family").map_err(map)?,
        customer_id: CustomerId(r.try_get("customer_id").map_err(map)?),
        expires_at: r.try_get("expires_at").map_err(map)?,
        used_at: r.try_get("used_at").map_err(map)?,
        revoked: r.try_get("revoked").map_err(map)?,
    }))
}

async fn idempotency(
    conn: &mut PgConnection,
    scope: &str,
    key: &str,
) -> CoreResult<Option<IdempotencyRecord>> {
    let row = sqlx::query(
        "SELECT scope, key, fingerprint, resource_id, created_at FROM idempotency_keys WHERE scope = $1 AND key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_optional(conn)
    .await
    .map_err(map)?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(IdempotencyRecord {
        scope: r.try_get("scope").map_err(map)?,
        key: r.try_get("key").map_err(map)?,
        fingerprint: r.try_get("fingerprint").map_err(map)?,
        resource_id: r.try_get("resource_id").map_err(map)?,
        created_at: r.try_get("created_at").map_err(map)?,
    }))
}

async fn audit_entries(
    conn: &mut PgConnection,
    limit: u32,
    before: Option<i64>,
) -> CoreResult<Vec<AuditEntry>> {
    let rows = sqlx::query(
        "SELECT id, at, actor_id, actor_email, action, target_type, target_id, details::text AS details
         FROM audit_log WHERE id < $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(before.unwrap_or(i64::MAX))
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await
    .map_err(map)?;
    rows.iter()
        .map(|r| {
            let actor: Option<Uuid> = r.try_get("actor_id").map_err(map)?;
            Ok(AuditEntry {
                id: r.try_get("id").map_err(map)?,
                at: r.try_get("at").map_err(map)?,
                actor_id: actor.map(CustomerId),
                actor_email: r.try_get("actor_email").map_err(map)?,
                action: r.try_get("action").map_err(map)?,
                target_type: r.try_get("target_type").map_err(map)?,
                target_id: r.try_get("target_id").map_err(map)?,
                details: serde_json::from_str(&r.try_get::<String, _>("details").map_err(map)?)
                    .map_err(json)?,
            })
        })
        .collect()
}

crate::commerce_read!(PgTx, locking);
crate::commerce_read!(PgReader);

#[async_trait]
impl IdempotencyWrite for PgTx {
    async fn put_idempotency(&mut self, r: &IdempotencyRecord) -> CoreResult<()> {
        sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, resource_id, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&r.scope)
        .bind(&r.key)
        .bind(&r.fingerprint)
        .bind(&r.resource_id)
        .bind(r.created_at)
        .execute(self.conn())
        .await
        .map_err(map)?;
        Ok(())
    }
}

#[async_trait]
impl AuditWrite for PgTx {
    async fn append_audit(&mut self, e: &AuditEntry) -> CoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_log (at, actor_id, actor_email, action, target_type, target_id, details)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(e.at)
        .bind(e.actor_id.map(|a| a.0))
        .bind(&e.actor_email)
        .bind(&e.action)
        .bind(&e.target_type)
        .bind(&e.target_id)
        .bind(Json(&e.details))
        .execute(self.conn())
        .await
        .map_err(map)?;
        Ok(())
    }
}

#[async_trait]
impl CartWrite for PgTx {
    async fn save_cart(&mut self, c: &Cart) -> CoreResult<()> {
        sqlx::query(
            "INSERT INTO carts (id, customer_id, status, expires_at, doc) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, status = excluded.status,
               expires_at = excluded.expires_at, doc = excluded.doc",
        )
        .bind(c.id.0)
        .bind(c.customer_id.map(|x| x.0))
        .bind(cart_status(c))
        .bind(c.expires_at)
        .bind(Json(c))
        .execute(self.conn())
        .await
        .map_err(map)?;
        Ok(())
    }

    async fn delete_expired_carts(&mut self, now: DateTime<Utc>) -> CoreResult<u64> {
        let r = sqlx::query("DELETE FROM carts WHERE status = 'open' AND expires_at < $1")
            .bind(now)
            .execute(self.conn())
            .await
            .map_err(map)?;
        Ok(r.rows_affected())
    }
}

#[async_trait]
impl OrderWrite for PgTx {
    async fn insert_order(&mut self, o: &Order) -> CoreResult<()> {
        bind_order(
            sqlx::query(
                "INSERT INTO orders (id, number, cart_id, customer_id, status, payment_expires_at, created_at, buyer_key, doc)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            ),
            o,
        )
        .execute(self.conn())
        .await
        .map_err(map)?;
        Ok(())
    }

    async fn update_order_if(&mut self, o: &Order, expected: OrderStatus) -> CoreResult<bool> {
        let r = sqlx::query(
            "UPDATE orders SET status = $1, payment_expires_at = $2, doc = $3 WHERE id = $4 AND status = $5",
        )
        .bind(o.status.as_str())
        .bind(o.payment_expires_at)
        .bind(Json(o))
        .bind(o.id.0)
        .bind(expected.as_str())
        .execute(self.conn())
        .await
        .map_err(map)?;
        Ok(r.rows_affected() == 1)
    }
}

#[async_trait]
impl CustomerWrite for PgTx {
    async fn insert_customer(&mut self, c: &Customer) -> CoreResult<()> {
        sqlx::query(
            "INSERT INTO customers (id, email, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(c.id.0)
        .bind(&c.email)
        .bind(&c.password_hash)
        .bind(c.role.as_str())
        .bind(c.created_at)
        .execute(self.conn())
        .await
        .map_err(map)?;
        Ok(())
    }

    async fn insert_refresh_token(&mut self, t: &RefreshToken) -> CoreResult<()> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family, customer_id, expires_at, used_at, revoked) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&t.token_hash)
        .bind(&t.family)
        .bind(t.customer_id.0)
        .bind(t.expires_at)
        .bind(t.used_at)
        .bind(t.revoked)
        .execute(self.conn())
        .await
        .map_err(map)?;
        Ok(())
    }

    async fn use_refresh_token(&mut self, hash: &str, at: DateTime<Utc>) -> CoreResult<bool> {
        let r = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND NOT revoked",
        )
        .bind(at)
        .bind(hash)
        .execute(self.conn())
        .await
        .map_err(map)?;
        Ok(r.rows_affected() == 1)
    }

    async fn revoke_refresh_family(&mut self, family: &str) -> CoreResult<()> {
        sqlx::query("UPDATE refresh_tokens SET revoked = TRUE WHERE family = $1")
            .bind(family)
            .execute(self.conn())
            .await
            .map_err(map)?;
        Ok(())
    }

    async fn update_customer(&mut self, c: &Customer) -> CoreResult<bool> {
        let r = sqlx::query(
            "UPDATE customers SET role = $1, password_hash = $2, disabled_at = $3, session_version = $4 WHERE id = $5",
        )
        .bind(c.role.as_str())
        .bind(&c.password_hash)
        .bind(c.disabled_at)
        .bind(c.session_version)
        .bind(c.id.0)
        .execute(self.conn())
        .await
        .map_err(map)?;
        Ok(r.rows_affected() == 1)
    }

    async fn revoke_customer_tokens(&mut self, customer: CustomerId) -> CoreResult<()> {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked = TRUE WHERE customer_id = $1 AND NOT revoked",
        )
        .bind(customer.0)
        .execute(self.conn())
        .await
        .map_err(map)?;
        Ok(())
    }
}

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

/// Binds an order's columns: id, number, cart_id, customer_id, status,
/// payment_expires_at, created_at, buyer_key, doc.
fn bind_order<'q>(q: PgQuery<'q>, o: &'q Order) -> PgQuery<'q> {
    q.bind(o.id.0)
        .bind(&o.number)
        .bind(o.cart_id.0)
        .bind(o.customer_id.map(|c| c.0))
        .bind(o.status.as_str())
        .bind(o.payment_expires_at)
        .bind(o.created_at)
        .bind(&o.buyer_key)
        .bind(Json(o))
}

/// Events as the column arrays one `INSERT ... SELECT FROM unnest(...)` takes: one
/// statement for a whole batch, because it runs inside the business transaction and
/// fewer round trips mean shorter row locks.
struct EventColumns<'a> {
    ids: Vec<Uuid>,
    types: Vec<&'a str>,
    aggregates: Vec<&'a str>,
    aggregate_ids: Vec<&'a str>,
    times: Vec<DateTime<Utc>>,
    envelopes: Vec<String>,
}

impl<'a> EventColumns<'a> {
    fn of(events: &'a [DomainEvent]) -> CoreResult<Self> {
        let mut c = EventColumns {
            ids: Vec::with_capacity(events.len()),
            types: Vec::with_capacity(events.len()),
            aggregates: Vec::with_capacity(events.len()),
            aggregate_ids: Vec::with_capacity(events.len()),
            times: Vec::with_capacity(events.len()),
            envelopes: Vec::with_capacity(events.len()),
        };
        for e in events {
            c.ids.push(e.id.0);
            c.types.push(e.event_type.as_str());
            c.aggregates.push(e.aggregate_type.as_str());
            c.aggregate_ids.push(e.aggregate_id.as_str());
            c.times.push(e.occurred_at);
            c.envelopes.push(serde_json::to_string(e).map_err(json)?);
        }
        Ok(c)
    }

    fn bind<'q>(&'q self, q: PgQuery<'q>) -> PgQuery<'q> {
        q.bind(&self.ids)
            .bind(&self.types)
            .bind(&self.aggregates)
            .bind(&self.aggregate_ids)
            .bind(&self.times)
            .bind(&self.envelopes)
    }
}

/// The outbox insert, its arrays bound from parameter `$first` on; `ORDER BY n` keeps
/// the events' order in `seq`.
fn outbox_insert(first: usize) -> String {
    let p: Vec<String> = (first..first + 6).map(|i| format!("${i}")).collect();
    format!(
        "INSERT INTO outbox (event_id, event_type, aggregate_type, aggregate_id, occurred_at, envelope)
         SELECT a, b, c, d, e, f FROM unnest({}::uuid[], {}::text[], {}::text[], {}::text[], {}::timestamptz[], {}::text[])
         WITH ORDINALITY AS t(a, b, c, d, e, f, n) ORDER BY n",
        p[0], p[1], p[2], p[3], p[4], p[5]
    )
}

static APPEND_EVENTS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| outbox_insert(1));

/// Checkout's writes in one statement (see `Tx::place_order`) for `slots` stock rows:
/// the data-modifying CTEs all run, and the counts tell whether the key was new, each
/// variant had the stock (under READ COMMITTED a decrement waits for a concurrent
/// taker, then checks `stock >= q` again on the committed row) and the cart was there.
/// The stock left comes back for `inventory.low`.
///
/// The stock rows are a `VALUES` list padded with NULLs (which match no variant) to a
/// power of two, not `unnest` of two arrays: a generic plan cannot know the arrays'
/// length, it looked costlier than a custom plan for one row, and PostgreSQL planned
/// the whole statement again on every call (9,333 plans for 9,301 calls, 0.2 ms each,
/// `pg_stat_statements`). A list states its length, so the cached generic plan is
/// used; there are at most eight shapes (a cart has at most 100 lines; more would
/// still work, with a statement built per call).
fn place_order_sql(slots: usize) -> std::borrow::Cow<'static, str> {
    static BUILT: [std::sync::OnceLock<String>; 8] = [const { std::sync::OnceLock::new() }; 8];
    let build = || {
        let rows = (0..slots)
            .map(|i| format!("(${}::uuid, ${}::int8)", 26 + 2 * i, 27 + 2 * i))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "WITH k AS (
                INSERT INTO idempotency_keys (scope, key, fingerprint, resource_id, created_at)
                SELECT $1::text, $2::text, $3::text, $4::text, $5::timestamptz WHERE $1::text IS NOT NULL
                ON CONFLICT DO NOTHING RETURNING 1
             ), o AS (
                INSERT INTO orders (id, number, cart_id, customer_id, status, payment_expires_at, created_at, buyer_key, doc)
                VALUES ($6, $7, $8, $9, $10, $11, $12, $13, $14)
             ), c AS (
                UPDATE carts SET customer_id = $15, status = $16, expires_at = $17, doc = $18 WHERE id = $19
                RETURNING 1
             ), s AS (
                UPDATE variants v SET stock = v.stock - t.q
                FROM (VALUES {rows}) AS t(id, q)
                WHERE v.id = t.id AND v.stock >= t.q
                RETURNING v.id, v.stock
             ), e AS ({})
             SELECT (SELECT count(*) FROM k) AS keys, (SELECT count(*) FROM c) AS carts,
                    ARRAY(SELECT id FROM s ORDER BY id) AS taken,
                    ARRAY(SELECT stock FROM s ORDER BY id) AS stock_left",
            outbox_insert(20)
        )
    };
    let shape = slots.trailing_zeros() as usize;
    match BUILT.get(shape).filter(|_| slots.is_power_of_two()) {
        Some(cell) => std::borrow::Cow::Borrowed(cell.get_or_init(build).as_str()),
        None => std::borrow::Cow::Owned(build()),
    }
}

pub(crate) async fn place_order(
    conn: &mut PgConnection,
    p: &PlacedOrder<'_>,
) -> CoreResult<Placement> {
    let (o, cart, key) = (p.order, p.cart, p.idempotency);
    let events = EventColumns::of(p.events)?;
    let variants: Vec<Uuid> = p.stock.iter().map(|t| t.variant.0).collect();
    let slots = variants.len().max(1).next_power_of_two();
    let sql = place_order_sql(slots);
    let q = sqlx::query(&sql)
        .bind(key.map(|k| k.scope.as_str()))
        .bind(key.map(|k| k.key.as_str()))
        .bind(key.map(|k| k.fingerprint.as_str()))
        .bind(key.map(|k| k.resource_id.as_str()))
        .bind(key.map(|k| k.created_at));
    let q = bind_order(q, o)
        .bind(cart.customer_id.map(|x| x.0))
        .bind(cart_status(cart))
        .bind(cart.expires_at)
        .bind(Json(cart))
        .bind(cart.id.0);
    let mut q = events.bind(q);
    for i in 0..slots {
        let take = p.stock.get(i);
        q = q
            .bind(take.map(|t| t.variant.0))
            .bind(take.map(|t| t.quantity));
    }
    let row = q.fetch_one(conn).await.map_err(map)?;
    let keys: i64 = row.try_get("keys").map_err(map)?;
    let carts: i64 = row.try_get("carts").map_err(map)?;
    let taken: Vec<Uuid> = row.try_get("taken").map_err(map)?;
    let left: Vec<i64> = row.try_get("stock_left").map_err(map)?;
    if key.is_some() && keys != 1 {
        return Ok(Placement::KeyTaken);
    }
    let mut stock_left = Vec::with_capacity(variants.len());
    for v in &variants {
        match taken.iter().position(|t| t == v) {
            Some(i) => stock_left.push(*left.get(i).ok_or_else(|| {
                jangteo_core::CoreError::Internal("checkout: stock left missing".into())
            })?),
            None => return Ok(Placement::OutOfStock(VariantId(*v))),
        }
    }
    if carts != 1 {
        return Err(jangteo_core::CoreError::Internal(
            "checkout: the cart was not stored".into(),
        ));
    }
    Ok(Placement::Placed { stock_left })
}

fn cart_status(c: &Cart) -> &'static str {
    if c.status == CartStatus::Open {
        "open"
    } else {
        "completed"
    }
}

#[async_trait]
impl EventWrite for PgTx {
    async fn append_events(&mut self, events: &[DomainEvent]) -> CoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let columns = EventColumns::of(events)?;
        columns
            .bind(sqlx::query(APPEND_EVENTS.as_str()))
            .execute(self.conn())
            .await
            .map_err(map)?;
        Ok(())
    }
}
