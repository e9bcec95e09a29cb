//! Carts, orders, customers, tokens, idempotency keys and the audit log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use jangteo_core::cart::{Cart, CartStatus};
use jangteo_core::customer::{Customer, RefreshToken, Role};
use jangteo_core::events::DomainEvent;
use jangteo_core::ids::{CartId, OrderId};
use jangteo_core::order::{Order, OrderQuery, OrderStatus};
use jangteo_core::ports::{
    AuditEntry, AuditWrite, CartWrite, CustomerWrite, EventWrite, IdempotencyRecord,
    IdempotencyWrite, OrderWrite,
};
use jangteo_core::{CoreError, CoreResult};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::{Conn, SqliteReader, SqliteTx};
use crate::error::{json, map};
use crate::time::{parse, ts};

fn doc<T: serde::de::DeserializeOwned>(row: &SqliteRow) -> CoreResult<T> {
    serde_json::from_str(&row.try_get::<String, _>("doc").map_err(map)?).map_err(json)
}

fn customer_from_row(r: &SqliteRow) -> CoreResult<Customer> {
    Ok(Customer {
        id: r
            .try_get::<String, _>("id")
            .map_err(map)?
            .parse()
            .map_err(|_| CoreError::Storage("bad customer id".into()))?,
        email: r.try_get("email").map_err(map)?,
        password_hash: r.try_get("password_hash").map_err(map)?,
        role: Role::parse(&r.try_get::<String, _>("role").map_err(map)?)?,
        created_at: parse(&r.try_get::<String, _>("created_at").map_err(map)?)?,
    })
}

fn audit_from_row(r: &SqliteRow) -> CoreResult<AuditEntry> {
    let actor: Option<String> = r.try_get("actor_id").map_err(map)?;
    Ok(AuditEntry {
        id: r.try_get("id").map_err(map)?,
        at: parse(&r.try_get::<String, _>("at").map_err(map)?)?,
        actor_id: actor.and_then(|a| a.parse().ok()),
        actor_email: r.try_get("actor_email").map_err(map)?,
        action: r.try_get("action").map_err(map)?,
        target_type: r.try_get("target_type").map_err(map)?,
        target_id: r.try_get("target_id").map_err(map)?,
        details: serde_json::from_str(&r.try_get::<String, _>("details").map_err(map)?)
            .map_err(json)?,
    })
}

async fn cart(conn: &mut SqliteConnection, id: CartId) -> CoreResult<Option<Cart>> {
    let row = sqlx::query("SELECT doc FROM carts WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(conn)
        .await
        .map_err(map)?;
    row.as_ref().map(doc).transpose()
}

async fn order(conn: &mut SqliteConnection, id: OrderId) -> CoreResult<Option<Order>> {
    let row = sqlx::query("SELECT doc FROM orders WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(conn)
        .await
        .map_err(map)?;
    row.as_ref().map(doc).transpose()
}

async fn orders(conn: &mut SqliteConnection, q: &OrderQuery) -> CoreResult<Vec<Order>> {
    let mut qb = QueryBuilder::<Sqlite>::new("SELECT doc FROM orders WHERE 1 = 1");
    if let Some(c) = q.customer_id {
        qb.push(" AND customer_id = ").push_bind(c.to_string());
    }
    if let Some(s) = q.status {
        qb.push(" AND status = ").push_bind(s.as_str());
    }
    if let Some(b) = q.before {
        qb.push(" AND id < ").push_bind(b.to_string());
    }
    qb.push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(q.limit.max(1)));
    let rows = qb.build().fetch_all(conn).await.map_err(map)?;
    rows.iter().map(doc).collect()
}

async fn expired_pending(
    conn: &mut SqliteConnection,
    now: DateTime<Utc>,
    limit: u32,
) -> CoreResult<Vec<OrderId>> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM orders WHERE status = 'pending' AND payment_expires_at < ? ORDER BY payment_expires_at LIMIT ?",
    )
    .bind(ts(now))
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await
    .map_err(map)?;
    rows.iter()
        .map(|s| {
            s.parse()
                .map_err(|_| CoreError::Storage("bad order id".into()))
        })
        .collect()
}

async fn customer_where(
    conn: &mut SqliteConnection,
    col: &str,
    v: &str,
) -> CoreResult<Option<Customer>> {
    let sql =
        format!("SELECT id, email, password_hash, role, created_at FROM customers WHERE {col} = ?");
    let row = sqlx::query(&sql)
        .bind(v)
        .fetch_optional(conn)
        .await
        .map_err(map)?;
    row.as_ref().map(customer_from_row).transpose()
}

async fn customers_with_roles(
    conn: &mut SqliteConnection,
    roles: &[Role],
) -> CoreResult<Vec<Customer>> {
    if roles.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = QueryBuilder::<Sqlite>::new(
        "SELECT id, email, password_hash, role, created_at FROM customers WHERE role IN (",
    );
    let mut sep = qb.separated(", ");
    for r in roles {
        sep.push_bind(r.as_str());
    }
    qb.push(") ORDER BY created_at, id");
    let rows = qb.build().fetch_all(conn).await.map_err(map)?;
    rows.iter().map(customer_from_row).collect()
}

async fn refresh_token(
    conn: &mut SqliteConnection,
    hash: &str,
) -> CoreResult<Option<RefreshToken>> {
    let row = sqlx::query("SELECT token_hash, family, customer_id, expires_at, used_at, revoked FROM refresh_tokens WHERE token_hash = ?")
        .bind(hash)
        .fetch_optional(conn)
        .await
        .map_err(map)?;
    let Some(r) = row else { return Ok(None) };
    let used: Option<String> = r.try_get("used_at").map_err(map)?;
    Ok(Some(RefreshToken {
        token_hash: r.try_get("token_hash").map_err(map)?,
        family: r.try_get("family").map_err(map)?,
        customer_id: r
            .try_get::<String, _>("customer_id")
            .map_err(map)?
            .parse()
            .map_err(|_| CoreError::Storage("bad customer id".into()))?,
        expires_at: parse(&r.try_get::<String, _>("expires_at").map_err(map)?)?,
        used_at: used.as_deref().map(parse).transpose()?,
        revoked: r.try_get::<i64, _>("revoked").map_err(map)? != 0,
    }))
}

async fn idempotency(
    conn: &mut SqliteConnection,
    scope: &str,
    key: &str,
) -> CoreResult<Option<IdempotencyRecord>> {
    let row = sqlx::query("SELECT scope, key, fingerprint, resource_id, created_at FROM idempotency_keys WHERE scope = ? AND key = ?")
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
        created_at: parse(&r.try_get::<String, _>("created_at").map_err(map)?)?,
    }))
}

async fn audit_entries(
    conn: &mut SqliteConnection,
    limit: u32,
    before: Option<i64>,
) -> CoreResult<Vec<AuditEntry>> {
    let rows = sqlx::query(
        "SELECT id, at, actor_id, actor_email, action, target_type, target_id, details FROM audit_log
         WHERE id < ? ORDER BY id DESC LIMIT ?",
    )
    .bind(before.unwrap_or(i64::MAX))
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await
    .map_err(map)?;
    rows.iter().map(audit_from_row).collect()
}

crate::commerce_read!(SqliteTx);
crate::commerce_read!(SqliteReader);

#[async_trait]
impl IdempotencyWrite for SqliteTx {
    async fn put_idempotency(&mut self, r: &IdempotencyRecord) -> CoreResult<()> {
        sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, resource_id, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&r.scope)
        .bind(&r.key)
        .bind(&r.fingerprint)
        .bind(&r.resource_id)
        .bind(ts(r.created_at))
        .execute(self.conn())
        .await
        .map_err(map)?;
        Ok(())
    }
}

#[async_trait]
impl AuditWrite for SqliteTx {
    async fn append_audit(&mut self, e: &AuditEntry) -> CoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_log (at, actor_id, actor_email, action, target_type, target_id, details)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(ts(e.at))
        .bind(e.actor_id.map(|a| a.to_string()))
        .bind(&e.actor_email)
        .bind(&e.action)
        .bind(&e.target_type)
        .bind(&e.target_id)
        .bind(serde_json::to_string(&e.details).map_err(json)?)
        .execute(self.conn())
        .await
        .map_err(map)?;
        Ok(())
    }
}

#[async_trait]
impl CartWrite for SqliteTx {
    async fn save_cart(&mut self, c: &Cart) -> CoreResult<()> {
        sqlx::query(
            "INSERT INTO carts (id, customer_id, status, expires_at, doc) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, status = excluded.status,
               expires_at = excluded.expires_at, doc = excluded.doc",
        )
        .bind(c.id.to_string())
        .bind(c.customer_id.map(|x| x.to_string()))
        .bind(if c.status == CartStatus::Open { "open" } else { "completed" })
        .bind(ts(c.expires_at))
        .bind(serde_json::to_string(c).map_err(json)?)
        .execute(self.conn())
        .await
        .map_err(map)?;
        Ok(())
    }

    async fn delete_expired_carts(&mut self, now: DateTime<Utc>) -> CoreResult<u64> {
        let r = sqlx::query("DELETE FROM carts WHERE status = 'open' AND expires_at < ?")
            .bind(ts(now))
            .execute(self.conn())
            .await
            .map_err(map)?;
        Ok(r.rows_affected())
    }
}

#[async_trait]
impl OrderWrite for SqliteTx {
    async fn insert_order(&mut self, o: &Order) -> CoreResult<()> {
        sqlx::query(
            "INSERT INTO orders (id, number, cart_id, customer_id, status, payment_expires_at, created_at, buyer_key, doc)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(o.id.to_string())
        .bind(&o.number)
        .bind(o.cart_id.to_string())
        .bind(o.customer_id.map(|c| c.to_string()))
        .bind(o.status.as_str())
        .bind(o.payment_expires_at.map(ts))
        .bind(ts(o.created_at))
        .bind(&o.buyer_key)
        .bind(serde_json::to_string(o).map_err(json)?)
        .execute(self.conn())
        .await
        .map_err(map)?;
        Ok(())
    }

    async fn update_order_if(&mut self, o: &Order, expected: OrderStatus) -> CoreResult<bool> {
        let r = sqlx::query(
            "UPDATE orders SET status = ?, payment_expires_at = ?, doc = ? WHERE id = ? AND status = ?",
        )
        .bind(o.status.as_str())
        .bind(o.payment_expires_at.map(ts))
        .bind(serde_json::to_string(o).map_err(json)?)
        .bind(o.id.to_string())
        .bind(expected.as_str())
        .execute(self.conn())
        .await
        .map_err(map)?;
        Ok(r.rows_affected() == 1)
    }
}

#[async_trait]
impl CustomerWrite for SqliteTx {
    async fn insert_customer(&mut self, c: &Customer) -> CoreResult<()> {
        sqlx::query("INSERT INTO customers (id, email, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(c.id.to_string())
            .bind(&c.email)
            .bind(&c.password_hash)
            .bind(c.role.as_str())
            .bind(ts(c.created_at))
            .execute(self.conn())
            .await
            .map_err(map)?;
        Ok(())
    }

    async fn insert_refresh_token(&mut self, t: &RefreshToken) -> CoreResult<()> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family, customer_id, expires_at, used_at, revoked) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&t.token_hash)
        .bind(&t.family)
        .bind(t.customer_id.to_string())
        .bind(ts(t.expires_at))
        .bind(t.used_at.map(ts))
        .bind(i64::from(t.revoked))
        .execute(self.conn())
        .await
        .map_err(map)?;
        Ok(())
    }

    async fn use_refresh_token(&mut self, hash: &str, at: DateTime<Utc>) -> CoreResult<bool> {
        let r = sqlx::query("UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND revoked = 0")
            .bind(ts(at))
            .bind(hash)
            .execute(self.conn())
            .await
            .map_err(map)?;
        Ok(r.rows_affected() == 1)
    }

    async fn revoke_refresh_family(&mut self, family: &str) -> CoreResult<()> {
        sqlx::query("UPDATE refresh_tokens SET revoked = 1 WHERE family = ?")
            .bind(family)
            .execute(self.conn())
            .await
            .map_err(map)?;
        Ok(())
    }
}

#[async_trait]
impl EventWrite for SqliteTx {
    async fn append_events(&mut self, events: &[DomainEvent]) -> CoreResult<()> {
        // One statement per batch: it runs inside the business transaction, on the
        // single writer. 100 rows x 6 parameters stay far below SQLite's limit.
        for chunk in events.chunks(100) {
            let envelopes = chunk
                .iter()
                .map(serde_json::to_string)
                .collect::<Result<Vec<_>, _>>()
                .map_err(json)?;
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO outbox (event_id, event_type, aggregate_type, aggregate_id, occurred_at, envelope) ",
            );
            qb.push_values(chunk.iter().zip(envelopes), |mut b, (e, env)| {
                b.push_bind(e.id.to_string())
                    .push_bind(e.event_type.clone())
                    .push_bind(e.aggregate_type.clone())
                    .push_bind(e.aggregate_id.clone())
                    .push_bind(ts(e.occurred_at))
                    .push_bind(env);
            });
            qb.build().execute(self.conn()).await.map_err(map)?;
        }
        Ok(())
    }
}
