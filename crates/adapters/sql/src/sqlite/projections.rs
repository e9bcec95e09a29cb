//! State of event consumers: applied event ids, sales figures, recorded notifications.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use jangteo_core::ids::EventId;
use jangteo_core::ports::{NotificationRecord, ProjectionWrite, SalesRow};
use jangteo_core::{CoreError, CoreResult};
use rusqlite::{params, Connection};

use super::q::{self, col};
use super::{Conn, SqliteReader, SqliteTx};
use crate::time::{parse, ts};

fn bad(what: &str) -> CoreError {
    CoreError::Storage(format!("bad {what} in storage"))
}

pub(crate) fn sales(
    conn: &Connection,
    from: NaiveDate,
    to: NaiveDate,
) -> CoreResult<Vec<SalesRow>> {
    q::all(
        conn,
        "SELECT day, country, product_id, currency, orders, units, revenue_minor FROM sales_daily
         WHERE day >= ? AND day <= ? ORDER BY day, country, product_id, currency",
        [from.to_string(), to.to_string()],
        |r| {
            let text = |c: &str| col::<String>(r, c);
            Ok(SalesRow {
                day: text("day")?.parse().map_err(|_| bad("day"))?,
                country: text("country")?,
                product_id: text("product_id")?.parse().map_err(|_| bad("product id"))?,
                currency: text("currency")?,
                orders: col(r, "orders")?,
                units: col(r, "units")?,
                revenue_minor: col(r, "revenue_minor")?,
            })
        },
    )
}

pub(crate) fn applied(conn: &Connection, consumer: &str, event: EventId) -> CoreResult<bool> {
    let found = q::one(
        conn,
        "SELECT 1 FROM processed_events WHERE consumer = ? AND event_id = ?",
        params![consumer, event.to_string()],
        |_| Ok(()),
    )?;
    Ok(found.is_some())
}

pub(crate) fn notifications(
    conn: &Connection,
    limit: u32,
    before: Option<i64>,
) -> CoreResult<Vec<NotificationRecord>> {
    q::all(
        conn,
        "SELECT id, event_id, channel, recipient, locale, template, subject, body, created_at
         FROM notifications WHERE id < ? ORDER BY id DESC LIMIT ?",
        params![before.unwrap_or(i64::MAX), i64::from(limit)],
        |r| {
            let text = |c: &str| col::<String>(r, c);
            Ok(NotificationRecord {
                id: col(r, "id")?,
                event_id: text("event_id")?.parse().map_err(|_| bad("event id"))?,
                channel: text("channel")?,
                recipient: text("recipient")?,
                locale: text("locale")?,
                template: text("template")?,
                subject: text("subject")?,
                body: text("body")?,
                created_at: parse(&text("created_at")?)?,
            })
        },
    )
}

crate::projection_read!(SqliteTx, sync);
crate::projection_read!(SqliteReader, sync);

#[async_trait]
impl ProjectionWrite for SqliteTx {
    async fn mark_applied(
        &mut self,
        consumer: &str,
        event: EventId,
        at: DateTime<Utc>,
    ) -> CoreResult<bool> {
        let n = q::exec(
            self.conn(),
            "INSERT INTO processed_events (consumer, event_id, applied_at) VALUES (?, ?, ?)
             ON CONFLICT DO NOTHING",
            params![consumer, event.to_string(), ts(at)],
        )?;
        Ok(n == 1)
    }

    async fn add_sales(&mut self, rows: &[SalesRow]) -> CoreResult<()> {
        let conn = self.conn();
        for s in rows {
            q::exec(
                conn,
                "INSERT INTO sales_daily (day, country, product_id, currency, orders, units, revenue_minor)
                 VALUES (?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (day, country, product_id, currency) DO UPDATE SET
                   orders = orders + excluded.orders, units = units + excluded.units,
                   revenue_minor = CASE
                     WHEN excluded.revenue_minor > 0
                       AND revenue_minor > 9223372036854775807 - excluded.revenue_minor
                       THEN 9223372036854775807
                     WHEN excluded.revenue_minor < 0
                       AND revenue_minor < (-9223372036854775807 - 1) - excluded.revenue_minor
                       THEN (-9223372036854775807 - 1)
                     ELSE revenue_minor + excluded.revenue_minor END",
                params![
                    s.day.to_string(),
                    s.country,
                    s.product_id.to_string(),
                    s.currency,
                    s.orders,
                    s.units,
                    s.revenue_minor
                ],
            )?;
        }
        Ok(())
    }

    async fn insert_notification(&mut self, n: &NotificationRecord) -> CoreResult<()> {
        q::exec(
            self.conn(),
            "INSERT INTO notifications (event_id, channel, recipient, locale, template, subject, body, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id, channel) DO NOTHING",
            params![
                n.event_id.to_string(),
                n.channel,
                n.recipient,
                n.locale,
                n.template,
                n.subject,
                n.body,
                ts(n.created_at)
            ],
        )?;
        Ok(())
    }
}
