//! What both backends' outbox reads share.

use jangteo_core::ports::OutboxRow;
use jangteo_core::CoreResult;

use crate::error::json;

/// `(seq, envelope JSON)` rows, as both backends select them, into outbox rows.
pub(crate) fn decode(rows: Vec<(i64, String)>) -> CoreResult<Vec<OutboxRow>> {
    rows.into_iter()
        .map(|(seq, envelope)| {
            Ok(OutboxRow {
                seq,
                event: serde_json::from_str(&envelope).map_err(json)?,
            })
        })
        .collect()
}
