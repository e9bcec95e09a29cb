//! # jangteo-sql
//!
//! sqlx storage for Jangteo. The `sqlite` feature (default) gives [`SqliteStore`], the
//! embedded default: one file, WAL mode, migrations embedded and applied at open.
//! PostgreSQL arrives behind the `postgres` feature with its own migration folder,
//! since SQL is not portable between the two.
//!
//! ```no_run
//! # async fn demo() -> Result<(), jangteo_sql::SqlError> {
//! let store = jangteo_sql::open("sqlite://./data/jangteo.db", &Default::default()).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

use std::sync::Arc;

use jangteo_core::ports::Store;

mod error;
#[cfg(feature = "sqlite")]
mod sqlite;
mod time;

pub use error::SqlError;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

/// Connection settings common to the backends.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Connections for reads (SQLite) or in total (PostgreSQL).
    pub max_connections: u32,
    /// How long a request waits for a connection before it gets "unavailable".
    pub acquire_timeout: std::time::Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 8,
            acquire_timeout: std::time::Duration::from_secs(5),
        }
    }
}

/// Opens the store a URL names: `sqlite://path` (or `sqlite::memory:`) today,
/// `postgres://...` with the `postgres` feature. A URL whose backend is not compiled in
/// is a clear error, never a panic.
pub async fn open(url: &str, settings: &PoolSettings) -> Result<Arc<dyn Store>, SqlError> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        "sqlite" => open_sqlite(url, settings).await,
        "postgres" | "postgresql" => Err(SqlError::FeatureNotEnabled("postgres".into())),
        _ => Err(SqlError::UnsupportedUrl(
            url.split('@').next_back().unwrap_or_default().to_string(),
        )),
    }
}

#[cfg(feature = "sqlite")]
async fn open_sqlite(url: &str, settings: &PoolSettings) -> Result<Arc<dyn Store>, SqlError> {
    Ok(Arc::new(SqliteStore::open(url, settings).await?))
}

#[cfg(not(feature = "sqlite"))]
async fn open_sqlite(_: &str, _: &PoolSettings) -> Result<Arc<dyn Store>, SqlError> {
    Err(SqlError::FeatureNotEnabled("sqlite".into()))
}
