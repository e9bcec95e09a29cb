//! Rule documents and buyers' past orders, for compliance checks.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use jangteo_core::compliance::PastOrder;
use jangteo_core::order::Order;
use jangteo_core::ports::{ComplianceWrite, RuleDocument};
use jangteo_core::CoreResult;
use rusqlite::{params, Connection, Row};

use super::q::{self, col};
use super::{Conn, SqliteReader, SqliteTx};
use crate::error::json;
use crate::time::{parse, ts};

const DOC_COLS: &str = "kind, key, version, doc, created_at, actor_email";

fn document_from_row(r: &Row<'_>) -> CoreResult<RuleDocument> {
    Ok(RuleDocument {
        kind: col(r, "kind")?,
        key: col(r, "key")?,
        version: col(r, "version")?,
        doc: serde_json::from_str(&col::<String>(r, "doc")?).map_err(json)?,
        created_at: parse(&col::<String>(r, "created_at")?)?,
        actor_email: col(r, "actor_email")?,
    })
}

pub(crate) fn latest_documents(conn: &Connection, kind: &str) -> CoreResult<Vec<RuleDocument>> {
    // The primary key (kind, key, version) answers both the outer scan and the MAX.
    q::all(
        conn,
        &format!(
            "SELECT {DOC_COLS} FROM rule_documents d WHERE d.kind = ?
               AND d.version = (SELECT MAX(m.version) FROM rule_documents m WHERE m.kind = d.kind AND m.key = d.key)
             ORDER BY d.key"
        ),
        [kind],
        document_from_row,
    )
}

pub(crate) fn document_history(
    conn: &Connection,
    kind: &str,
    key: &str,
    limit: u32,
) -> CoreResult<Vec<RuleDocument>> {
    q::all(
        conn,
        &format!(
            "SELECT {DOC_COLS} FROM rule_documents WHERE kind = ? AND key = ? ORDER BY version DESC LIMIT ?"
        ),
        params![kind, key, i64::from(limit)],
        document_from_row,
    )
}

pub(crate) fn buyer_orders(
    conn: &Connection,
    buyer_key: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> CoreResult<Vec<PastOrder>> {
    // Served by the partial index orders_buyer (buyer_key, created_at); what counts is
    // read from the order document, where checkout wrote it.
    q::all(
        conn,
        "SELECT doc FROM orders
         WHERE buyer_key = ? AND created_at >= ? AND created_at < ?
           AND status NOT IN ('canceled', 'refunded')
         ORDER BY created_at, id",
        params![buyer_key, ts(from), ts(to)],
        |r| {
            serde_json::from_str::<Order>(&col::<String>(r, "doc")?)
                .map(|o| PastOrder::from(&o))
                .map_err(json)
        },
    )
}

crate::compliance_read!(SqliteTx, sync);
crate::compliance_read!(SqliteReader, sync);

#[async_trait]
impl ComplianceWrite for SqliteTx {
    async fn insert_document(&mut self, d: &RuleDocument) -> CoreResult<()> {
        // A duplicate (kind, key, version) is a unique violation on rule_documents,
        // which error::unique_conflict names `version_conflict`.
        q::exec(
            self.conn(),
            &format!("INSERT INTO rule_documents ({DOC_COLS}) VALUES (?, ?, ?, ?, ?, ?)"),
            params![
                d.kind,
                d.key,
                d.version,
                serde_json::to_string(&d.doc).map_err(json)?,
                ts(d.created_at),
                d.actor_email
            ],
        )?;
        Ok(())
    }

    async fn lock_buyer(&mut self, _buyer_key: &str) -> CoreResult<()> {
        // Nothing to do: every SqliteTx holds the single writer connection and began
        // with BEGIN IMMEDIATE (see `SqliteStore::begin_tx`), so it already holds the
        // database's write lock; a second checkout, of this buyer or any other, waits
        // until this transaction ends.
        Ok(())
    }
}
