//! State of event consumers: applied event ids, sales figures, recorded notifications.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use jangteo_core::ids::EventId;
use jangteo_core::ports::{NotificationRecord, ProjectionWrite, SalesRow};
use jangteo_core::{CoreError, CoreResult};
use sqlx::{Row, SqliteConnection};

use super::{Conn, SqliteReader, SqliteTx};
use crate::error::map;
use crate::time::{parse, ts};

fn bad(what: &str) -> CoreError {
    CoreError::Storage(format!("bad {what} in storage"))
}

pub(crate) async fn sales(
    conn: &mut SqliteConnection,
    from: NaiveDate,
    to: NaiveDate,
) -> CoreResult<Vec<SalesRow>> {
    let rows = sqlx::query(
        "SELECT day, country, product_id, currency, orders, units, revenue_minor FROM sales_daily
         WHERE day >= ? AND day <= ? ORDER BY day, country, product_id, currency",
    )
    .bind(from.to_string())
    .bind(to.to_string())
    .fetch_all(conn)
    .await
    .map_err(map)?;
    rows.iter()
        .map(|r| {
            let text = |c: &str| r.try_get::<String, _>(c).map_err(map);
            Ok(SalesRow {
                day: text("day")?.parse().map_err(|_| bad("day"))?,
                country: text("country")?,
                product_id: text("product_id")?.parse().map_err(|_| bad("product id"))?,
                currency: text("currency")?,
                orders: r.try_get("orders").map_err(map)?,
                units: r.try_get("units").map_err(map)?,
                revenue_minor: r.try_get("revenue_minor").map_err(map)?,
            })
        })
        .collect()
}

pub(crate) async fn applied(
    conn: &mut SqliteConnection,
    consumer: &str,
    event: EventId,
) -> CoreResult<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM processed_events WHERE consumer = ? AND event_id = ?")
            .bind(consumer)
            .bind(event.to_string())
            .fetch_optional(conn)
            .await
            .map_err(map)?;
    Ok(found.is_some())
}

pub(crate) async fn notifications(
    conn: &mut SqliteConnection,
    limit: u32,
    before: Option<i64>,
) -> CoreResult<Vec<NotificationRecord>> {
    let rows = sqlx::query(
        "SELECT id, event_id, channel, recipient, locale, template, subject, body, created_at
         FROM notifications WHERE id < ? ORDER BY id DESC LIMIT ?",
    )
    .bind(before.unwrap_or(i64::MAX))
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await
    .map_err(map)?;
    rows.iter()
        .map(|r| {
            let text = |c: &str| r.try_get::<String, _>(c).map_err(map);
            Ok(NotificationRecord {
                id: r.try_get("id").map_err(map)?,
                event_id: text("event_id")?.parse().map_err(|_| bad("event id"))?,
                channel: text("channel")?,
                recipient: text("recipient")?,
                locale: text("locale")?,
                template: text("template")?,
                subject: text("subject")?,
                body: text("body")?,
                created_at: parse(&text("created_at")?)?,
            })
        })
        .collect()
}

crate::projection_read!(SqliteTx);
crate::projection_read!(SqliteReader);

#[async_trait]
impl ProjectionWrite for SqliteTx {
    async fn mark_applied(
        &mut self,
        consumer: &str,
        event: EventId,
        at: DateTime<Utc>,
    ) -> CoreResult<bool> {
        let r = sqlx::query(
            "INSERT INTO processed_events (consumer, event_id, applied_at) VALUES (?, ?, ?)
             ON CONFLICT DO NOTHING",
        )
        .bind(consumer)
        .bind(event.to_string())
        .bind(ts(at))
        .execute(self.conn())
        .await
        .map_err(map)?;
        Ok(r.rows_affected() == 1)
    }

    async fn add_sales(&mut self, rows: &[SalesRow]) -> CoreResult<()> {
        for s in rows {
            sqlx::query(
                "INSERT INTO sales_daily (day, country, product_id, currency, orders, units, revenue_minor)
                 VALUES (?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (day, country, product_id, currency) DO UPDATE SET
                   orders = orders + excluded.orders, units = units + excluded.units,
                   revenue_minor = revenue_minor + excluded.revenue_minor",
            )
            .bind(s.day.to_string())
            .bind(&s.country)
            .bind(s.product_id.to_string())
            .bind(&s.currency)
            .bind(s.orders)
            .bind(s.units)
            .bind(s.revenue_minor)
            .execute(self.conn())
            .await
            .map_err(map)?;
        }
        Ok(())
    }

    async fn insert_notification(&mut self, n: &NotificationRecord) -> CoreResult<()> {
        sqlx::query(
            "INSERT INTO notifications (event_id, channel, recipient, locale, template, subject, body, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id, channel) DO NOTHING",
        )
        .bind(n.event_id.to_string())
        .bind(&n.channel)
        .bind(&n.recipient)
        .bind(&n.locale)
        .bind(&n.template)
        .bind(&n.subject)
        .bind(&n.body)
        .bind(ts(n.created_at))
        .execute(self.conn())
        .await
        .map_err(map)?;
        Ok(())
    }
}
