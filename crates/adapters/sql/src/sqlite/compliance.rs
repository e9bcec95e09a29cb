//! Rule documents and buyers' past orders, for compliance checks.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use jangteo_core::compliance::PastOrder;
use jangteo_core::order::Order;
use jangteo_core::ports::{ComplianceWrite, RuleDocument};
use jangteo_core::CoreResult;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::{Conn, SqliteReader, SqliteTx};
use crate::error::{json, map};
use crate::time::{parse, ts};

const DOC_COLS: &str = "kind, key, version, doc, created_at, actor_email";

fn document_from_row(r: &SqliteRow) -> CoreResult<RuleDocument> {
    Ok(RuleDocument {
        kind: r.try_get("kind").map_err(map)?,
        key: r.try_get("key").map_err(map)?,
        version: r.try_get("version").map_err(map)?,
        doc: serde_json::from_str(&r.try_get::<String, _>("doc").map_err(map)?).map_err(json)?,
        created_at: parse(&r.try_get::<String, _>("created_at").map_err(map)?)?,
        actor_email: r.try_get("actor_email").map_err(map)?,
    })
}

pub(crate) async fn latest_documents(
    conn: &mut SqliteConnection,
    kind: &str,
) -> CoreResult<Vec<RuleDocument>> {
    // The primary key (kind, key, version) answers both the outer scan and the MAX.
    let rows = sqlx::query(&format!(
        "SELECT {DOC_COLS} FROM rule_documents d WHERE d.kind = ?
           AND d.version = (SELECT MAX(m.version) FROM rule_documents m WHERE m.kind = d.kind AND m.key = d.key)
         ORDER BY d.key"
    ))
    .bind(kind)
    .fetch_all(conn)
    .await
    .map_err(map)?;
    rows.iter().map(document_from_row).collect()
}

pub(crate) async fn document_history(
    conn: &mut SqliteConnection,
    kind: &str,
    key: &str,
    limit: u32,
) -> CoreResult<Vec<RuleDocument>> {
    let rows = sqlx::query(&format!(
        "SELECT {DOC_COLS} FROM rule_documents WHERE kind = ? AND key = ? ORDER BY version DESC LIMIT ?"
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
    conn: &mut SqliteConnection,
    buyer_key: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> CoreResult<Vec<PastOrder>> {
    // Served by the partial index orders_buyer (buyer_key, created_at); what counts is
    // read from the order document, where checkout wrote it.
    let docs: Vec<String> = sqlx::query_scalar(
        "SELECT doc FROM orders
         WHERE buyer_key = ? AND created_at >= ? AND created_at < ?
           AND status NOT IN ('canceled', 'refunded')
         ORDER BY created_at, id",
    )
    .bind(buyer_key)
    .bind(ts(from))
    .bind(ts(to))
    .fetch_all(conn)
    .await
    .map_err(map)?;
    docs.iter()
        .map(|d| {
            serde_json::from_str::<Order>(d)
                .map(|o| PastOrder::from(&o))
                .map_err(json)
        })
        .collect()
}

crate::compliance_read!(SqliteTx);
crate::compliance_read!(SqliteReader);

#[async_trait]
impl ComplianceWrite for SqliteTx {
    async fn insert_document(&mut self, d: &RuleDocument) -> CoreResult<()> {
        // A duplicate (kind, key, version) is a unique violation on rule_documents_pkey,
        // which error::map names `version_conflict`.
        sqlx::query(&format!(
            "INSERT INTO rule_documents ({DOC_COLS}) VALUES (?, ?, ?, ?, ?, ?)"
        ))
        .bind(&d.kind)
        .bind(&d.key)
        .bind(d.version)
        .bind(serde_json::to_string(&d.doc).map_err(json)?)
        .bind(ts(d.created_at))
        .bind(&d.actor_email)
        .execute(self.conn())
        .await
        .map_err(map)?;
        Ok(())
    }

    async fn lock_buyer(&mut self, _buyer_key: &str) -> CoreResult<()> {
        // Nothing to do: every SqliteTx runs on the single writer connection and began
        // with BEGIN IMMEDIATE (see `Store::begin`), so it already holds the database's
        // write lock; a second checkout, of this buyer or any other, waits until this
        // transaction ends.
        Ok(())
    }
}
