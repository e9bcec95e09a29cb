//! Outbox reads, acknowledgements and the relay lease (PostgreSQL).

use std::time::Duration;

use jangteo_core::ports::OutboxRow;
use jangteo_core::CoreResult;
use sqlx::PgConnection;

use crate::error::map;

/// Unsent rows, oldest first, without `skip` (a batch in flight).
pub(crate) async fn pending(
    conn: &mut PgConnection,
    limit: u32,
    skip: &[i64],
) -> CoreResult<Vec<OutboxRow>> {
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT seq, envelope FROM outbox WHERE sent_at IS NULL AND seq <> ALL($2) ORDER BY seq LIMIT $1",
    )
    .bind(i64::from(limit))
    .bind(skip)
    .fetch_all(conn)
    .await
    .map_err(map)?;
    crate::outbox::decode(rows)
}

pub(crate) async fn backlog(
    conn: &mut PgConnection,
) -> CoreResult<jangteo_core::ports::OutboxBacklog> {
    // The oldest by `seq` through the partial index, not min(occurred_at) over every row.
    let (unsent, oldest): (i64, Option<chrono::DateTime<chrono::Utc>>) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM outbox WHERE sent_at IS NULL),
                (SELECT occurred_at FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT 1)",
    )
    .fetch_one(conn)
    .await
    .map_err(map)?;
    Ok(jangteo_core::ports::OutboxBacklog {
        unsent: u64::try_from(unsent).unwrap_or(0),
        oldest,
    })
}

pub(crate) async fn mark_sent(conn: &mut PgConnection, seqs: &[i64]) -> CoreResult<()> {
    sqlx::query("UPDATE outbox SET sent_at = now() WHERE seq = ANY($1)")
        .bind(seqs)
        .execute(conn)
        .await
        .map_err(map)?;
    Ok(())
}

/// Takes the relay lease if it is free, expired, or already ours. The database clock
/// decides expiry, so relays on hosts with skewed clocks still agree.
pub(crate) async fn lease(
    conn: &mut PgConnection,
    holder: &str,
    ttl: Duration,
) -> CoreResult<bool> {
    let got: Option<String> = sqlx::query_scalar(
        "INSERT INTO outbox_leases (name, holder, expires_at)
         VALUES ('relay', $1, clock_timestamp() + make_interval(secs => $2))
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
         WHERE outbox_leases.holder = excluded.holder OR outbox_leases.expires_at < clock_timestamp()
         RETURNING holder",
    )
    .bind(holder)
    .bind(ttl.as_secs_f64())
    .fetch_optional(conn)
    .await
    .map_err(map)?;
    Ok(got.is_some())
}

/// Gives the relay lease up if `holder` has it.
pub(crate) async fn release(conn: &mut PgConnection, holder: &str) -> CoreResult<()> {
    sqlx::query("DELETE FROM outbox_leases WHERE name = 'relay' AND holder = $1")
        .bind(holder)
        .execute(conn)
        .await
        .map_err(map)?;
    Ok(())
}
