//! Outbox reads for the relay.

use jangteo_core::ports::OutboxRow;
use jangteo_core::CoreResult;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::error::map;
use crate::time::ts;

pub(crate) async fn pending(conn: &mut SqliteConnection, limit: u32) -> CoreResult<Vec<OutboxRow>> {
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT seq, envelope FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT ?",
    )
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await
    .map_err(map)?;
    crate::outbox::decode(rows)
}

pub(crate) async fn mark_sent(conn: &mut SqliteConnection, seqs: &[i64]) -> CoreResult<()> {
    for chunk in seqs.chunks(500) {
        let mut qb = QueryBuilder::<Sqlite>::new("UPDATE outbox SET sent_at = ");
        qb.push_bind(ts(chrono::Utc::now())).push(" WHERE seq IN (");
        let mut sep = qb.separated(", ");
        for s in chunk {
            sep.push_bind(*s);
        }
        qb.push(")");
        qb.build().execute(&mut *conn).await.map_err(map)?;
    }
    Ok(())
}

/// Takes the relay lease if it is free, expired, or already ours.
pub(crate) async fn lease(
    conn: &mut SqliteConnection,
    holder: &str,
    now: chrono::DateTime<chrono::Utc>,
    until: chrono::DateTime<chrono::Utc>,
) -> CoreResult<bool> {
    let got: Option<String> = sqlx::query_scalar(
        "INSERT INTO outbox_leases (name, holder, expires_at) VALUES ('relay', ?1, ?2)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
         WHERE outbox_leases.holder = excluded.holder OR outbox_leases.expires_at < ?3
         RETURNING holder",
    )
    .bind(holder)
    .bind(ts(until))
    .bind(ts(now))
    .fetch_optional(conn)
    .await
    .map_err(map)?;
    Ok(got.is_some())
}
