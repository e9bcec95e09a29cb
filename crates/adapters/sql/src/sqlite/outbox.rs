//! Outbox reads and acknowledgements for the relay.

use jangteo_core::ports::OutboxRow;
use jangteo_core::CoreResult;
use rusqlite::{params, Connection};

use super::q::{self, col, Sql};
use crate::time::ts;

pub(crate) fn pending(conn: &Connection, limit: u32) -> CoreResult<Vec<OutboxRow>> {
    let rows = q::all(
        conn,
        "SELECT seq, envelope FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT ?",
        [i64::from(limit)],
        |r| Ok((col(r, "seq")?, col(r, "envelope")?)),
    )?;
    crate::outbox::decode(rows)
}

pub(crate) fn backlog(conn: &Connection) -> CoreResult<jangteo_core::ports::OutboxBacklog> {
    // The oldest by `seq` through the partial index, not min(occurred_at) over every row.
    let (unsent, oldest): (i64, Option<String>) = q::one(
        conn,
        "SELECT (SELECT count(*) FROM outbox WHERE sent_at IS NULL) AS unsent,
                (SELECT occurred_at FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT 1) AS oldest",
        [],
        |r| Ok((col(r, "unsent")?, col(r, "oldest")?)),
    )?
    .unwrap_or((0, None));
    Ok(jangteo_core::ports::OutboxBacklog {
        unsent: u64::try_from(unsent).unwrap_or(0),
        oldest: oldest.as_deref().map(crate::time::parse).transpose()?,
    })
}

pub(crate) fn mark_sent(conn: &Connection, seqs: &[i64]) -> CoreResult<()> {
    let now = ts(chrono::Utc::now());
    for chunk in seqs.chunks(500) {
        let mut qb = Sql::new("UPDATE outbox SET sent_at = ");
        qb.bind(now.clone())
            .push(" WHERE seq IN (")
            .bind_list(chunk.iter().copied())
            .push(")");
        qb.exec(conn)?;
    }
    Ok(())
}

/// Takes the relay lease if it is free, expired, or already ours.
pub(crate) fn lease(
    conn: &Connection,
    holder: &str,
    now: chrono::DateTime<chrono::Utc>,
    until: chrono::DateTime<chrono::Utc>,
) -> CoreResult<bool> {
    let got: Option<String> = q::one(
        conn,
        "INSERT INTO outbox_leases (name, holder, expires_at) VALUES ('relay', ?1, ?2)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
         WHERE outbox_leases.holder = excluded.holder OR outbox_leases.expires_at < ?3
         RETURNING holder",
        params![holder, ts(until), ts(now)],
        |r| col(r, "holder"),
    )?;
    Ok(got.is_some())
}

/// Gives the relay lease up if `holder` has it.
pub(crate) fn release(conn: &Connection, holder: &str) -> CoreResult<()> {
    q::exec(
        conn,
        "DELETE FROM outbox_leases WHERE name = 'relay' AND holder = ?1",
        params![holder],
    )?;
    Ok(())
}
