//! State of event consumers (PostgreSQL).

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use jangteo_core::ids::{EventId, ProductId};
use jangteo_core::ports::{NotificationRecord, ProjectionWrite, SalesRow};
use jangteo_core::CoreResult;
use sqlx::{PgConnection, Row};

use super::{Conn, PgReader, PgTx};
use crate::error::map;

pub(crate) async fn sales(
    conn: &mut PgConnection,
    from: NaiveDate,
    to: NaiveDate,
) -> CoreResult<Vec<SalesRow>> {
    let rows = sqlx::query(
        "SELECT day, country, product_id, currency, orders, units, revenue_minor FROM sales_daily
         WHERE day BETWEEN $1 AND $2 ORDER BY day, country, product_id::text, currency",
    )
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await
    .map_err(map)?;
    rows.iter()
        .map(|r| {
            Ok(SalesRow {
                day: r.try_get("day").map_err(map)?,
                country: r.try_get("country").map_err(map)?,
                product_id: ProductId(r.try_get("product_id").map_err(map)?),
                currency: r.try_get("currency").map_err(map)?,
                orders: r.try_get("orders").map_err(map)?,
                units: r.try_get("units").map_err(map)?,
                revenue_minor: r.try_get("revenue_minor").map_err(map)?,
            })
        })
        .collect()
}

pub(crate) async fn applied(
    conn: &mut PgConnection,
    consumer: &str,
    event: EventId,
) -> CoreResult<bool> {
    let found: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM processed_events WHERE consumer = $1 AND event_id = $2")
            .bind(consumer)
            .bind(event.0)
            .fetch_optional(conn)
            .await
            .map_err(map)?;
    Ok(found.is_some())
}

pub(crate) async fn notifications(
    conn: &mut PgConnection,
    limit: u32,
    before: Option<i64>,
) -> CoreResult<Vec<NotificationRecord>> {
    let rows = sqlx::query(
        "SELECT id, event_id, channel, recipient, locale, template, subject, body, created_at
         FROM notifications WHERE id < $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(before.unwrap_or(i64::MAX))
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await
    .map_err(map)?;
    rows.iter()
        .map(|r| {
            Ok(NotificationRecord {
                id: r.try_get("id").map_err(map)?,
                event_id: EventId(r.try_get("event_id").map_err(map)?),
                channel: r.try_get("channel").map_err(map)?,
                recipient: r.try_get("recipient").map_err(map)?,
                locale: r.try_get("locale").map_err(map)?,
                template: r.try_get("template").map_err(map)?,
                subject: r.try_get("subject").map_err(map)?,
                body: r.try_get("body").map_err(map)?,
                created_at: r.try_get("created_at").map_err(map)?,
            })
        })
        .collect()
}

crate::projection_read!(PgTx);
crate::projection_read!(PgReader);

#[async_trait]
impl ProjectionWrite for PgTx {
    async fn mark_applied(
        &mut self,
        consumer: &str,
        event: EventId,
        at: DateTime<Utc>,
    ) -> CoreResult<bool> {
        let r = sqlx::query(
            "INSERT INTO processed_events (consumer, event_id, applied_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(consumer)
        .bind(event.0)
        .bind(at)
        .execute(self.conn())
        .await
        .map_err(map)?;
        Ok(r.rows_affected() == 1)
    }

    async fn add_sales(&mut self, rows: &[SalesRow]) -> CoreResult<()> {
        for s in rows {
            sqlx::query(
                "INSERT INTO sales_daily (day, country, product_id, currency, orders, units, revenue_minor)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (day, country, product_id, currency) DO UPDATE SET
                   orders = sales_daily.orders + excluded.orders,
                   units = sales_daily.units + excluded.units,
                   revenue_minor = sales_daily.revenue_minor + excluded.revenue_minor",
            )
            .bind(s.day)
            .bind(&s.country)
            .bind(s.product_id.0)
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id, channel) DO NOTHING",
        )
        .bind(n.event_id.0)
        .bind(&n.channel)
        .bind(&n.recipient)
        .bind(&n.locale)
        .bind(&n.template)
        .bind(&n.subject)
        .bind(&n.body)
        .bind(n.created_at)
        .execute(self.conn())
        .await
        .map_err(map)?;
        Ok(())
    }
}
