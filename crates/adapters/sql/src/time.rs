//! Timestamps as fixed-width RFC 3339 text, so text comparison is time comparison.
#![cfg_attr(not(feature = "sqlite"), allow(dead_code))]

use chrono::{DateTime, SecondsFormat, Utc};
use jangteo_core::CoreError;

pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn parse(s: &str) -> Result<DateTime<Utc>, CoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| CoreError::Storage(format!("bad timestamp `{s}` in storage")))
}
