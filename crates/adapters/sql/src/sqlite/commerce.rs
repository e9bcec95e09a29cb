//! Carts, orders, customers, tokens, idempotency keys and the audit log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use jangteo_core::cart::{Cart, CartStatus};
use jangteo_core::customer::{Customer, RefreshToken, Role};
use jangteo_core::events::DomainEvent;
use jangteo_core::ids::{CartId, CustomerId, OrderId};
use jangteo_core::order::{Order, OrderQuery, OrderStatus};
use jangteo_core::ports::{
    AuditEntry, AuditWrite, CartWrite, CustomerWrite, EventWrite, IdempotencyRecord,
    IdempotencyWrite, OrderWrite,
};
use jangteo_core::{CoreError, CoreResult};
use rusqlite::{params, Connection, Row};

use super::q::{self, col, Sql};
use super::{Conn, SqliteReader, SqliteTx};
use crate::error::json;
use crate::time::{parse, ts};

fn doc<T: serde::de::DeserializeOwned>(row: &Row<'_>) -> CoreResult<T> {
    serde_json::from_str(&col::<String>(row, "doc")?).map_err(json)
}

fn customer_from_row(r: &Row<'_>) -> CoreResult<Customer> {
    Ok(Customer {
        id: col::<String>(r, "id")?
            .parse()
            .map_err(|_| CoreError::Storage("bad customer id".into()))?,
        email: col(r, "email")?,
        password_hash: col(r, "password_hash")?,
        role: Role::parse(&col::<String>(r, "role")?)?,
        created_at: parse(&col::<String>(r, "created_at")?)?,
        disabled_at: col::<Option<String>>(r, "disabled_at")?
            .map(|t| parse(&t))
            .transpose()?,
        session_version: col(r, "session_version")?,
    })
}

fn audit_from_row(r: &Row<'_>) -> CoreResult<AuditEntry> {
    let actor: Option<String> = col(r, "actor_id")?;
    Ok(AuditEntry {
        id: col(r, "id")?,
        at: parse(&col::<String>(r, "at")?)?,
        actor_id: actor.and_then(|a| a.parse().ok()),
        actor_email: col(r, "actor_email")?,
        action: col(r, "action")?,
        target_type: col(r, "target_type")?,
        target_id: col(r, "target_id")?,
        details: serde_json::from_str(&col::<String>(r, "details")?).map_err(json)?,
    })
}

fn cart(conn: &Connection, id: CartId) -> CoreResult<Option<Cart>> {
    q::one(
        conn,
        "SELECT doc FROM carts WHERE id = ?",
        [id.to_string()],
        doc,
    )
}

fn order(conn: &Connection, id: OrderId) -> CoreResult<Option<Order>> {
    q::one(
        conn,
        "SELECT doc FROM orders WHERE id = ?",
        [id.to_string()],
        doc,
    )
}

fn orders(conn: &Connection, q: &OrderQuery) -> CoreResult<Vec<Order>> {
    let mut qb = Sql::new("SELECT doc FROM orders WHERE 1 = 1");
    if let Some(c) = q.customer_id {
        qb.push(" AND customer_id = ").bind(c.to_string());
    }
    if let Some(s) = q.status {
        qb.push(" AND status = ").bind(s.as_str().to_string());
    }
    if let Some(b) = q.before {
        qb.push(" AND id < ").bind(b.to_string());
    }
    qb.push(" ORDER BY id DESC LIMIT ")
        .bind(i64::from(q.limit.max(1)));
    qb.all(conn, doc)
}

fn expired_pending(conn: &Connection, now: DateTime<Utc>, limit: u32) -> CoreResult<Vec<OrderId>> {
    q::all(
        conn,
        "SELECT id FROM orders WHERE status = 'pending' AND payment_expires_at < ? ORDER BY payment_expires_at LIMIT ?",
        params![ts(now), i64::from(limit)],
        |r| {
            col::<String>(r, "id")?
                .parse()
                .map_err(|_| CoreError::Storage("bad order id".into()))
        },
    )
}

fn customer(conn: &Connection, id: CustomerId) -> CoreResult<Option<Customer>> {
    customer_where(conn, "id", &id.to_string())
}

fn customer_where(conn: &Connection, column: &str, v: &str) -> CoreResult<Option<Customer>> {
    let sql = format!(
        "SELECT id, email, password_hash, role, created_at, disabled_at, session_version FROM customers WHERE {column} = ?"
    );
    q::one(conn, &sql, [v], customer_from_row)
}

fn customers_with_roles(conn: &Connection, roles: &[Role]) -> CoreResult<Vec<Customer>> {
    if roles.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = Sql::new(
        "SELECT id, email, password_hash, role, created_at, disabled_at, session_version FROM customers WHERE role IN (",
    );
    qb.bind_list(roles.iter().map(|r| r.as_str().to_string()))
        .push(") ORDER BY created_at, id");
    qb.all(conn, customer_from_row)
}

fn refresh_token(conn: &Connection, hash: &str) -> CoreResult<Option<RefreshToken>> {
    q::one(
        conn,
        "SELECT token_hash, family, customer_id, expires_at, used_at, revoked FROM refresh_tokens WHERE token_hash = ?",
        [hash],
        |r| {
            let used: Option<String> = col(r, "used_at")?;
            Ok(RefreshToken {
                token_hash: col(r, "token_hash")?,
                family: col(r, "family")?,
                customer_id: col::<String>(r, "customer_id")?
                    .parse()
                    .map_err(|_| CoreError::Storage("bad customer id".into()))?,
                expires_at: parse(&col::<String>(r, "expires_at")?)?,
                used_at: used.as_deref().map(parse).transpose()?,
                revoked: col::<i64>(r, "revoked")? != 0,
            })
        },
    )
}

fn idempotency(conn: &Connection, scope: &str, key: &str) -> CoreResult<Option<IdempotencyRecord>> {
    q::one(
        conn,
        "SELECT scope, key, fingerprint, resource_id, created_at FROM idempotency_keys WHERE scope = ? AND key = ?",
        [scope, key],
        |r| {
            Ok(IdempotencyRecord {
                scope: col(r, "scope")?,
                key: col(r, "key")?,
                fingerprint: col(r, "fingerprint")?,
                resource_id: col(r, "resource_id")?,
                created_at: parse(&col::<String>(r, "created_at")?)?,
            })
        },
    )
}

fn audit_entries(
    conn: &Connection,
    limit: u32,
    before: Option<i64>,
) -> CoreResult<Vec<AuditEntry>> {
    q::all(
        conn,
        "SELECT id, at, actor_id, actor_email, action, target_type, target_id, details FROM audit_log
         WHERE id < ? ORDER BY id DESC LIMIT ?",
        params![before.unwrap_or(i64::MAX), i64::from(limit)],
        audit_from_row,
    )
}

crate::commerce_read!(SqliteTx, sync);
crate::commerce_read!(SqliteReader, sync);

#[async_trait]
impl IdempotencyWrite for SqliteTx {
    async fn put_idempotency(&mut self, r: &IdempotencyRecord) -> CoreResult<()> {
        q::exec(
            self.conn(),
            "INSERT INTO idempotency_keys (scope, key, fingerprint, resource_id, created_at) VALUES (?, ?, ?, ?, ?)",
            params![r.scope, r.key, r.fingerprint, r.resource_id, ts(r.created_at)],
        )?;
        Ok(())
    }
}

#[async_trait]
impl AuditWrite for SqliteTx {
    async fn append_audit(&mut self, e: &AuditEntry) -> CoreResult<()> {
        q::exec(
            self.conn(),
            "INSERT INTO audit_log (at, actor_id, actor_email, action, target_type, target_id, details)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
            params![
                ts(e.at),
                e.actor_id.map(|a| a.to_string()),
                e.actor_email,
                e.action,
                e.target_type,
                e.target_id,
                serde_json::to_string(&e.details).map_err(json)?
            ],
        )?;
        Ok(())
    }
}

#[async_trait]
impl CartWrite for SqliteTx {
    async fn save_cart(&mut self, c: &Cart) -> CoreResult<()> {
        q::exec(
            self.conn(),
            "INSERT INTO carts (id, customer_id, status, expires_at, doc) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, status = excluded.status,
               expires_at = excluded.expires_at, doc = excluded.doc",
            params![
                c.id.to_string(),
                c.customer_id.map(|x| x.to_string()),
                if c.status == CartStatus::Open { "open" } else { "completed" },
                ts(c.expires_at),
                serde_json::to_string(c).map_err(json)?
            ],
        )?;
        Ok(())
    }

    async fn delete_expired_carts(&mut self, now: DateTime<Utc>) -> CoreResult<u64> {
        let n = q::exec(
            self.conn(),
            "DELETE FROM carts WHERE status = 'open' AND expires_at < ?",
            [ts(now)],
        )?;
        Ok(n as u64)
    }
}

#[async_trait]
impl OrderWrite for SqliteTx {
    async fn insert_order(&mut self, o: &Order) -> CoreResult<()> {
        q::exec(
            self.conn(),
            "INSERT INTO orders (id, number, cart_id, customer_id, status, payment_expires_at, created_at, buyer_key, doc)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            params![
                o.id.to_string(),
                o.number,
                o.cart_id.to_string(),
                o.customer_id.map(|c| c.to_string()),
                o.status.as_str(),
                o.payment_expires_at.map(ts),
                ts(o.created_at),
                o.buyer_key,
                serde_json::to_string(o).map_err(json)?
            ],
        )?;
        Ok(())
    }

    async fn update_order_if(&mut self, o: &Order, expected: OrderStatus) -> CoreResult<bool> {
        let n = q::exec(
            self.conn(),
            "UPDATE orders SET status = ?, payment_expires_at = ?, doc = ? WHERE id = ? AND status = ?",
            params![
                o.status.as_str(),
                o.payment_expires_at.map(ts),
                serde_json::to_string(o).map_err(json)?,
                o.id.to_string(),
                expected.as_str()
            ],
        )?;
        Ok(n == 1)
    }
}

#[async_trait]
impl CustomerWrite for SqliteTx {
    async fn insert_customer(&mut self, c: &Customer) -> CoreResult<()> {
        q::exec(
            self.conn(),
            "INSERT INTO customers (id, email, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?)",
            params![
                c.id.to_string(),
                c.email,
                c.password_hash,
                c.role.as_str(),
                ts(c.created_at)
            ],
        )?;
        Ok(())
    }

    async fn insert_refresh_token(&mut self, t: &RefreshToken) -> CoreResult<()> {
        q::exec(
            self.conn(),
            "INSERT INTO refresh_tokens (token_hash, family, customer_id, expires_at, used_at, revoked) VALUES (?, ?, ?, ?, ?, ?)",
            params![
                t.token_hash,
                t.family,
                t.customer_id.to_string(),
                ts(t.expires_at),
                t.used_at.map(ts),
                i64::from(t.revoked)
            ],
        )?;
        Ok(())
    }

    async fn use_refresh_token(&mut self, hash: &str, at: DateTime<Utc>) -> CoreResult<bool> {
        let n = q::exec(
            self.conn(),
            "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND revoked = 0",
            params![ts(at), hash],
        )?;
        Ok(n == 1)
    }

    async fn revoke_refresh_family(&mut self, family: &str) -> CoreResult<()> {
        q::exec(
            self.conn(),
            "UPDATE refresh_tokens SET revoked = 1 WHERE family = ?",
            [family],
        )?;
        Ok(())
    }

    async fn update_customer(&mut self, c: &Customer) -> CoreResult<bool> {
        let n = q::exec(
            self.conn(),
            "UPDATE customers SET role = ?, password_hash = ?, disabled_at = ?, session_version = ? WHERE id = ?",
            params![
                c.role.as_str(),
                c.password_hash,
                c.disabled_at.map(ts),
                c.session_version,
                c.id.to_string()
            ],
        )?;
        Ok(n == 1)
    }

    async fn revoke_customer_tokens(&mut self, customer: CustomerId) -> CoreResult<()> {
        q::exec(
            self.conn(),
            "UPDATE refresh_tokens SET revoked = 1 WHERE customer_id = ? AND revoked = 0",
            [customer.to_string()],
        )?;
        Ok(())
    }
}

#[async_trait]
impl EventWrite for SqliteTx {
    async fn append_events(&mut self, events: &[DomainEvent]) -> CoreResult<()> {
        let conn = self.conn();
        // A prepared statement is cheap to re-run on the calling thread, so one row
        // per execution keeps the statement cache small (no text per batch size).
        for e in events {
            q::exec(
                conn,
                "INSERT INTO outbox (event_id, event_type, aggregate_type, aggregate_id, occurred_at, envelope)
                 VALUES (?, ?, ?, ?, ?, ?)",
                params![
                    e.id.to_string(),
                    e.event_type,
                    e.aggregate_type,
                    e.aggregate_id,
                    ts(e.occurred_at),
                    serde_json::to_string(e).map_err(json)?
                ],
            )?;
        }
        Ok(())
    }
}
