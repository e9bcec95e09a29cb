//! Rule documents and buyers' past orders, for compliance checks (PostgreSQL).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use jangteo_core::compliance::PastOrder;
use jangteo_core::order::Order;
use jangteo_core::ports::{ComplianceWrite, RuleDocument};
use jangteo_core::CoreResult;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, Row};

use super::{Conn, PgReader, PgTx};
use crate::error::{json, map};

const DOC_COLS: &str = "kind, key, version, doc::text AS doc, created_at, actor_email";

fn document_from_row(r: &PgRow) -> CoreResult<RuleDocument> {
    Ok(RuleDocument {
        kind: r.try_get("kind").map_err(map)?,
        key: r.try_get("key").map_err(map)?,
        version: r.try_get("version").map_err(map)?,
        doc: serde_json::from_str(&r.try_get::<String, _>("doc").map_err(map)?).map_err(json)?,
        created_at: r.try_get("created_at").map_err(map)?,
        actor_email: r.try_get("actor_email").map_err(map)?,
    })
}

pub(crate) async fn latest_documents(
    conn: &mut PgConnection,
    kind: &str,
) -> CoreResult<Vec<RuleDocument>> {
    // The highest version per key, keys in byte order as on SQLite. Few rows per kind:
    // the primary key (kind, key, version) finds them and the sort is in memory.
    let rows = sqlx::query(&format!(
        "SELECT DISTINCT ON (key COLLATE \"C\") {DOC_COLS} FROM rule_documents WHERE kind = $1
         ORDER BY key COLLATE \"C\", version DESC"
    ))
    .bind(kind)
    .fetch_all(conn)
    .await
    .map_err(map)?;
    rows.iter().map(document_from_row).collect()
}

pub(crate) async fn document_history(
    conn: &mut PgConnection,
    kind: &str,
    key: &str,
    limit: u32,
) -> CoreResult<Vec<RuleDocument>> {
    let rows = sqlx::query(&format!(
        "SELECT {DOC_COLS} FROM rule_documents WHERE kind = $1 AND key = $2
         ORDER BY version DESC LIMIT $3"
    ))
    .bind(kind)
    .bind(key)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await
    .map_err(map)?;
    rows.iter().map(document_from_row).collect()
}

pub(crate) async fn buyer_orders(
    conn: &mut PgConnection,
    buyer_key: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> CoreResult<Vec<PastOrder>> {
    // Served by the partial index orders_buyer (buyer_key, created_at); what counts is
    // read from the order document, where checkout wrote it.
    let docs: Vec<Json<Order>> = sqlx::query_scalar(
        "SELECT doc FROM orders
         WHERE buyer_key = $1 AND created_at >= $2 AND created_at < $3
           AND status NOT IN ('canceled', 'refunded')
         ORDER BY created_at, id",
    )
    .bind(buyer_key)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await
    .map_err(map)?;
    Ok(docs.iter().map(|Json(o)| PastOrder::from(o)).collect())
}

crate::compliance_read!(PgTx);
crate::compliance_read!(PgReader);

#[async_trait]
impl ComplianceWrite for PgTx {
    async fn insert_document(&mut self, d: &RuleDocument) -> CoreResult<()> {
        // A duplicate (kind, key, version) violates rule_documents_pkey, which
        // error::map names `version_conflict`. The failed statement aborts the
        // transaction, so the caller must start a new one to retry.
        sqlx::query(
            "INSERT INTO rule_documents (kind, key, version, doc, created_at, actor_email)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&d.kind)
        .bind(&d.key)
        .bind(d.version)
        .bind(Json(&d.doc))
        .bind(d.created_at)
        .bind(&d.actor_email)
        .execute(self.conn())
        .await
        .map_err(map)?;
        Ok(())
    }

    async fn lock_buyer(&mut self, buyer_key: &str) -> CoreResult<()> {
        // Held until commit or rollback: a second checkout of the same buyer waits here
        // and then sees the first one's order when it adds up the buyer's imports.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(buyer_key)
            .execute(self.conn())
            .await
            .map_err(map)?;
        Ok(())
    }
}
