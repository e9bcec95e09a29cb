//! What event consumers built, for staff: sales figures and sent notifications.

use chrono::NaiveDate;

use crate::engine::Engine;
use crate::error::{CoreError, CoreResult};
use crate::ports::{NotificationRecord, SalesRow};

/// Longest range one sales query may cover.
const MAX_DAYS: i64 = 366;

impl Engine {
    /// Daily sales per destination country and product, `from..=to` (UTC days). The
    /// figures come from the sales-statistics consumer, so they trail checkouts by the
    /// event delivery delay.
    pub async fn sales_report(&self, from: NaiveDate, to: NaiveDate) -> CoreResult<Vec<SalesRow>> {
        // Calendar years 1-9999: what every store's date type holds (PostgreSQL refuses
        // dates before 4713 BC; chrono parses far beyond), and far more than sales need.
        for (field, day) in [("from", from), ("to", to)] {
            if !(1..=9999).contains(&chrono::Datelike::year(&day)) {
                return Err(CoreError::invalid_field(
                    field,
                    "invalid_date",
                    "dates from year 1 to 9999 only",
                ));
            }
        }
        if to < from {
            return Err(CoreError::invalid_field(
                "to",
                "invalid_range",
                "`to` is before `from`",
            ));
        }
        if (to - from).num_days() >= MAX_DAYS {
            return Err(CoreError::invalid_field(
                "to",
                "range_too_long",
                format!("at most {MAX_DAYS} days per query"),
            ));
        }
        self.0.store.read().await?.sales(from, to).await
    }

    /// Notifications the recording notifier kept, newest first.
    pub async fn notifications(
        &self,
        limit: u32,
        before: Option<i64>,
    ) -> CoreResult<Vec<NotificationRecord>> {
        self.0
            .store
            .read()
            .await?
            .notifications(limit.clamp(1, 500), before)
            .await
    }
}
