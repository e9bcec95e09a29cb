//! State of event consumers (PostgreSQL).

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use jangteo_core::ids::{EventId, ProductId};
use jangteo_core::ports::{NotificationRecord, ProjectionWrite, SalesRow};
use jangteo_core::CoreResult;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

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

    /// One statement for all rows (a consumer's batch): one round trip, not one per row.
    async fn mark_applied_many(
        &mut self,
        consumer: &str,
        events: &[EventId],
        at: DateTime<Utc>,
    ) -> CoreResult<Vec<EventId>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = events.iter().map(|e| e.0).collect();
        // DO NOTHING also absorbs an id repeated within the array; RETURNING lists the
        // rows this statement inserted.
        let inserted: Vec<Uuid> = sqlx::query_scalar(
            "INSERT INTO processed_events (consumer, event_id, applied_at)
             SELECT $1, e, $3 FROM unnest($2::uuid[]) AS e
             ON CONFLICT DO NOTHING RETURNING event_id",
        )
        .bind(consumer)
        .bind(&ids)
        .bind(at)
        .fetch_all(self.conn())
        .await
        .map_err(map)?;
        // In the caller's order, each once: taken out of the set when first met.
        let mut inserted: std::collections::HashSet<Uuid> = inserted.into_iter().collect();
        Ok(events
            .iter()
            .filter(|e| inserted.remove(&e.0))
            .copied()
            .collect())
    }

    async fn add_sales(&mut self, rows: &[SalesRow]) -> CoreResult<()> {
        // Summed per key first: one upsert statement may not touch a row twice.
        let mut sums: Vec<SalesRow> = Vec::with_capacity(rows.len());
        for r in rows {
            match sums.iter_mut().find(|s| {
                s.day == r.day
                    && s.product_id == r.product_id
                    && s.country == r.country
                    && s.currency == r.currency
            }) {
                Some(s) => {
                    s.orders += r.orders;
                    s.units += r.units;
                    s.revenue_minor = s.revenue_minor.saturating_add(r.revenue_minor);
                }
                None => sums.push(r.clone()),
            }
        }
        if sums.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO sales_daily (day, country, product_id, currency, orders, units, revenue_minor)
             SELECT * FROM unnest($1::date[], $2::text[], $3::uuid[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[])
             ON CONFLICT (day, country, product_id, currency) DO UPDATE SET
               orders = sales_daily.orders + excluded.orders,
               units = sales_daily.units + excluded.units,
               revenue_minor = LEAST(GREATEST(
                 sales_daily.revenue_minor::numeric + excluded.revenue_minor,
                 -9223372036854775808), 9223372036854775807)::bigint",
        )
        .bind(sums.iter().map(|s| s.day).collect::<Vec<_>>())
        .bind(sums.iter().map(|s| s.country.as_str()).collect::<Vec<_>>())
        .bind(sums.iter().map(|s| s.product_id.0).collect::<Vec<_>>())
        .bind(sums.iter().map(|s| s.currency.as_str()).collect::<Vec<_>>())
        .bind(sums.iter().map(|s| s.orders).collect::<Vec<_>>())
        .bind(sums.iter().map(|s| s.units).collect::<Vec<_>>())
        .bind(sums.iter().map(|s| s.revenue_minor).collect::<Vec<_>>())
        .execute(self.conn())
        .await
        .map_err(map)?;
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

    /// One statement for a consumer's batch.
    async fn insert_notifications(&mut self, messages: &[NotificationRecord]) -> CoreResult<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let col = |f: fn(&NotificationRecord) -> &str| messages.iter().map(f).collect::<Vec<_>>();
        // WITH ORDINALITY keeps the given order in the ids (newest last), and DO
        // NOTHING absorbs a message repeated within the batch.
        sqlx::query(
            "INSERT INTO notifications (event_id, channel, recipient, locale, template, subject, body, created_at)
             SELECT e, c, r, l, t, s, b, at
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[])
                  WITH ORDINALITY AS m(e, c, r, l, t, s, b, at, n)
             ORDER BY n
             ON CONFLICT (event_id, channel) DO NOTHING",
        )
        .bind(messages.iter().map(|m| m.event_id.0).collect::<Vec<_>>())
        .bind(col(|m| &m.channel))
        .bind(col(|m| &m.recipient))
        .bind(col(|m| &m.locale))
        .bind(col(|m| &m.template))
        .bind(col(|m| &m.subject))
        .bind(col(|m| &m.body))
        .bind(messages.iter().map(|m| m.created_at).collect::<Vec<_>>())
        .execute(self.conn())
        .await
        .map_err(map)?;
        Ok(())
    }
}
